//! Errors of loading plugins.

use std::path::PathBuf;

/// Why a plugin could not be loaded. Every variant names the plugin (and the
/// file, interface or export involved) so an operator can act on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The wasmtime engine could not be set up.
    #[error("wasm engine: {0}")]
    Engine(String),
    /// The plugin file could not be read.
    #[error("plugin {plugin}: cannot read {path}: {reason}")]
    Read {
        /// Plugin name.
        plugin: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The bytes are not a valid component.
    #[error("plugin {plugin}: not a valid WebAssembly component: {reason}")]
    Compile {
        /// Plugin name.
        plugin: String,
        /// wasmtime's reason.
        reason: String,
    },
    /// The cache directory is unusable.
    #[error("plugin cache {path}: {reason}")]
    Cache {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The plugin imports what the host does not offer or did not grant.
    #[error("plugin {plugin}: imports refused: {}", problems.join("; "))]
    Imports {
        /// Plugin name.
        plugin: String,
        /// One line per refused import.
        problems: Vec<String>,
    },
    /// The plugin's imports do not match the host's (wrong types or version).
    #[error("plugin {plugin}: its imports do not match the host's: {reason}")]
    Link {
        /// Plugin name.
        plugin: String,
        /// wasmtime's reason.
        reason: String,
    },
    /// The plugin does not export what its role needs.
    #[error("plugin {plugin} cannot act as a {role}: {reason}")]
    Exports {
        /// Plugin name.
        plugin: String,
        /// The role asked for.
        role: &'static str,
        /// What is missing.
        reason: String,
    },
    /// No plugin of that name is configured.
    #[error("no plugin {0} is configured")]
    UnknownPlugin(String),
    /// A rollback with no earlier version.
    #[error("plugin {0} has no earlier version to roll back to")]
    NoEarlierVersion(String),
    /// The first instantiation failed (start-up trap, limits).
    #[error("plugin {plugin}: instantiation failed: {reason}")]
    Instantiate {
        /// Plugin name.
        plugin: String,
        /// wasmtime's reason.
        reason: String,
    },
}
