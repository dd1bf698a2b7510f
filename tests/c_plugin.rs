//! The participant contract is language-neutral: `examples/c-plugin`, a
//! participant written in C against `switchyard:participant@1.0.0` (built
//! with clang and wasm-component-ld; the component is committed, so this
//! needs no C toolchain), runs in the real runtime beside the Rust plugins:
//! in a pipeline with `validate` and `local-auth`, and end to end through
//! the switch over TCP.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use switchyard::client::RequestSpec;
use switchyard::config::{Config, DEFAULT_CONFIG};
use switchyard_engine::{Context, Outcome, Participant, PipelineBuilder, Step, Verdict};
use switchyard_iso8583::{Message, Spec};
use switchyard_runtime::{
    PluginOptions, RegistryBuilder, Role, Runtime, RuntimeOptions, Settings, WasmParticipant,
};
use switchyard_tests::{TEST_PAN, TestSwitch, shared_data_dir};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn blocklist_wasm() -> PathBuf {
    repo().join("examples/c-plugin/blocklist.wasm")
}

fn participant(runtime: &Runtime, name: &str, settings: &[(&str, &str)]) -> Arc<WasmParticipant> {
    let bytes = match name {
        "blocklist" => std::fs::read(blocklist_wasm()).unwrap(),
        bundled => switchyard_bundled_plugins::get(bundled).unwrap().to_vec(),
    };
    let mut registry = RegistryBuilder::new(runtime.clone(), None);
    let slot = registry
        .load(name, &bytes, PluginOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let settings = Settings(
        settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    Arc::new(WasmParticipant::new(registry.build(), slot, Role::Participant, settings).unwrap())
}

/// A 0200 on the test card as a listener hands it over (encoded, decoded).
fn purchase() -> Message {
    let spec = Spec::iso87_ascii();
    let request = RequestSpec::financial("0200", TEST_PAN, 1_000, 42)
        .build()
        .unwrap();
    spec.decode(spec.encode(&request).unwrap()).unwrap()
}

fn context(request: Message) -> Context {
    let mut ctx = Context::new("default".into(), "local".into(), 5001, request);
    ctx.spec = Some(Arc::new(Spec::iso87_ascii()));
    ctx
}

#[test]
fn the_c_participant_reads_the_contract_like_a_rust_one() {
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let blocking = participant(&runtime, "blocklist", &[("bins", "400000, 476173")]);
    let mut ctx = context(purchase());
    assert_eq!(blocking.prepare(&mut ctx).unwrap(), Outcome::ABORTED);
    assert_eq!(ctx.result_code(), Some("62"));
    blocking.abort(&mut ctx).unwrap();

    let allowing = participant(&runtime, "blocklist", &[("bins", "400000,411111")]);
    let mut ctx = context(purchase());
    let outcome = allowing.prepare(&mut ctx).unwrap();
    assert_eq!(outcome.bits(), 0x41, "PREPARED|NO_JOIN: {outcome:?}");
    assert_eq!(ctx.result_code(), None);

    // No card, or no setting: nothing to block.
    let mut no_card = purchase();
    no_card.remove(2);
    let mut ctx = context(no_card);
    assert_eq!(blocking.prepare(&mut ctx).unwrap().bits(), 0x41);
    let unconfigured = participant(&runtime, "blocklist", &[]);
    let mut ctx = context(purchase());
    assert_eq!(unconfigured.prepare(&mut ctx).unwrap().bits(), 0x41);
}

#[tokio::test]
async fn in_a_pipeline_with_rust_plugins_it_declines_blocked_bins_with_62() {
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let pipeline = |bins: &str| {
        let mut b = PipelineBuilder::new("acquirer");
        for (name, step) in [
            ("validate", participant(&runtime, "validate", &[])),
            (
                "blocklist",
                participant(&runtime, "blocklist", &[("bins", bins)]),
            ),
            ("local-auth", participant(&runtime, "local-auth", &[])),
        ] {
            b.participant(name, Step::Sync(step)).unwrap();
        }
        b.main(&["validate", "blocklist", "local-auth"]);
        b.build().unwrap()
    };

    let blocked = pipeline("476173");
    let mut ctx = context(purchase());
    let done = blocked.run(&mut ctx).await;
    assert_eq!(done.verdict, Verdict::Aborted);
    assert!(done.failures.is_empty(), "{:?}", done.failures);
    assert_eq!(ctx.result_code(), Some("62"));
    assert!(!ctx.response.contains(38), "local-auth must not have run");

    let allowed = pipeline("400000");
    let mut ctx = context(purchase());
    let done = allowed.run(&mut ctx).await;
    assert_eq!(done.verdict, Verdict::Committed);
    assert_eq!(ctx.result_code(), Some("00"));
    assert_eq!(ctx.response.get(38).map(<[u8]>::len), Some(6));

    // validate still runs first: a bad card is 14, not 62.
    let mut bad_card = purchase();
    bad_card.set(2, "4761739001010118");
    let mut ctx = context(bad_card);
    blocked.run(&mut ctx).await;
    assert_eq!(ctx.result_code(), Some("14"));
}

/// The default config with the C plugin after `validate`.
fn config_with_blocklist(bins: &str) -> Config {
    let pipeline = "participants = [\"validate\", \"by-mti\"]";
    assert!(
        DEFAULT_CONFIG.contains(pipeline),
        "the default pipeline changed"
    );
    let text = DEFAULT_CONFIG.replace(
        pipeline,
        "participants = [\"validate\", \"blocklist\", \"by-mti\"]",
    ) + &format!(
        "\n[plugins.blocklist]\nfile = \"examples/c-plugin/blocklist.wasm\"\n\n\
         [participants.blocklist]\nplugin = \"blocklist\"\nconfig = {{ bins = \"{bins}\" }}\n"
    );
    let mut config =
        Config::parse(&text, "c-plugin test config", &repo()).unwrap_or_else(|e| panic!("{e}"));
    config.switch.data_dir = shared_data_dir();
    config.switch.cache_dir = switchyard_tests::cache_dir();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_over_tcp_a_blocked_bin_is_answered_62() {
    let sw = TestSwitch::start(config_with_blocklist("476173")).await;
    for (port, stan) in [(5001, 101), (5002, 102)] {
        let response = sw
            .exchange(port, &RequestSpec::financial("0200", TEST_PAN, 1_000, stan))
            .await;
        assert_eq!(response.mti().as_str(), "0210");
        assert_eq!(response.get_str(39), Some("62"), "port {port}");
        assert!(!response.contains(38) && !response.contains(2));
    }
    // An echo has no card: the blocklist does not join, the echo is answered.
    let echo = sw
        .exchange(5001, &RequestSpec::financial("0800", TEST_PAN, 0, 103))
        .await;
    assert_eq!(echo.get_str(39), Some("00"));
    sw.switch.shutdown().await.unwrap();

    let sw = TestSwitch::start(config_with_blocklist("400000")).await;
    let response = sw
        .exchange(5001, &RequestSpec::financial("0200", TEST_PAN, 1_000, 104))
        .await;
    assert_eq!(response.get_str(39), Some("00"));
    sw.switch.shutdown().await.unwrap();
}
