//! `switchyard plugin new`: a standalone plugin crate that builds and has
//! passing tests.
//!
//! The crate is its own cargo workspace and carries everything it needs:
//!
//! ```text
//! NAME/
//!   Cargo.toml               the plugin (cdylib + rlib), path dependency on the SDK
//!   Cargo.lock               the dependency versions this switchyard was built with
//!   src/lib.rs               a participant, selector or formatter with native tests
//!   README.md                build, test, try, wire
//!   vendor/switchyard-sdk/   the guest SDK (plugins/sdk of this repository)
//!   vendor/…                 crates the SDK depends on by path (the codec)
//!   wit/                     the WIT contract (wit/ of this repository)
//! ```
//!
//! `vendor/switchyard-sdk` sits two levels below the crate's root, as
//! `plugins/sdk` does in this repository, so the SDK's relative path to the
//! contract (`../../wit/…`) holds unchanged in both places.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use super::vendor;

/// What kind of plugin to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A participant (world `participant-plugin`).
    Participant,
    /// A group selector (world `selector-plugin`).
    Selector,
    /// An endpoint formatter (world `formatter-plugin`: `formatter` and
    /// `store-and-forward`).
    Formatter,
}

impl Kind {
    /// The kind's name in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Participant => "participant",
            Kind::Selector => "selector",
            Kind::Formatter => "formatter",
        }
    }

    /// The WIT world a plugin of this kind targets.
    pub const fn world(self) -> &'static str {
        match self {
            Kind::Participant => "participant-plugin",
            Kind::Selector => "selector-plugin",
            Kind::Formatter => "formatter-plugin",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a plugin crate could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScaffoldError {
    /// The name cannot be a plugin (cargo package) name.
    #[error(
        "{name:?} is not a plugin name: {reason} (use lowercase letters, digits and single dashes, starting with a letter)"
    )]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The target directory exists and is not empty.
    #[error("{0} already exists and is not empty")]
    Exists(PathBuf),
    /// The embedded SDK could not be vendored.
    #[error("cannot vendor the guest SDK: {0}")]
    Vendor(String),
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A plugin crate that was created.
#[derive(Debug, Clone)]
pub struct Created {
    /// The crate's directory.
    pub dir: PathBuf,
    /// The package name.
    pub name: String,
    /// What it is.
    pub kind: Kind,
    /// The component `cargo build --release --target wasm32-wasip2` makes,
    /// relative to [`Created::dir`].
    pub component: String,
    /// Every file written, relative to [`Created::dir`].
    pub files: Vec<String>,
}

/// Names a plugin cannot take: cargo's reserved names, and the vendored
/// crates.
const RESERVED: &[&str] = &[
    "test",
    "core",
    "std",
    "alloc",
    "proc-macro",
    "self",
    "super",
    "crate",
    "switchyard-sdk",
    "switchyard-iso8583",
    "wit-bindgen",
];

/// Identifiers the templates import: the plugin's type must not be one.
const TEMPLATE_IDENTS: &[&str] = &[
    "Env",
    "Formatter",
    "Level",
    "MockEnv",
    "MockTransaction",
    "Outbound",
    "Outcome",
    "Participant",
    "SafKind",
    "SafRequest",
    "Selector",
    "Transaction",
];

/// Checks a plugin name: a cargo package name that is also a readable
/// config name (`no-refunds`).
pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let invalid = |reason| {
        Err(ScaffoldError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 64 {
        return invalid("it must have 1 to 64 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return invalid("it must start with a lowercase letter");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return invalid("it has a character other than a-z, 0-9 and -");
    }
    if name.ends_with('-') || name.contains("--") {
        return invalid("dashes must separate words");
    }
    if RESERVED.contains(&name) {
        return invalid("it is reserved");
    }
    Ok(())
}

/// `no-refunds` → `NoRefunds`; `Participant`-like names get a `Plugin`
/// suffix so that they do not clash with the SDK's traits.
pub fn type_name(name: &str) -> String {
    let mut out: String = name
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    if TEMPLATE_IDENTS.contains(&out.as_str()) {
        out.push_str("Plugin");
    }
    out
}

/// Creates the crate `name` of `kind` in `dir` (which must not exist, or be
/// empty).
pub fn create(name: &str, dir: &Path, kind: Kind) -> Result<Created, ScaffoldError> {
    check_name(name)?;
    if fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ScaffoldError::Exists(dir.to_owned()));
    }
    let files = files(name, kind)?;
    for (relative, contents) in &files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|source| ScaffoldError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        fs::write(&path, contents).map_err(|source| ScaffoldError::Io { path, source })?;
    }
    Ok(Created {
        dir: dir.to_owned(),
        name: name.to_owned(),
        kind,
        component: format!(
            "target/wasm32-wasip2/release/{}.wasm",
            name.replace('-', "_")
        ),
        files: files.into_iter().map(|(p, _)| p).collect(),
    })
}

/// Every file of the crate: (path relative to its root, contents).
fn files(name: &str, kind: Kind) -> Result<Vec<(String, Vec<u8>)>, ScaffoldError> {
    let render = |template: &str| render(template, name, kind).into_bytes();
    let source = match kind {
        Kind::Participant => include_str!("templates/participant.rs.tmpl"),
        Kind::Selector => include_str!("templates/selector.rs.tmpl"),
        Kind::Formatter => include_str!("templates/formatter.rs.tmpl"),
    };
    let vendored = vendor::vendored_crates().map_err(ScaffoldError::Vendor)?;
    let mut files = vec![
        (
            "Cargo.toml".to_owned(),
            render(include_str!("templates/Cargo.toml.tmpl")),
        ),
        (
            "Cargo.lock".to_owned(),
            vendor::starting_lock_file(&vendored)
                .map_err(ScaffoldError::Vendor)?
                .into_bytes(),
        ),
        (
            ".gitignore".to_owned(),
            render(include_str!("templates/gitignore.tmpl")),
        ),
        (
            "README.md".to_owned(),
            render(include_str!("templates/README.md.tmpl")),
        ),
        ("src/lib.rs".to_owned(), render(source)),
    ];
    for krate in vendored {
        for (path, bytes) in krate.files {
            files.push((format!("vendor/{}/{path}", krate.name), bytes));
        }
    }
    for (path, bytes) in vendor::files_under(vendor::WIT_DIR) {
        files.push((format!("wit/{path}"), bytes.to_vec()));
    }
    Ok(files)
}

/// Fills a template's placeholders.
fn render(template: &str, name: &str, kind: Kind) -> String {
    let krate = name.replace('-', "_");
    template
        .replace("{{name}}", name)
        .replace("{{crate}}", &krate)
        .replace("{{Type}}", &type_name(name))
        .replace("{{kind}}", kind.name())
        .replace("{{world}}", kind.world())
        .replace("{{try_args}}", try_args(kind))
        .replace("{{wiring}}", &wiring(name, &krate, kind))
}

/// `switchyard plugin test` arguments that exercise the template.
fn try_args(kind: Kind) -> &'static str {
    match kind {
        Kind::Participant => "\\\n    --pan 4761739001010119 --amount 10.00 --field 3=200000",
        Kind::Selector => {
            "\\\n    --amount 2000.00 --config \"high_value=review local-auth\" --config default=local-auth"
        }
        Kind::Formatter => "--amount 10.00",
    }
}

/// The config that wires a plugin of `kind` into the default pipeline.
fn wiring(name: &str, krate: &str, kind: Kind) -> String {
    let plugin = format!(
        "[plugins.{name}]\nfile = \"path/to/{krate}.wasm\"   # relative to the config file\nmemory_mib = 16\ndeadline_ms = 50\n"
    );
    match kind {
        Kind::Participant => format!(
            "{plugin}\n[participants.{name}]\nplugin = \"{name}\"\nconfig = {{ allow_refunds = false }}\n\n\
             # Runs after validate, before the switch on MTI and port.\n\
             [pipelines.acquirer]\nparticipants = [\"validate\", \"{name}\", \"by-mti\"]"
        ),
        Kind::Selector => format!(
            "{plugin}\n[participants.{name}]\nplugin = \"{name}\"\n\
             config = {{ threshold = \"100000\", high_value = \"log close send\", default = \"local-auth close send\" }}\n\n\
             # In place of by-port on port 5001, for example:\n\
             [participants.by-port]\nplugin = \"case-switch\"\n\
             config = {{ switch = \"PORT\", \"case 5001\" = \"{name}\", \"case 5002\" = \"query-xxx close send\" }}"
        ),
        Kind::Formatter => format!(
            "{plugin}\n[endpoints.my-endpoint]\naddress = \"10.0.0.1:7000\"\ntimeout_ms = 1000\nformatter = \"{name}\"\n\n\
             [participants.query-my-endpoint]\nstep = \"query-endpoint\"\nendpoint = \"my-endpoint\""
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_are_checked() {
        for good in ["no-refunds", "blocklist", "bin2-router"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "No-Refunds",
            "2fa",
            "-x",
            "x-",
            "a--b",
            "a_b",
            "a b",
            "test",
            "switchyard-sdk",
        ] {
            let err = check_name(bad).unwrap_err();
            assert!(err.to_string().contains("is not a plugin name"), "{err}");
        }
    }

    #[test]
    fn type_names_are_camel_case_and_avoid_the_sdk() {
        assert_eq!(type_name("no-refunds"), "NoRefunds");
        assert_eq!(type_name("bin2-router"), "Bin2Router");
        assert_eq!(type_name("participant"), "ParticipantPlugin");
        assert_eq!(type_name("outcome"), "OutcomePlugin");
    }

    #[test]
    fn every_kind_renders_without_leftover_placeholders() {
        for kind in [Kind::Participant, Kind::Selector, Kind::Formatter] {
            for (path, bytes) in files("no-refunds", kind).unwrap() {
                if path.starts_with("vendor/") || path.starts_with("wit/") {
                    continue;
                }
                let text = String::from_utf8(bytes).unwrap();
                assert!(!text.contains("{{"), "{kind} {path}: {text}");
            }
        }
    }

    #[test]
    fn a_formatter_builds_reversals() {
        let files = files("text-endpoint", Kind::Formatter).unwrap();
        let lib = files.iter().find(|(p, _)| p == "src/lib.rs").unwrap();
        let lib = std::str::from_utf8(&lib.1).unwrap();
        assert!(lib.contains("fn format_saf("), "{lib}");
        let readme = files.iter().find(|(p, _)| p == "README.md").unwrap();
        let readme = std::str::from_utf8(&readme.1).unwrap();
        assert!(readme.contains("switchyard:participant@1.2.0"), "{readme}");
    }

    #[test]
    fn a_crate_is_written_and_never_over_another() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("no-refunds");
        let created = create("no-refunds", &target, Kind::Participant).unwrap();
        assert_eq!(
            created.component,
            "target/wasm32-wasip2/release/no_refunds.wasm"
        );
        for file in [
            "Cargo.toml",
            "Cargo.lock",
            "src/lib.rs",
            "README.md",
            "vendor/switchyard-sdk/Cargo.toml",
            "vendor/switchyard-sdk/src/lib.rs",
            "wit/participant@1.0.0/participant.wit",
            "wit/participant@1.2.0/participant.wit",
        ] {
            assert!(target.join(file).is_file(), "{file}");
        }
        // The vendored SDK binds the newest contract.
        let guest = fs::read_to_string(target.join("vendor/switchyard-sdk/src/guest.rs")).unwrap();
        assert!(guest.contains("../../wit/participant@1.4.0"), "{guest}");
        let lib = fs::read_to_string(target.join("src/lib.rs")).unwrap();
        assert!(lib.contains("pub struct NoRefunds;"), "{lib}");
        let err = create("no-refunds", &target, Kind::Participant).unwrap_err();
        assert!(matches!(err, ScaffoldError::Exists(_)), "{err}");
    }
}
