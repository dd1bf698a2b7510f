//! The guest SDK and WIT contract embedded in the binary (by `build.rs`),
//! and the crates a new plugin crate vendors, made standalone.
//!
//! In this repository the SDK is a member of the `plugins/` workspace: it
//! inherits package fields, dependency versions and lints from
//! `plugins/Cargo.toml`, and may depend on host crates by path (the codec,
//! for its `cobol` feature). A vendored copy has no workspace around it, so
//! [`vendored_crates`] writes the inherited values into each manifest (as
//! `cargo package` does), vendors every path dependency that is embedded
//! next to it (`vendor/<package>/`, its `src/` only), drops optional path
//! dependencies that are not (with the features that need them), and drops
//! dev-dependencies and test, bench and example targets: a vendored crate is
//! built, never tested, in a plugin crate.

use toml::{Table, Value};

include!(concat!(env!("OUT_DIR"), "/vendored.rs"));

/// Where the SDK lives in this repository.
pub(crate) const SDK_DIR: &str = "plugins/sdk";
/// Where the WIT contract lives in this repository.
pub(crate) const WIT_DIR: &str = "wit";

/// One embedded file by its path in this repository.
fn file(path: &str) -> Option<&'static [u8]> {
    VENDORED.iter().find(|(p, _)| *p == path).map(|(_, b)| *b)
}

/// The embedded files under `dir`, with their paths relative to it.
pub(crate) fn files_under(dir: &str) -> impl Iterator<Item = (&'static str, &'static [u8])> {
    let prefix = format!("{dir}/");
    VENDORED
        .iter()
        .filter_map(move |(p, b)| p.strip_prefix(prefix.as_str()).map(|rest| (rest, *b)))
}

fn text(path: &str) -> Result<&'static str, String> {
    let bytes = file(path).ok_or_else(|| format!("{path} is not embedded"))?;
    std::str::from_utf8(bytes).map_err(|_| format!("{path} is not UTF-8"))
}

fn parse(path: &str) -> Result<Table, String> {
    text(path)?
        .parse::<Table>()
        .map_err(|e| format!("{path}: {e}"))
}

/// `dir/Cargo.toml`, or `Cargo.toml` for the repository root.
fn manifest_path(dir: &str) -> String {
    if dir.is_empty() {
        "Cargo.toml".to_owned()
    } else {
        format!("{dir}/Cargo.toml")
    }
}

/// `base/relative` with `.` and `..` resolved; `None` if it leaves the
/// repository.
fn join(base: &str, relative: &str) -> Option<String> {
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// A crate copied into a new plugin crate's `vendor/<name>/`.
#[derive(Debug)]
pub(crate) struct VendoredCrate {
    /// Its package name.
    pub(crate) name: String,
    /// Its files relative to its directory, the standalone manifest first.
    pub(crate) files: Vec<(String, Vec<u8>)>,
}

/// The SDK and the path dependencies it needs, ready to write under
/// `vendor/`.
pub(crate) fn vendored_crates() -> Result<Vec<VendoredCrate>, String> {
    let mut done: Vec<String> = Vec::new();
    let mut crates = Vec::new();
    let mut queue = vec![SDK_DIR.to_owned()];
    while let Some(dir) = queue.pop() {
        if done.contains(&dir) {
            continue;
        }
        let (name, manifest, path_deps) = standalone_manifest(&dir)?;
        let mut files = vec![(
            "Cargo.toml".to_owned(),
            format!(
                "# Vendored by `switchyard plugin new` from {dir}/Cargo.toml of Switchyard, with\n\
                 # what it inherited from its workspace written in. Do not edit: vendor a\n\
                 # newer copy instead.\n\n{manifest}"
            )
            .into_bytes(),
        )];
        files.extend(
            files_under(&dir)
                .filter(|(p, _)| *p != "Cargo.toml")
                .map(|(p, b)| (p.to_owned(), b.to_vec())),
        );
        crates.push(VendoredCrate { name, files });
        queue.extend(path_deps);
        done.push(dir);
    }
    Ok(crates)
}

/// The workspace `dir` belongs to: the nearest embedded manifest above it
/// with a `[workspace]`, and that manifest's directory.
fn workspace_of(dir: &str) -> Result<Option<(String, Table)>, String> {
    let mut ancestor = dir.to_owned();
    while let Some(parent) = join(&ancestor, "..") {
        let path = manifest_path(&parent);
        if file(&path).is_some()
            && let Some(Value::Table(workspace)) = parse(&path)?.remove("workspace")
        {
            return Ok(Some((parent, workspace)));
        }
        ancestor = parent;
    }
    Ok(None)
}

/// The manifest of the crate in `dir`, standalone: its package name, the
/// TOML, and the repository directories of the path dependencies it keeps.
fn standalone_manifest(dir: &str) -> Result<(String, String, Vec<String>), String> {
    let mut manifest = parse(&manifest_path(dir))?;
    let (workspace_dir, workspace) = workspace_of(dir)?.unwrap_or_default();
    let empty = Table::new();
    let section = |key: &str| {
        workspace
            .get(key)
            .and_then(Value::as_table)
            .unwrap_or(&empty)
    };

    let package = manifest
        .get_mut("package")
        .and_then(Value::as_table_mut)
        .ok_or_else(|| format!("{dir}/Cargo.toml has no [package]"))?;
    for (key, value) in package.iter_mut() {
        if inherits(value) {
            *value = section("package")
                .get(key)
                .cloned()
                .ok_or_else(|| format!("{dir}: package.{key} is not in [workspace.package]"))?;
        }
    }
    let name = package
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{dir}/Cargo.toml has no package.name"))?
        .to_owned();
    if manifest.get("lints").is_some_and(inherits) {
        manifest.insert("lints".into(), Value::Table(section("lints").clone()));
    }
    for key in ["dev-dependencies", "test", "bench", "example"] {
        manifest.remove(key);
    }

    let context = Inheritance {
        dir,
        workspace_dir: &workspace_dir,
        dependencies: section("dependencies"),
    };
    let mut path_deps = Vec::new();
    let mut dropped = Vec::new();
    for kind in ["dependencies", "build-dependencies"] {
        if let Some(deps) = manifest.get_mut(kind).and_then(Value::as_table_mut) {
            context.resolve(kind, deps, &mut path_deps, &mut dropped)?;
        }
    }
    if let Some(targets) = manifest.get_mut("target").and_then(Value::as_table_mut) {
        for (cfg, target) in targets.iter_mut() {
            let Some(target) = target.as_table_mut() else {
                continue;
            };
            target.remove("dev-dependencies");
            for kind in ["dependencies", "build-dependencies"] {
                if let Some(deps) = target.get_mut(kind).and_then(Value::as_table_mut) {
                    let at = format!("target.{cfg}.{kind}");
                    context.resolve(&at, deps, &mut path_deps, &mut dropped)?;
                }
            }
        }
    }
    if let Some(features) = manifest.get_mut("features").and_then(Value::as_table_mut) {
        drop_features_needing(features, &dropped);
    }
    let text = toml::to_string(&manifest).map_err(|e| format!("{dir}/Cargo.toml: {e}"))?;
    Ok((name, text, path_deps))
}

/// `{ workspace = true }`.
fn inherits(value: &Value) -> bool {
    value
        .as_table()
        .and_then(|t| t.get("workspace"))
        .and_then(Value::as_bool)
        == Some(true)
}

/// What a crate's dependencies are resolved against.
struct Inheritance<'a> {
    /// The crate's directory.
    dir: &'a str,
    /// Its workspace's directory.
    workspace_dir: &'a str,
    /// `[workspace.dependencies]`.
    dependencies: &'a Table,
}

impl Inheritance<'_> {
    /// Writes in what each dependency inherits and points path
    /// dependencies at their vendored copies (`../<package>`), collecting
    /// their directories; optional path dependencies that are not embedded
    /// are removed and named in `dropped`.
    fn resolve(
        &self,
        at: &str,
        deps: &mut Table,
        path_deps: &mut Vec<String>,
        dropped: &mut Vec<String>,
    ) -> Result<(), String> {
        for (name, dep) in deps.iter_mut() {
            let (mut resolved, base) = if inherits(dep) {
                (self.inherited(at, name, dep)?, self.workspace_dir)
            } else {
                match dep {
                    Value::Table(t) => (t.clone(), self.dir),
                    _ => continue,
                }
            };
            if let Some(path) = resolved.get("path").and_then(Value::as_str) {
                let target = join(base, path)
                    .ok_or_else(|| format!("{}: {at}.{name}: {path} is outside", self.dir))?;
                match file(&manifest_path(&target)) {
                    Some(_) => {
                        let package = parse(&manifest_path(&target))?
                            .get("package")
                            .and_then(|p| p.get("name"))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                            .ok_or_else(|| format!("{target}/Cargo.toml has no package.name"))?;
                        resolved.insert("path".into(), Value::String(format!("../{package}")));
                        path_deps.push(target);
                    }
                    None if resolved.get("optional").and_then(Value::as_bool) == Some(true) => {
                        dropped.push(name.clone());
                    }
                    None => {
                        return Err(format!(
                            "{}: {at}.{name} is a path dependency on {target}, which is not embedded (host/switchyard/build.rs)",
                            self.dir
                        ));
                    }
                }
            }
            *dep = Value::Table(resolved);
        }
        deps.retain(|name, _| !dropped.iter().any(|d| d == name));
        Ok(())
    }

    /// A `{ workspace = true, … }` dependency with the workspace's entry
    /// merged in (features add up; the member's other keys win).
    fn inherited(&self, at: &str, name: &str, member: &Value) -> Result<Table, String> {
        let mut resolved = match self.dependencies.get(name) {
            Some(Value::String(version)) => {
                let mut t = Table::new();
                t.insert("version".into(), Value::String(version.clone()));
                t
            }
            Some(Value::Table(t)) => t.clone(),
            _ => {
                return Err(format!(
                    "{}: {at}.{name} is not in [workspace.dependencies]",
                    self.dir
                ));
            }
        };
        for (key, value) in member.as_table().into_iter().flatten() {
            match key.as_str() {
                "workspace" => {}
                "features" => {
                    let features = resolved
                        .entry("features")
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let (Value::Array(all), Value::Array(more)) = (features, value) {
                        all.extend(more.iter().cloned());
                    }
                }
                _ => {
                    resolved.insert(key.clone(), value.clone());
                }
            }
        }
        Ok(resolved)
    }
}

/// Removes the features that enable a dropped dependency, and those that
/// enable a removed feature.
fn drop_features_needing(features: &mut Table, dropped: &[String]) {
    let mut gone: Vec<String> = Vec::new();
    loop {
        let needs_gone = |entry: &Value| {
            let Some(entry) = entry.as_str() else {
                return false;
            };
            let target = entry.strip_prefix("dep:").unwrap_or(entry);
            let target = target.split('/').next().unwrap_or(target);
            let target = target.trim_end_matches('?');
            dropped.iter().chain(&gone).any(|d| d == target)
        };
        let newly: Vec<String> = features
            .iter()
            .filter(|(name, list)| {
                !gone.contains(name)
                    && list
                        .as_array()
                        .is_some_and(|entries| entries.iter().any(needs_gone))
            })
            .map(|(name, _)| name.clone())
            .collect();
        if newly.is_empty() {
            break;
        }
        gone.extend(newly);
    }
    features.retain(|name, _| !gone.iter().any(|g| g == name));
}

/// `plugins/Cargo.lock` without the plugins workspace's own crates (the
/// vendored ones excepted): the lock file a new plugin crate starts from,
/// so that it resolves the dependency versions this repository builds and
/// tests, offline.
pub(crate) fn starting_lock_file(vendored: &[VendoredCrate]) -> Result<String, String> {
    let mut lock = parse("plugins/Cargo.lock")?;
    if let Some(Value::Array(packages)) = lock.get_mut("package") {
        packages.retain(|p| {
            p.get("source").is_some()
                || p.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| vendored.iter().any(|c| c.name == n))
        });
    }
    let body = toml::to_string(&lock).map_err(|e| format!("plugins/Cargo.lock: {e}"))?;
    Ok(format!(
        "# This file is automatically @generated by Cargo.\n# It is not intended for manual editing.\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(c: &VendoredCrate) -> Table {
        std::str::from_utf8(&c.files[0].1).unwrap().parse().unwrap()
    }

    #[test]
    fn the_sdk_and_the_contract_are_embedded() {
        let sdk: Vec<&str> = files_under(SDK_DIR).map(|(p, _)| p).collect();
        assert!(
            sdk.contains(&"Cargo.toml") && sdk.contains(&"src/lib.rs"),
            "{sdk:?}"
        );
        assert!(sdk.iter().all(|p| !p.starts_with("target/")), "{sdk:?}");
        let wit: Vec<&str> = files_under(WIT_DIR).map(|(p, _)| p).collect();
        for version in ["1.0.0", "1.1.0", "1.2.0"] {
            let file = format!("participant@{version}/participant.wit");
            assert!(wit.contains(&file.as_str()), "{wit:?}");
        }
    }

    #[test]
    fn vendored_manifests_inherit_nothing_and_point_at_each_other() {
        let crates = vendored_crates().unwrap();
        assert_eq!(crates[0].name, "switchyard-sdk");
        for c in &crates {
            let text = std::str::from_utf8(&c.files[0].1).unwrap();
            assert!(!text.contains("workspace ="), "{}: {text}", c.name);
            let m = manifest(c);
            assert!(m.get("dev-dependencies").is_none(), "{}", c.name);
            let package = m["package"].as_table().unwrap();
            assert_eq!(package["name"].as_str(), Some(c.name.as_str()));
            assert!(package["version"].is_str() && package["edition"].is_str());
            for (name, dep) in m
                .get("dependencies")
                .and_then(Value::as_table)
                .into_iter()
                .flatten()
            {
                if let Some(path) = dep.get("path").and_then(Value::as_str) {
                    let target = path.strip_prefix("../").unwrap();
                    assert!(
                        crates.iter().any(|v| v.name == target),
                        "{}: {name} → {path} is not vendored",
                        c.name
                    );
                }
            }
        }
        let sdk = manifest(&crates[0]);
        let wit_bindgen = sdk["dependencies"]["wit-bindgen"].as_table().unwrap();
        assert!(wit_bindgen["version"].is_str(), "{wit_bindgen:?}");
        assert_eq!(wit_bindgen["optional"].as_bool(), Some(true));
    }

    #[test]
    fn inherited_dependencies_merge_features() {
        let workspace: Table = r#"
            plain = "1.2"
            detailed = { version = "2", features = ["a"] }
        "#
        .parse()
        .unwrap();
        let mut deps: Table = r#"
            plain = { workspace = true, optional = true }
            detailed = { workspace = true, features = ["b"] }
            registry = "3"
        "#
        .parse()
        .unwrap();
        let context = Inheritance {
            dir: "plugins/sdk",
            workspace_dir: "plugins",
            dependencies: &workspace,
        };
        let (mut paths, mut dropped) = (Vec::new(), Vec::new());
        context
            .resolve("dependencies", &mut deps, &mut paths, &mut dropped)
            .unwrap();
        assert_eq!(deps["plain"]["version"].as_str(), Some("1.2"));
        assert_eq!(deps["plain"]["optional"].as_bool(), Some(true));
        let features: Vec<&str> = deps["detailed"]["features"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(features, ["a", "b"]);
        assert_eq!(deps["registry"].as_str(), Some("3"));
        assert!(paths.is_empty() && dropped.is_empty());
    }

    #[test]
    fn path_dependencies_are_vendored_dropped_when_optional_or_refused() {
        let workspace: Table = r#"
            codec = { path = "../host/iso8583", default-features = false }
            elsewhere = { path = "../nowhere" }
        "#
        .parse()
        .unwrap();
        let context = Inheritance {
            dir: "plugins/sdk",
            workspace_dir: "plugins",
            dependencies: &workspace,
        };
        let mut deps: Table = r#"
            codec = { workspace = true, optional = true }
            elsewhere = { workspace = true, optional = true }
        "#
        .parse()
        .unwrap();
        let (mut paths, mut dropped) = (Vec::new(), Vec::new());
        context
            .resolve("dependencies", &mut deps, &mut paths, &mut dropped)
            .unwrap();
        assert_eq!(paths, ["host/iso8583"]);
        assert_eq!(
            deps["codec"]["path"].as_str(),
            Some("../switchyard-iso8583")
        );
        assert_eq!(dropped, ["elsewhere"]);
        assert!(!deps.contains_key("elsewhere"));

        let mut features: Table = r#"
            default = ["guest"]
            guest = []
            far = ["dep:elsewhere"]
            farther = ["far", "guest"]
            weak = ["elsewhere?/x"]
        "#
        .parse()
        .unwrap();
        drop_features_needing(&mut features, &dropped);
        let left: Vec<&String> = features.keys().collect();
        assert_eq!(left, ["default", "guest"]);

        let mut deps: Table = "elsewhere = { workspace = true }".parse().unwrap();
        let err = context
            .resolve("dependencies", &mut deps, &mut paths, &mut dropped)
            .unwrap_err();
        assert!(
            err.contains("elsewhere is a path dependency on nowhere"),
            "{err}"
        );
    }

    #[test]
    fn paths_are_joined_inside_the_repository() {
        assert_eq!(
            join("plugins", "../host/iso8583").as_deref(),
            Some("host/iso8583")
        );
        assert_eq!(join("plugins/sdk", "..").as_deref(), Some("plugins"));
        assert_eq!(join("plugins", "..").as_deref(), Some(""));
        assert_eq!(join("", ".."), None);
    }

    #[test]
    fn the_starting_lock_file_keeps_registry_and_vendored_crates() {
        let crates = vendored_crates().unwrap();
        let lock: Table = starting_lock_file(&crates).unwrap().parse().unwrap();
        let names: Vec<&str> = lock["package"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p.get("name").and_then(Value::as_str))
            .collect();
        assert!(names.contains(&"switchyard-sdk"), "{names:?}");
        assert!(names.contains(&"wit-bindgen"), "{names:?}");
        assert!(!names.contains(&"validate"), "{names:?}");
    }
}
