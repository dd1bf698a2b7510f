//! Loading plugins: the precompiled cache, and readable errors for bytes
//! that are not a component or a plugin that cannot play its role.

use switchyard_runtime::{
    LoadError, PluginOptions, RegistryBuilder, Role, Runtime, RuntimeOptions, Settings,
    WasmParticipant,
};

fn bundled(name: &str) -> &'static [u8] {
    switchyard_bundled_plugins::get(name).unwrap()
}

#[test]
fn precompiled_artifacts_are_cached_by_content_and_engine() {
    let dir = tempfile::tempdir().unwrap();
    let options = RuntimeOptions {
        cache_dir: Some(dir.path().to_owned()),
        ..RuntimeOptions::default()
    };
    let runtime = Runtime::new(options.clone()).unwrap();
    let first = runtime
        .load("validate", bundled("validate"), PluginOptions::default())
        .unwrap();
    let cached: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(cached.len(), 1, "one artifact");
    let name = cached[0].file_name().to_string_lossy().into_owned();
    assert!(
        name.starts_with(first.digest()) && name.ends_with(".cwasm"),
        "{name}"
    );
    // A new runtime (a restart) loads the same artifact.
    let again = Runtime::new(options).unwrap();
    let second = again
        .load("validate", bundled("validate"), PluginOptions::default())
        .unwrap();
    assert_eq!(first.version(), second.version());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // A corrupt artifact is replaced, not trusted.
    std::fs::write(cached[0].path(), b"not an artifact").unwrap();
    let third = Runtime::new(RuntimeOptions {
        cache_dir: Some(dir.path().to_owned()),
        ..RuntimeOptions::default()
    })
    .unwrap();
    third
        .load("validate", bundled("validate"), PluginOptions::default())
        .unwrap();
}

#[test]
fn bytes_that_are_not_a_component_are_refused_by_name() {
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let err = runtime
        .load("junk", b"\0asm garbage", PluginOptions::default())
        .unwrap_err();
    assert!(matches!(err, LoadError::Compile { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("plugin junk: not a valid WebAssembly component"),
        "{err}"
    );
}

#[test]
fn a_plugin_must_export_what_its_role_needs() {
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let mut builder = RegistryBuilder::new(runtime.clone(), None);
    let slot = builder
        .load(
            "formatter-xxx",
            bundled("formatter-xxx"),
            PluginOptions::default(),
        )
        .unwrap();
    let registry = builder.build();
    let err = WasmParticipant::new(registry, slot, Role::Participant, Settings::default())
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "plugin formatter-xxx cannot act as a participant: it does not export switchyard:participant/participant@1.3.0"
    );
    let validate = runtime
        .load("validate", bundled("validate"), PluginOptions::default())
        .unwrap();
    assert!(validate.check_role(Role::Selector).is_err());
    let switch = runtime
        .load(
            "case-switch",
            bundled("case-switch"),
            PluginOptions::default(),
        )
        .unwrap();
    assert!(switch.check_role(Role::Selector).is_ok());
}
