//! The bundled participant plugins.
//!
//! The build script compiles the `plugins/` workspace for `wasm32-wasip2`
//! and embeds the bundled components here, so the `switchyard` binary carries
//! its default plugins (config: `file = "builtin:validate"`). Test-only
//! plugins are not embedded; [`plugin_path`] finds them on disk.
//!
//! Owns nothing at run time beyond these bytes; loading and sandboxing are
//! `switchyard-runtime`'s job.
#![forbid(unsafe_code)]

use std::path::PathBuf;

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// The component bytes of a bundled plugin by its config name
/// (`validate`, `local-auth`, `case-switch`, `formatter-xxx`, `bin-route`,
/// `velocity`, `loyalty`, `coupon`, `formatter-yyy`).
pub fn get(name: &str) -> Option<&'static [u8]> {
    BUNDLED.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// Names of the bundled plugins.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUNDLED.iter().map(|(n, _)| *n)
}

/// Where the build put the component of any crate in `plugins/` (bundled or
/// test-only), by its config name (`test-faulty` → `test_faulty.wasm`).
pub fn plugin_path(name: &str) -> PathBuf {
    PathBuf::from(PLUGIN_DIR).join(format!("{}.wasm", name.replace('-', "_")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn bundled_plugins_are_components() {
        for name in super::names() {
            let bytes = super::get(name).unwrap();
            // A component: the wasm magic, then layer 1 / version 0x0d.
            assert_eq!(&bytes[..4], b"\0asm", "{name}");
            assert_eq!(&bytes[4..8], &[0x0d, 0x00, 0x01, 0x00], "{name}");
        }
        assert!(super::plugin_path("test-faulty").ends_with("test_faulty.wasm"));
    }
}
