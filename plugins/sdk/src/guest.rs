//! The component side (feature `guest`): the WIT bindings of
//! `switchyard:participant@1.4.0` and the implementations of the SDK traits
//! over the host's imports.
//!
//! The `imports` world is bound once; the export worlds reuse those
//! bindings (wit-bindgen `with`), so every plugin shares one set of import
//! types whatever it exports. Plugins do not use this module directly: they
//! use [`crate::export_participant!`], [`crate::export_selector!`] and
//! [`crate::export_formatter!`].
//!
//! What each macro exports (contract 1.4.0):
//!
//! | macro | world | exports |
//! |---|---|---|
//! | `export_participant!` | `participant-plugin` | `participant`, `reversible`, `settings` |
//! | `export_selector!` | `selector-plugin` | `participant`, `reversible`, `settings`, `group-selector`, `selection` |
//! | `export_formatter!` | `formatter-plugin` | `formatter`, `store-and-forward`, `settings` |

use std::borrow::Cow;
use std::cell::RefCell;

use crate::transaction::Values;
use crate::{
    Clock, Config, Counters, Formatter, Kv, Level, Log, Outbound, Participant, SafKind, SafRequest,
    Selector, Transaction,
};

/// Bindings of the `imports` world: the host capabilities.
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod imports {
    wit_bindgen::generate!({
        world: "imports",
        path: "../../wit/participant@1.4.0",
        generate_all,
    });
}

/// Bindings of the `participant` and `reversible` exports (of the
/// `participant-plugin` world, whose imports are [`imports`] and whose
/// `settings` export is [`settings_world`]).
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod participant_world {
    wit_bindgen::generate!({
        inline: "
            package switchyard:sdk;

            world participant-exports {
                export switchyard:participant/participant@1.4.0;
                export switchyard:participant/reversible@1.4.0;
            }
        ",
        path: "../../wit/participant@1.4.0",
        world: "switchyard:sdk/participant-exports",
        pub_export_macro: true,
        export_macro_name: "export_participant_plugin",
    });
}

/// Bindings of the `settings` export alone (contract 1.3.0), shared by the
/// participant, selector and formatter components: wit-bindgen names an
/// interface's export glue after the interface, so it is generated once.
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod settings_world {
    wit_bindgen::generate!({
        inline: "
            package switchyard:sdk;

            world settings-export {
                export switchyard:participant/settings@1.4.0;
            }
        ",
        path: "../../wit/participant@1.4.0",
        world: "switchyard:sdk/settings-export",
        pub_export_macro: true,
        export_macro_name: "export_settings",
    });
}

/// Bindings of the `group-selector` export alone. A selector component is
/// this plus [`participant_world`]: wit-bindgen names an interface's export
/// glue after the interface, so generating the whole `selector-plugin` world
/// here would define the `participant` and `reversible` glue a second time.
/// The component's world is the union of the two (what `selector-plugin`
/// is).
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod selector_world {
    wit_bindgen::generate!({
        inline: "
            package switchyard:sdk;

            world group-selector-export {
                export switchyard:participant/group-selector@1.4.0;
            }
        ",
        path: "../../wit/participant@1.4.0",
        world: "switchyard:sdk/group-selector-export",
        pub_export_macro: true,
        export_macro_name: "export_group_selector",
    });
}

/// Bindings of the `selection` export alone (contract 1.4.0: a selector's
/// `prepare` and `select` in one call), for the same reason as
/// [`selector_world`].
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod selection_world {
    wit_bindgen::generate!({
        inline: "
            package switchyard:sdk;

            world selection-export {
                export switchyard:participant/selection@1.4.0;
            }
        ",
        path: "../../wit/participant@1.4.0",
        world: "switchyard:sdk/selection-export",
        pub_export_macro: true,
        export_macro_name: "export_selection",
    });
}

/// Bindings of the `formatter` and `store-and-forward` exports (of the
/// `formatter-plugin` world; its `settings` export is [`settings_world`]).
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod formatter_world {
    wit_bindgen::generate!({
        inline: "
            package switchyard:sdk;

            world formatter-exports {
                export switchyard:participant/formatter@1.4.0;
                export switchyard:participant/store-and-forward@1.4.0;
            }
        ",
        path: "../../wit/participant@1.4.0",
        world: "switchyard:sdk/formatter-exports",
        pub_export_macro: true,
        export_macro_name: "export_formatter_plugin",
    });
}

use imports::switchyard::participant::{clock, config, counters, kv, log, transaction};

/// The transaction of the current call, through the host's imports.
/// Only the export glue makes one, and only where the contract has a
/// transaction (not in `reply-key`).
#[derive(Debug)]
pub struct GuestTransaction {
    _private: (),
}

impl Transaction for GuestTransaction {
    fn request_mti(&self) -> Cow<'_, str> {
        Cow::Owned(transaction::request_mti())
    }
    fn request_fields(&self) -> Cow<'_, [u16]> {
        Cow::Owned(transaction::request_fields())
    }
    fn request_field(&self, field: u16) -> Option<Cow<'_, [u8]>> {
        transaction::request_field(field).map(Cow::Owned)
    }
    fn request_values(&self, fields: &[u16]) -> Values<'_> {
        Values::packed(transaction::request_values(fields), fields.len())
    }
    fn response_field(&self, field: u16) -> Option<Cow<'_, [u8]>> {
        transaction::response_field(field).map(Cow::Owned)
    }
    fn set_response_field(&mut self, field: u16, value: &[u8]) -> Result<(), String> {
        transaction::set_response_field(field, value)
    }
    fn clear_response_field(&mut self, field: u16) {
        transaction::clear_response_field(field)
    }
    fn var(&self, name: &str) -> Option<Cow<'_, str>> {
        transaction::get_var(name).map(Cow::Owned)
    }
    fn set_var(&mut self, name: &str, value: &str) {
        transaction::set_var(name, value)
    }
    fn result_code(&self) -> Option<Cow<'_, str>> {
        transaction::result_code().map(Cow::Owned)
    }
    fn set_result_code(&mut self, code: &str) {
        transaction::set_result_code(code)
    }
}

/// Settings, log and clock through the host's imports.
#[derive(Clone, Copy, Debug, Default)]
pub struct GuestEnv;

thread_local! {
    /// The instance's settings, read from the host once: since contract
    /// 1.1.0 they do not change during an instance's lifetime.
    static SETTINGS: std::cell::OnceCell<Vec<(String, String)>> = const { std::cell::OnceCell::new() };
}

impl Config for GuestEnv {
    fn get(&self, key: &str) -> Option<Cow<'_, str>> {
        SETTINGS.with(|s| {
            s.get_or_init(config::entries)
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| Cow::Owned(v.clone()))
        })
    }
    fn entries(&self) -> Vec<(String, String)> {
        SETTINGS.with(|s| s.get_or_init(config::entries).clone())
    }
}

impl Counters for GuestEnv {
    fn counter_add(
        &self,
        name: &str,
        key: &str,
        delta: i64,
        window_seconds: u32,
    ) -> Result<i64, String> {
        counters::add(name, key, delta, window_seconds)
    }
    fn counter_sum(&self, name: &str, key: &str, window_seconds: u32) -> Result<i64, String> {
        counters::sum(name, key, window_seconds)
    }
}

impl Kv for GuestEnv {
    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        kv::get(key)
    }
    fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        kv::set(key, value)
    }
    fn kv_delete(&self, key: &str) -> Result<bool, String> {
        kv::delete(key)
    }
    fn kv_compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, String> {
        kv::compare_and_set(key, expected, value)
    }
}

impl Log for GuestEnv {
    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Trace => log::Level::Trace,
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        log::log(level, message)
    }
}

impl Clock for GuestEnv {
    fn now_unix_millis(&self) -> i64 {
        clock::now_unix_millis()
    }
    fn monotonic_nanos(&self) -> u64 {
        clock::monotonic_nanos()
    }
}

/// The one value of a plugin type an instance keeps, built on first use.
#[doc(hidden)]
#[derive(Debug)]
pub struct Slot<T>(RefCell<Option<T>>);

impl<T> Slot<T> {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Slot<T> {
        Slot(RefCell::new(None))
    }

    pub fn with<R>(&self, init: impl FnOnce() -> T, f: impl FnOnce(&mut T) -> R) -> R {
        let mut slot = self.0.borrow_mut();
        f(slot.get_or_insert_with(init))
    }
}

/// The export glue's calls into a plugin, kept out of the macros.
#[doc(hidden)]
pub mod rt {
    use super::*;

    fn tx() -> GuestTransaction {
        GuestTransaction { _private: () }
    }

    pub fn prepare<P: Participant>(p: &mut P) -> u32 {
        p.prepare(&mut tx(), &GuestEnv).bits_of::<P>()
    }
    /// `prepare`, then `select` when prepared (contract 1.4.0).
    pub fn prepare_select<S: Selector>(p: &mut S) -> (u32, Vec<String>) {
        let mut tx = tx();
        let outcome = p.prepare(&mut tx, &GuestEnv);
        let groups = if outcome.is_prepared() {
            p.select(&mut tx, &GuestEnv)
        } else {
            Vec::new()
        };
        (outcome.bits_of::<S>(), groups)
    }
    pub fn commit(p: &mut impl Participant) {
        p.commit(&mut tx(), &GuestEnv)
    }
    pub fn abort(p: &mut impl Participant) {
        p.abort(&mut tx(), &GuestEnv)
    }
    pub fn reverse(p: &mut impl Participant) -> Result<(), String> {
        p.reverse(&mut tx(), &GuestEnv)
    }
    /// A participant's settings problems as (key, message) pairs.
    pub fn check_participant(p: &mut impl Participant) -> Vec<(String, String)> {
        p.check_settings(&GuestEnv)
            .into_iter()
            .map(|problem| (problem.key, problem.message))
            .collect()
    }
    /// A formatter's settings problems as (key, message) pairs.
    pub fn check_formatter(p: &mut impl Formatter) -> Vec<(String, String)> {
        p.check_settings(&GuestEnv)
            .into_iter()
            .map(|problem| (problem.key, problem.message))
            .collect()
    }
    /// A selector's possible selections.
    pub fn targets(p: &mut impl Selector) -> Vec<String> {
        p.targets(&GuestEnv)
    }
    pub fn select(p: &mut impl Selector) -> Vec<String> {
        p.select(&mut tx(), &GuestEnv)
    }
    pub fn format_request(p: &mut impl Formatter) -> Result<(Vec<u8>, String), String> {
        p.format_request(&mut tx(), &GuestEnv)
            .map(|Outbound { payload, key }| (payload, key))
    }
    pub fn reply_key(p: &mut impl Formatter, reply: &[u8]) -> Result<String, String> {
        p.reply_key(reply, &GuestEnv)
    }
    pub fn parse_response(p: &mut impl Formatter, reply: &[u8]) -> Result<(), String> {
        p.parse_response(reply, &mut tx(), &GuestEnv)
    }

    use super::formatter_world::exports::switchyard::participant::{formatter, store_and_forward};

    pub fn format_saf(
        p: &mut impl Formatter,
        request: store_and_forward::SafRequest,
    ) -> Result<formatter::Outbound, String> {
        let request = SafRequest {
            kind: match request.kind {
                store_and_forward::SafKind::Reversal => SafKind::Reversal,
                store_and_forward::SafKind::Advice => SafKind::Advice,
            },
            retransmission: request.retransmission,
            reason: request.reason,
        };
        p.format_saf(&request, &mut tx(), &GuestEnv)
            .map(|Outbound { payload, key }| formatter::Outbound { payload, key })
    }
}
