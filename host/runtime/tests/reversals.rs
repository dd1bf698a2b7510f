//! Contract 1.2.0 through the runtime: `reversible` (a participant undoes a
//! reversed transaction) and `store-and-forward` (a formatter builds
//! reversals and advices); plugins built against 1.0.0 and 1.1.0 still load
//! and run, and an endpoint refuses a formatter that cannot build reversals,
//! at load and at swap.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{MemoryCounters, MemoryKv};
use switchyard_engine::ports::SafKind;
use switchyard_engine::{Context, FailureKind, Formatter, Outcome, Participant, SafMessage};
use switchyard_iso8583::{Message, Mti, Spec};
use switchyard_runtime::{
    Capability, LoadError, PluginOptions, Registry, RegistryBuilder, Role, Runtime, RuntimeOptions,
    Settings, WasmFormatter, WasmParticipant,
};

const TEST_PAN: &str = "4761739001010119";

/// The message that refuses a formatter without `store-and-forward` for an
/// endpoint.
const NO_SAF: &str = "it does not export switchyard:participant/store-and-forward@1.3.0: \
    an endpoint needs it to build the reversal of a transaction that timed out and to forward \
    acquirer reversals and advices; rebuild the formatter against contract 1.2.0 \
    (SDK: implement Formatter::format_saf)";

fn bytes(name: &str) -> Vec<u8> {
    match switchyard_bundled_plugins::get(name) {
        Some(b) => b.to_vec(),
        None => std::fs::read(switchyard_bundled_plugins::plugin_path(name))
            .unwrap_or_else(|e| panic!("{name}: {e}")),
    }
}

fn runtime(kv: Arc<MemoryKv>) -> Runtime {
    Runtime::new(RuntimeOptions {
        kv: Some(kv),
        counters: Some(Arc::new(MemoryCounters::default())),
        ..RuntimeOptions::default()
    })
    .unwrap()
}

/// A registry of one plugin.
fn one_plugin(runtime: &Runtime, name: &str, options: PluginOptions) -> Arc<Registry> {
    let mut builder = RegistryBuilder::new(runtime.clone(), None);
    builder.load(name, &bytes(name), options).unwrap();
    builder.build()
}

fn message(mti: &str, fields: &[(u16, &str)]) -> Message {
    let mut m = Message::new(Mti::new(mti).unwrap());
    for &(n, v) in fields {
        m.set(n, Bytes::copy_from_slice(v.as_bytes()));
    }
    m
}

/// The original of the reversal tests: an 0200 for 10.00 from acquirer
/// 12345.
fn original() -> Message {
    message(
        "0200",
        &[
            (2, TEST_PAN),
            (3, "000000"),
            (4, "000000001000"),
            (7, "0615115959"),
            (11, "000123"),
            (14, "3012"),
            (22, "051"),
            (32, "12345"),
            (37, "516612345678"),
            (41, "TERM0001"),
            (49, "840"),
        ],
    )
}

fn ctx(tenant: &str, request: Message) -> Context {
    let mut c = Context::new(tenant.into(), "local".into(), 5001, request);
    c.spec = Some(Arc::new(Spec::iso87_ascii()));
    c
}

/// The context the host hands to `reverse`: the original request and the
/// response it got, `TRANLOG_ID` and `REVERSAL_REASON`.
fn reversal_ctx(tenant: &str, tranlog_id: i64, response: &Message) -> Context {
    let mut c = ctx(tenant, original());
    c.response = response.clone();
    c.set_result_code("00");
    c.tranlog_id = Some(tranlog_id);
    c.set_var("REVERSAL_REASON", "68");
    c
}

/// The TPDU-less message of a formatter-xxx payload.
fn decode_xxx(payload: &[u8]) -> Message {
    assert_eq!(payload[0], 0x60, "a TPDU first");
    Spec::iso87_ascii()
        .decode(Bytes::copy_from_slice(&payload[5..]))
        .unwrap()
}

#[test]
fn a_1_0_0_participant_and_a_1_1_0_formatter_still_load_and_run() {
    let rt = runtime(Arc::default());
    // 1.0.0: a participant, no `reversible`.
    let v1 = rt
        .load("test-v1", &bytes("test-v1"), PluginOptions::default())
        .unwrap();
    assert_eq!(v1.roles(), [Role::Participant]);
    assert!(!v1.exports_reversible());
    let registry = one_plugin(&rt, "test-v1", PluginOptions::default());
    let p = WasmParticipant::new(registry, 0, Role::Participant, Settings::default()).unwrap();
    let mut cash = ctx("t", original());
    cash.request.set(3, Bytes::from_static(b"010000"));
    assert_eq!(p.prepare(&mut cash).unwrap(), Outcome::ABORTED);
    assert_eq!(cash.result_code(), Some("57"));
    assert!(
        p.reverse(&mut reversal_ctx("t", 1, &Message::default()))
            .is_none(),
        "a 1.0.0 participant is not reversible"
    );

    // 1.1.0: a formatter, no `store-and-forward`.
    let v11 = rt
        .load("test-v1-1", &bytes("test-v1-1"), PluginOptions::default())
        .unwrap();
    assert_eq!(v11.roles(), [Role::Formatter]);
    assert!(!v11.exports_store_and_forward());
    let registry = one_plugin(&rt, "test-v1-1", PluginOptions::default());
    let f = WasmFormatter::new(registry, 0, Settings::default()).unwrap();
    let mut c = ctx("t", original());
    let out = f.format_request(&mut c).unwrap();
    assert_eq!(out.payload, b"REQ|000123|TERM0001|000000001000");
    assert_eq!(out.key, "000123|TERM0001");
    assert_eq!(f.reply_key(b"RSP|000123|TERM0001|05").unwrap(), out.key);
    f.parse_response(&mut c, b"RSP|000123|TERM0001|05").unwrap();
    assert_eq!(c.result_code(), Some("05"));
    // Asked for a reversal anyway, it says why it cannot.
    let failure = f
        .format_saf(
            &mut ctx("t", original()),
            &SafMessage {
                kind: SafKind::Reversal,
                retransmission: false,
                reason: "68".into(),
            },
        )
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::Host);
    assert!(
        failure.message.starts_with("formatter test-v1-1 ")
            && failure
                .message
                .contains("does not export switchyard:participant/store-and-forward@1.3.0"),
        "{failure}"
    );
}

#[test]
fn an_endpoint_refuses_a_formatter_without_store_and_forward() {
    let rt = runtime(Arc::default());
    let registry = one_plugin(&rt, "test-v1-1", PluginOptions::default());
    let err = WasmFormatter::for_endpoint(registry.clone(), 0, Settings::default())
        .err()
        .expect("refused");
    assert!(matches!(err, LoadError::Exports { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("plugin test-v1-1 cannot act as a formatter of an endpoint: {NO_SAF}")
    );
    let plugin = registry.current().plugin(0).clone();
    assert_eq!(
        plugin
            .check_role(Role::EndpointFormatter)
            .unwrap_err()
            .to_string(),
        err.to_string()
    );
    // A participant is not a formatter of an endpoint either, for the
    // older reason.
    let validate = rt
        .load("validate", &bytes("validate"), PluginOptions::default())
        .unwrap();
    assert_eq!(
        validate
            .check_role(Role::EndpointFormatter)
            .unwrap_err()
            .to_string(),
        "plugin validate cannot act as a formatter of an endpoint: it does not export \
         switchyard:participant/formatter@1.3.0"
    );
    let xxx = rt
        .load(
            "formatter-xxx",
            &bytes("formatter-xxx"),
            PluginOptions::default(),
        )
        .unwrap();
    assert_eq!(xxx.roles(), [Role::Formatter, Role::EndpointFormatter]);
}

#[test]
fn a_swap_to_a_formatter_without_store_and_forward_is_refused() {
    let rt = runtime(Arc::default());
    let registry = one_plugin(&rt, "formatter-xxx", PluginOptions::default());
    let f = WasmFormatter::for_endpoint(registry.clone(), 0, Settings::default()).unwrap();
    let live = registry.current().plugin(0).version().to_owned();
    let err = registry
        .swap("formatter-xxx", &bytes("test-v1-1"), "test")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("plugin formatter-xxx cannot act as a formatter of an endpoint: {NO_SAF}")
    );
    // Nothing changed: the endpoint still reverses.
    assert_eq!(registry.current().plugin(0).version(), live);
    let out = f
        .format_saf(
            &mut ctx("t", original()),
            &SafMessage {
                kind: SafKind::Reversal,
                retransmission: false,
                reason: "68".into(),
            },
        )
        .unwrap();
    assert_eq!(out.key, "0430|000123|TERM0001");
    // A formatter used for requests only may be swapped to it.
    let requests_only = registry_for_requests(&rt);
    requests_only
        .swap("formatter-xxx", &bytes("test-v1-1"), "test")
        .unwrap();
}

fn registry_for_requests(rt: &Runtime) -> Arc<Registry> {
    let registry = one_plugin(rt, "formatter-xxx", PluginOptions::default());
    WasmFormatter::new(registry.clone(), 0, Settings::default()).unwrap();
    registry
}

#[test]
fn formatter_xxx_builds_reversals_and_advices_through_the_runtime() {
    let rt = runtime(Arc::default());
    let registry = one_plugin(&rt, "formatter-xxx", PluginOptions::default());
    let f = WasmFormatter::for_endpoint(registry.clone(), 0, Settings::default()).unwrap();
    let saf = |kind, retransmission| SafMessage {
        kind,
        retransmission,
        reason: "68".into(),
    };

    // A reversal of the original, as the host asks after a timeout.
    let mut c = ctx("t", original());
    c.tranlog_id = Some(42);
    let out = f
        .format_saf(&mut c, &saf(SafKind::Reversal, false))
        .unwrap();
    assert_eq!(out.key, "0430|000123|TERM0001");
    let sent = decode_xxx(&out.payload);
    assert_eq!(sent.mti().as_str(), "0420");
    let fields: Vec<u16> = sent.field_numbers().collect();
    assert_eq!(fields, [2, 3, 4, 7, 11, 14, 37, 39, 41, 49, 90]);
    assert_eq!(sent.get_str(11), Some("000123"), "the same STAN");
    assert_eq!(sent.get_str(39), Some("68"));
    assert_eq!(
        sent.get_str(90),
        Some("020000012306151159590000001234500000000000")
    );
    let de7 = sent.get_str(7).unwrap();
    assert!(
        de7.len() == 10 && de7.bytes().all(|b| b.is_ascii_digit()),
        "a new DE7 from the host clock: {de7}"
    );
    // Retransmitted: an 0421, with the same key.
    let again = f
        .format_saf(&mut ctx("t", original()), &saf(SafKind::Reversal, true))
        .unwrap();
    assert_eq!(decode_xxx(&again.payload).mti().as_str(), "0421");
    assert_eq!(again.key, out.key);

    // The endpoint's 0430 matches the reversal's key, never the original's
    // 0210, and parse-response reads the acknowledgement.
    let mut ack = Vec::from(&[0x60, 0, 0, 0, 1][..]);
    let reply = message("0430", &[(11, "000123"), (39, "00"), (41, "TERM0001")]);
    ack.extend_from_slice(&Spec::iso87_ascii().encode(&reply).unwrap());
    assert_eq!(f.reply_key(&ack).unwrap(), out.key);
    let mut late = Vec::from(&[0x60, 0, 0, 0, 1][..]);
    let reply = message("0210", &[(11, "000123"), (39, "00"), (41, "TERM0001")]);
    late.extend_from_slice(&Spec::iso87_ascii().encode(&reply).unwrap());
    assert_ne!(f.reply_key(&late).unwrap(), out.key);
    let mut c = ctx("t", original());
    f.format_saf(&mut c, &saf(SafKind::Reversal, false))
        .unwrap();
    f.parse_response(&mut c, &ack).unwrap();
    assert_eq!(c.result_code(), Some("00"));

    // An advice: the acquirer's 0220 as received.
    let completion = message(
        "0220",
        &[
            (2, TEST_PAN),
            (3, "000000"),
            (4, "000000000800"),
            (11, "000124"),
            (38, "AB1234"),
            (41, "TERM0001"),
        ],
    );
    let out = f
        .format_saf(
            &mut ctx("t", completion.clone()),
            &saf(SafKind::Advice, false),
        )
        .unwrap();
    assert_eq!(out.key, "0230|000124|TERM0001");
    let sent = decode_xxx(&out.payload);
    assert_eq!(sent.mti().as_str(), "0220");
    for n in completion.field_numbers() {
        assert_eq!(sent.get(n), completion.get(n), "DE{n}");
    }
    let out = f
        .format_saf(&mut ctx("t", completion), &saf(SafKind::Advice, true))
        .unwrap();
    assert_eq!(decode_xxx(&out.payload).mti().as_str(), "0221");

    // What the formatter refuses is a Rejected failure naming it and the call.
    let failure = f
        .format_saf(&mut ctx("t", original()), &saf(SafKind::Advice, false))
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::Rejected);
    assert!(
        failure.message.starts_with("formatter formatter-xxx ")
            && failure.message.contains("format-saf: an advice forwards"),
        "{failure}"
    );
    // A local reversal is the host's: no endpoint message.
    let failure = f
        .format_saf(
            &mut ctx("t", original()),
            &saf(SafKind::LocalReversal, false),
        )
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::Host);
    assert!(failure.message.contains("local reversal"), "{failure}");
}

#[test]
fn a_reversal_reaches_the_participant_once_per_tranlog_id() {
    let kv = Arc::new(MemoryKv::default());
    let rt = runtime(kv.clone());
    let options = PluginOptions {
        grants: Capability::ALL.to_vec(),
        ..PluginOptions::default()
    };
    let registry = one_plugin(&rt, "test-capabilities", options);
    assert!(registry.current().plugin(0).exports_reversible());
    let p = WasmParticipant::new(registry, 0, Role::Participant, Settings::default()).unwrap();
    let points = || {
        kv.get("acme", "test-capabilities", TEST_PAN)
            .map(|v| String::from_utf8(v).unwrap())
    };

    // Two purchases of 10.00 commit: 20 points.
    let mut responses = Vec::new();
    for expected in ["n=1;p=10", "n=2;p=20"] {
        let mut c = ctx("acme", original());
        assert_eq!(p.prepare(&mut c).unwrap(), Outcome::PREPARED);
        assert_eq!(c.response.get_str(44), Some(expected));
        p.commit(&mut c).unwrap();
        responses.push(c.response.clone());
    }
    assert_eq!(points().as_deref(), Some("20"));

    // The first is reversed; the reversal is delivered twice (at least
    // once): its points come back once.
    for _ in 0..2 {
        let mut c = reversal_ctx("acme", 1001, &responses[0]);
        assert_eq!(p.reverse(&mut c), Some(Ok(())));
        assert_eq!(points().as_deref(), Some("10"));
    }
    assert!(kv.get("acme", "test-capabilities", "rev:1001").is_some());
    // Another tenant's reversal of the same row id is its own.
    let mut c = reversal_ctx("globex", 1001, &responses[0]);
    assert_eq!(p.reverse(&mut c), Some(Ok(())));
    assert_eq!(points().as_deref(), Some("10"));

    // An aborted transaction gives its points back in `abort`.
    let mut c = ctx("acme", original());
    assert_eq!(p.prepare(&mut c).unwrap(), Outcome::PREPARED);
    assert_eq!(points().as_deref(), Some("20"));
    p.abort(&mut c).unwrap();
    assert_eq!(points().as_deref(), Some("10"));

    // A reversal the plugin refuses (no TRANLOG_ID: the switch runs without
    // a tranlog) is a Rejected failure naming plugin and call.
    let mut c = ctx("acme", original());
    let failure = p.reverse(&mut c).unwrap().unwrap_err();
    assert_eq!(failure.kind, FailureKind::Rejected);
    assert!(
        failure
            .message
            .starts_with("participant test-capabilities ")
            && failure
                .message
                .contains(": reverse: test-capabilities: a reversal without TRANLOG_ID"),
        "{failure}"
    );
    assert_eq!(points().as_deref(), Some("10"));
}

#[test]
fn nothing_to_undo_succeeds_and_a_failing_reversal_is_classified() {
    let rt = runtime(Arc::default());
    // An SDK participant with nothing to undo is reversible and succeeds.
    let registry = one_plugin(&rt, "validate", PluginOptions::default());
    let validate =
        WasmParticipant::new(registry, 0, Role::Participant, Settings::default()).unwrap();
    assert_eq!(
        validate.reverse(&mut reversal_ctx("t", 7, &Message::default())),
        Some(Ok(()))
    );

    // test-capabilities without a kv store: its kv calls fail, so `reverse`
    // returns err → Rejected (the host retries it later).
    let no_kv = Runtime::new(RuntimeOptions::default()).unwrap();
    let options = PluginOptions {
        grants: Capability::ALL.to_vec(),
        ..PluginOptions::default()
    };
    let registry = one_plugin(&no_kv, "test-capabilities", options);
    let p = WasmParticipant::new(registry, 0, Role::Participant, Settings::default()).unwrap();
    let failure = p
        .reverse(&mut reversal_ctx("t", 7, &Message::default()))
        .unwrap()
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::Rejected, "{failure}");
    assert!(failure.message.contains("rev:7"), "{failure}");
}
