//! The one `bindgen!` of the host: the `host` world of
//! `switchyard:participant@1.0.0` (every import, every export interface).
//! A plugin exports the subset its role needs; each export interface is
//! looked up on its own (`GuestIndices`), so a participant-only plugin loads
//! without exporting the formatter interface.

wasmtime::component::bindgen!({
    world: "host",
    path: "../../wit/participant@1.0.0",
    imports: { default: trappable },
});

pub use exports::switchyard::participant::{
    formatter as formatter_export, group_selector as selector_export,
    participant as participant_export,
};
pub use switchyard::participant::{clock, config, log, transaction};

/// The interfaces this host offers to plugins, by their full names.
pub const OFFERED_IMPORTS: &[&str] = &[
    "switchyard:participant/transaction@1.0.0",
    "switchyard:participant/config@1.0.0",
    "switchyard:participant/log@1.0.0",
    "switchyard:participant/clock@1.0.0",
];

/// Export interface names, by role.
pub const PARTICIPANT_EXPORT: &str = "switchyard:participant/participant@1.0.0";
/// The group selector's export.
pub const SELECTOR_EXPORT: &str = "switchyard:participant/group-selector@1.0.0";
/// The formatter's export.
pub const FORMATTER_EXPORT: &str = "switchyard:participant/formatter@1.0.0";
