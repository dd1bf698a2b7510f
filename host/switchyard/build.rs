//! Embeds what `switchyard plugin new` vendors into a new plugin crate, so
//! that the crate builds anywhere, outside this repository: the guest SDK's
//! sources (`plugins/sdk/**`), the WIT contract (`wit/**`), the crates the
//! SDK depends on by path (`host/iso8583`: its manifest and `src/**`), the
//! workspace manifests they inherit from (`plugins/Cargo.toml`,
//! `Cargo.toml`), and `plugins/Cargo.lock` (a new crate starts from it, so
//! it resolves the versions this repository builds and tests, offline).
//!
//! A new path dependency of the SDK must be added to `PATH_DEPENDENCIES`;
//! until it is, `plugin new` leaves it out if it is optional and fails if
//! it is not (the unit tests of `authoring::vendor` say so).
//!
//! Generates `$OUT_DIR/vendored.rs`: `VENDORED`, a table of (path relative
//! to the repository root, `include_bytes!` of the file).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

/// The crates the SDK depends on by path (repository directories).
const PATH_DEPENDENCIES: &[&str] = &["host/iso8583"];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.join("../..").canonicalize().unwrap();

    let mut files = Vec::new();
    for file in ["Cargo.toml", "plugins/Cargo.toml", "plugins/Cargo.lock"] {
        files.push(root.join(file));
    }
    collect(&root.join("plugins/sdk"), &mut files);
    collect(&root.join("wit"), &mut files);
    for dir in PATH_DEPENDENCIES {
        files.push(root.join(dir).join("Cargo.toml"));
        collect(&root.join(dir).join("src"), &mut files);
    }
    files.sort();

    let mut src = String::from("pub(crate) static VENDORED: &[(&str, &[u8])] = &[\n");
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let relative = path.strip_prefix(&root).unwrap();
        let relative = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        src.push_str(&format!(
            "    ({relative:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    src.push_str("];\n");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("vendored.rs");
    fs::write(out, src).unwrap();
}

/// Every file under `dir` but build output and hidden files; re-run when
/// a file is added or removed.
fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}
