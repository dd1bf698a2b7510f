//! Builds the `plugins/` workspace for `wasm32-wasip2` (a nested cargo with
//! its own target directory, `plugins/target`) and generates the table of
//! bundled components that `src/lib.rs` embeds.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
/// Bundled plugins: (name in config, crate's artifact name). Embedded in the binary.
const BUNDLED: &[(&str, &str)] = &[
    ("validate", "validate"),
    ("local-auth", "local_auth"),
    ("case-switch", "case_switch"),
    ("formatter-xxx", "formatter_xxx"),
    ("bin-route", "bin_route"),
    ("velocity", "velocity"),
    ("loyalty", "loyalty"),
    ("coupon", "coupon"),
    ("formatter-yyy", "formatter_yyy"),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.join("../..").canonicalize().unwrap();
    let plugins = root.join("plugins");
    println!("cargo:rerun-if-env-changed=SWITCHYARD_SKIP_PLUGIN_BUILD");
    for dir in [plugins.clone(), root.join("wit"), root.join("host/iso8583")] {
        watch(&dir);
    }

    if env::var_os("SWITCHYARD_SKIP_PLUGIN_BUILD").is_none() {
        ensure_target();
        build(&plugins);
    }

    let out_dir = plugins.join("target").join(TARGET).join("release");
    let mut src = String::new();
    src.push_str(&format!(
        "pub const PLUGIN_DIR: &str = {:?};\n",
        out_dir.display().to_string()
    ));
    src.push_str("pub static BUNDLED: &[(&str, &[u8])] = &[\n");
    for (name, artifact) in BUNDLED {
        let path = out_dir.join(format!("{artifact}.wasm"));
        if !path.exists() {
            panic!(
                "bundled plugin {name} was not built: {} is missing (build log above)",
                path.display()
            );
        }
        src.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    src.push_str("];\n");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bundled.rs");
    fs::write(out, src).unwrap();
}

/// Re-run when anything but build output changes under `dir`.
fn watch(dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            watch(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// Installs the wasm target through rustup when it is missing.
fn ensure_target() {
    let Ok(out) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        return; // no rustup: let the build say what is missing
    };
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == TARGET)
    {
        return;
    }
    println!("cargo:warning=installing the {TARGET} target with rustup");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        panic!(
            "the {TARGET} target is missing and `rustup target add {TARGET}` failed; run it by hand"
        );
    }
}

fn build(plugins: &Path) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--workspace",
        "--target",
        TARGET,
        "--manifest-path",
    ])
    .arg(plugins.join("Cargo.toml"))
    .arg("--target-dir")
    .arg(plugins.join("target"));
    // The outer build's settings must not leak into the guest build.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        let leaks = key.starts_with("CARGO_")
            && !matches!(
                &*key,
                "CARGO_HOME" | "CARGO_MAKEFLAGS" | "CARGO_NET_OFFLINE"
            );
        if leaks
            || matches!(
                &*key,
                "RUSTFLAGS"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "RUSTDOCFLAGS"
                    | "RUSTC"
                    | "TARGET"
                    | "HOST"
                    | "OPT_LEVEL"
                    | "PROFILE"
                    | "DEBUG"
                    | "OUT_DIR"
                    | "NUM_JOBS"
                    | "RUSTC_LINKER"
            )
        {
            cmd.env_remove(&*key);
        }
    }
    let out = cmd.output().expect("failed to run cargo for plugins/");
    if !out.status.success() {
        panic!(
            "building plugins/ for {TARGET} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
