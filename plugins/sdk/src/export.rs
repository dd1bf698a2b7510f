//! The `export_*!` macros. In a component build (feature `guest`, target
//! `wasm32`) they generate the component's exports; anywhere else they only
//! check that the type implements the trait, so a plugin crate builds and
//! tests natively unchanged.

/// Exports a [`Participant`](crate::Participant) as the component's
/// `participant`, `reversible` and `settings` interfaces (world
/// `participant-plugin`; `reversible` calls
/// [`Participant::reverse`](crate::Participant::reverse), which by default
/// has nothing to undo, and `settings` calls
/// [`Participant::check_settings`](crate::Participant::check_settings),
/// which by default accepts any settings).
///
/// `export_participant!(T)` builds the instance's value with
/// `T::default()` on first use; `export_participant!(T, expr)` with `expr`.
#[cfg(all(feature = "guest", target_arch = "wasm32"))]
#[macro_export]
macro_rules! export_participant {
    ($ty:ty) => {
        $crate::export_participant!($ty, <$ty as ::core::default::Default>::default());
    };
    ($ty:ty, $init:expr) => {
        const _: () = {
            $crate::__participant_glue!($ty, $init);
            $crate::__settings_glue!($crate::guest::rt::check_participant, |_| {
                ::std::vec::Vec::new()
            });
            $crate::guest::participant_world::export_participant_plugin!(
                __SwitchyardPlugin with_types_in $crate::guest::participant_world
            );
        };
    };
}

/// Exports a [`Selector`](crate::Selector) as the component's `participant`,
/// `reversible`, `settings`, `group-selector` and `selection` interfaces
/// (world `selector-plugin`; `settings.targets` calls
/// [`Selector::targets`](crate::Selector::targets); `selection`, contract
/// 1.4.0, runs `prepare` and `select` in one call).
///
/// `export_selector!(T)` builds the instance's value with `T::default()` on
/// first use; `export_selector!(T, expr)` with `expr`.
#[cfg(all(feature = "guest", target_arch = "wasm32"))]
#[macro_export]
macro_rules! export_selector {
    ($ty:ty) => {
        $crate::export_selector!($ty, <$ty as ::core::default::Default>::default());
    };
    ($ty:ty, $init:expr) => {
        const _: () = {
            $crate::__participant_glue!($ty, $init);
            impl $crate::guest::selector_world::exports::switchyard::participant::group_selector::Guest
                for __SwitchyardPlugin
            {
                fn select() -> ::std::vec::Vec<::std::string::String> {
                    with_plugin(|p| $crate::guest::rt::select(p))
                }
            }
            impl $crate::guest::selection_world::exports::switchyard::participant::selection::Guest
                for __SwitchyardPlugin
            {
                fn prepare_select(
                ) -> $crate::guest::selection_world::exports::switchyard::participant::selection::Choice
                {
                    let (outcome, groups) = with_plugin(|p| $crate::guest::rt::prepare_select(p));
                    $crate::guest::selection_world::exports::switchyard::participant::selection::Choice {
                        outcome,
                        groups,
                    }
                }
            }
            $crate::__settings_glue!($crate::guest::rt::check_participant, |p| {
                $crate::guest::rt::targets(p)
            });
            $crate::guest::participant_world::export_participant_plugin!(
                __SwitchyardPlugin with_types_in $crate::guest::participant_world
            );
            $crate::guest::selector_world::export_group_selector!(
                __SwitchyardPlugin with_types_in $crate::guest::selector_world
            );
            $crate::guest::selection_world::export_selection!(
                __SwitchyardPlugin with_types_in $crate::guest::selection_world
            );
        };
    };
}

/// Exports a [`Formatter`](crate::Formatter) as the component's `formatter`,
/// `store-and-forward` and `settings` interfaces (world `formatter-plugin`;
/// `settings.check` calls
/// [`Formatter::check_settings`](crate::Formatter::check_settings)).
///
/// `export_formatter!(T)` builds the instance's value with `T::default()` on
/// first use; `export_formatter!(T, expr)` with `expr`.
#[cfg(all(feature = "guest", target_arch = "wasm32"))]
#[macro_export]
macro_rules! export_formatter {
    ($ty:ty) => {
        $crate::export_formatter!($ty, <$ty as ::core::default::Default>::default());
    };
    ($ty:ty, $init:expr) => {
        const _: () = {
            $crate::__instance!($ty, $init);
            struct __SwitchyardPlugin;
            impl $crate::guest::formatter_world::exports::switchyard::participant::formatter::Guest
                for __SwitchyardPlugin
            {
                fn format_request() -> ::core::result::Result<
                    $crate::guest::formatter_world::exports::switchyard::participant::formatter::Outbound,
                    ::std::string::String,
                > {
                    with_plugin(|p| $crate::guest::rt::format_request(p)).map(|(payload, key)| {
                        $crate::guest::formatter_world::exports::switchyard::participant::formatter::Outbound {
                            payload,
                            key,
                        }
                    })
                }
                fn reply_key(
                    reply: ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<::std::string::String, ::std::string::String> {
                    with_plugin(|p| $crate::guest::rt::reply_key(p, &reply))
                }
                fn parse_response(
                    reply: ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    with_plugin(|p| $crate::guest::rt::parse_response(p, &reply))
                }
            }
            impl $crate::guest::formatter_world::exports::switchyard::participant::store_and_forward::Guest
                for __SwitchyardPlugin
            {
                fn format_saf(
                    request: $crate::guest::formatter_world::exports::switchyard::participant::store_and_forward::SafRequest,
                ) -> ::core::result::Result<
                    $crate::guest::formatter_world::exports::switchyard::participant::formatter::Outbound,
                    ::std::string::String,
                > {
                    with_plugin(|p| $crate::guest::rt::format_saf(p, request))
                }
            }
            $crate::__settings_glue!($crate::guest::rt::check_formatter, |_| {
                ::std::vec::Vec::new()
            });
            $crate::guest::formatter_world::export_formatter_plugin!(
                __SwitchyardPlugin with_types_in $crate::guest::formatter_world
            );
        };
    };
}

/// The per-instance value and `with_plugin`.
#[cfg(all(feature = "guest", target_arch = "wasm32"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __instance {
    ($ty:ty, $init:expr) => {
        ::std::thread_local! {
            static INSTANCE: $crate::guest::Slot<$ty> = const { $crate::guest::Slot::new() };
        }
        fn with_plugin<R>(f: impl FnOnce(&mut $ty) -> R) -> R {
            INSTANCE.with(|slot| slot.with(|| $init, f))
        }
    };
}

/// `__SwitchyardPlugin` implementing the `participant` and `reversible`
/// exports.
#[cfg(all(feature = "guest", target_arch = "wasm32"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __participant_glue {
    ($ty:ty, $init:expr) => {
        $crate::__instance!($ty, $init);
        struct __SwitchyardPlugin;
        impl $crate::guest::participant_world::exports::switchyard::participant::participant::Guest
            for __SwitchyardPlugin
        {
            fn prepare() -> u32 {
                with_plugin(|p| $crate::guest::rt::prepare(p))
            }
            fn commit() {
                with_plugin(|p| $crate::guest::rt::commit(p))
            }
            fn abort() {
                with_plugin(|p| $crate::guest::rt::abort(p))
            }
        }
        impl $crate::guest::participant_world::exports::switchyard::participant::reversible::Guest
            for __SwitchyardPlugin
        {
            fn reverse() -> ::core::result::Result<(), ::std::string::String> {
                with_plugin(|p| $crate::guest::rt::reverse(p))
            }
        }
    };
}

/// `__SwitchyardPlugin` implementing the `settings` export (contract
/// 1.3.0) with `$check` and `$targets` (paths of `rt` functions).
#[cfg(all(feature = "guest", target_arch = "wasm32"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __settings_glue {
    ($check:path, $targets:expr) => {
        impl $crate::guest::settings_world::exports::switchyard::participant::settings::Guest
            for __SwitchyardPlugin
        {
            fn check() -> ::std::vec::Vec<
                $crate::guest::settings_world::exports::switchyard::participant::settings::Problem,
            > {
                with_plugin(|p| $check(p))
                    .into_iter()
                    .map(|(key, message)| {
                        $crate::guest::settings_world::exports::switchyard::participant::settings::Problem {
                            key,
                            message,
                        }
                    })
                    .collect()
            }
            fn targets() -> ::std::vec::Vec<::std::string::String> {
                with_plugin($targets)
            }
        }
        $crate::guest::settings_world::export_settings!(
            __SwitchyardPlugin with_types_in $crate::guest::settings_world
        );
    };
}

/// Exports a [`Participant`](crate::Participant) (native build: checks the
/// type only).
#[cfg(not(all(feature = "guest", target_arch = "wasm32")))]
#[macro_export]
macro_rules! export_participant {
    ($ty:ty) => {
        $crate::export_participant!($ty, <$ty as ::core::default::Default>::default());
    };
    ($ty:ty, $init:expr) => {
        const _: () = {
            fn __check() -> impl $crate::Participant {
                let plugin: $ty = $init;
                plugin
            }
        };
    };
}

/// Exports a [`Selector`](crate::Selector) (native build: checks the type
/// only).
#[cfg(not(all(feature = "guest", target_arch = "wasm32")))]
#[macro_export]
macro_rules! export_selector {
    ($ty:ty) => {
        $crate::export_selector!($ty, <$ty as ::core::default::Default>::default());
    };
    ($ty:ty, $init:expr) => {
        const _: () = {
            fn __check() -> impl $crate::Selector {
                let plugin: $ty = $init;
                plugin
            }
        };
    };
}

/// Exports a [`Formatter`](crate::Formatter) (native build: checks the type
/// only).
#[cfg(not(all(feature = "guest", target_arch = "wasm32")))]
#[macro_export]
macro_rules! export_formatter {
    ($ty:ty) => {
        $crate::export_formatter!($ty, <$ty as ::core::default::Default>::default());
    };
    ($ty:ty, $init:expr) => {
        const _: () = {
            fn __check() -> impl $crate::Formatter {
                let plugin: $ty = $init;
                plugin
            }
        };
    };
}
