//! The one `bindgen!` of the host: the `host` world of the newest contract,
//! `switchyard:participant@1.4.0` (every import, every export interface).
//!
//! Older plugins link against it unchanged: wasmtime resolves a component's
//! `…@1.0.0` … `…@1.3.0` imports and exports to the host's
//! semver-compatible `…@1.4.0` ones, and each minor version only added to
//! the one before. A plugin exports the subset its role needs; each export
//! interface is looked up on its own (`GuestIndices`), so a plugin built
//! before 1.2.0 simply has no `reversible` or `store-and-forward`, one
//! built before 1.3.0 no `settings`, and one built before 1.4.0 no
//! `selection`.

wasmtime::component::bindgen!({
    world: "host",
    path: "../../wit/participant@1.4.0",
    imports: { default: trappable },
});

pub use exports::switchyard::participant::{
    formatter as formatter_export, group_selector as selector_export,
    participant as participant_export, reversible as reversible_export,
    selection as selection_export, settings as settings_export, store_and_forward as saf_export,
};
pub use switchyard::participant::{clock, config, counters, kv, log, transaction};

/// The contract's package.
pub const PACKAGE: &str = "switchyard:participant";
/// The newest contract version this host offers; every 1.x up to it links.
pub const NEWEST_MINOR: u32 = 4;

/// Export interface names, by role, for messages (semver-compatible
/// lookups: a plugin's exports of any 1.x version are found; the names keep
/// the version the messages were written against).
pub const PARTICIPANT_EXPORT: &str = "switchyard:participant/participant@1.3.0";
/// The group selector's export.
pub const SELECTOR_EXPORT: &str = "switchyard:participant/group-selector@1.3.0";
/// The formatter's export.
pub const FORMATTER_EXPORT: &str = "switchyard:participant/formatter@1.3.0";
/// A participant's undo of a reversed transaction (since 1.2.0; optional).
pub const REVERSIBLE_EXPORT: &str = "switchyard:participant/reversible@1.3.0";
/// A plugin's check of its settings at load time (since 1.3.0; optional).
pub const SETTINGS_EXPORT: &str = "switchyard:participant/settings@1.3.0";
/// A formatter's reversals and advices (since 1.2.0; an endpoint's
/// formatter needs it).
pub const SAF_EXPORT: &str = "switchyard:participant/store-and-forward@1.3.0";
/// A group selector's `prepare` and `select` in one call (since 1.4.0;
/// optional: without it the host makes the two calls).
pub const SELECTION_EXPORT: &str = "switchyard:participant/selection@1.4.0";
