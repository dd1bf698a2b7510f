//! How often a transaction crosses into components (contract 1.4.0): the
//! default `acquirer` pipeline on port 5001 — validate, by-mti, by-port
//! (both `case-switch`), local-auth, close, send — makes one call per
//! plugin step: a selector's `prepare` and `select` are one
//! `prepare-select`, and local-auth (abort-only) gets no `commit`. An
//! abort still reaches local-auth's `abort`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use switchyard_engine::steps::Close;
use switchyard_engine::{
    Context, Failure, Outcome, Participant, Pipeline, PipelineBuilder, Step, Verdict,
};
use switchyard_iso8583::{Message, Mti, Spec};
use switchyard_runtime::{
    PluginOptions, Registry, RegistryBuilder, Role, Runtime, RuntimeOptions, Settings,
    WasmParticipant,
};

const TEST_PAN: &str = "4761739001010119";

const PLUGINS: [&str; 3] = ["validate", "case-switch", "local-auth"];

fn registry() -> Arc<Registry> {
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let mut builder = RegistryBuilder::new(runtime, None);
    for name in PLUGINS {
        let bytes = switchyard_bundled_plugins::get(name).unwrap();
        builder.load(name, bytes, PluginOptions::default()).unwrap();
    }
    builder.build()
}

fn step(registry: &Arc<Registry>, name: &str, role: Role, config: &[(&str, &str)]) -> Step {
    let settings = Settings(
        config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    let slot = registry.slot(name).unwrap();
    Step::Sync(Arc::new(
        WasmParticipant::new(registry.clone(), slot, role, settings).unwrap(),
    ))
}

/// Marks the response to be sent (what the host's `send` does).
struct Send;

impl Participant for Send {
    fn prepare(&self, _ctx: &mut Context) -> Result<Outcome, Failure> {
        Ok(Outcome::PREPARED)
    }
    fn prepare_for_abort(&self, _ctx: &mut Context) -> Option<Result<Outcome, Failure>> {
        Some(Ok(Outcome::PREPARED))
    }
    fn commit(&self, ctx: &mut Context) -> Result<(), Failure> {
        ctx.respond = true;
        Ok(())
    }
    fn abort(&self, ctx: &mut Context) -> Result<(), Failure> {
        self.commit(ctx)
    }
}

/// Refuses every transaction: a participant after local-auth that aborts.
struct Refuse;

impl Participant for Refuse {
    fn prepare(&self, ctx: &mut Context) -> Result<Outcome, Failure> {
        ctx.set_result_code("05".to_owned());
        Ok(Outcome::ABORTED)
    }
}

/// The default `acquirer` pipeline (config/switchyard.toml); with
/// `refuse`, a participant that aborts runs right after local-auth.
fn acquirer(registry: &Arc<Registry>, refuse: bool) -> Pipeline {
    let mut b = PipelineBuilder::new("acquirer");
    b.on_begin(registry.pin_hook());
    let by_mti = [
        ("switch", "MTI"),
        ("case 0800", "close send"),
        ("default", "by-port"),
    ];
    let by_port = [
        ("switch", "PORT"),
        (
            "case 5001",
            if refuse {
                "local-auth refuse close send"
            } else {
                "local-auth close send"
            },
        ),
        ("default", "close send"),
    ];
    let steps = [
        (
            "validate",
            step(registry, "validate", Role::Participant, &[]),
        ),
        (
            "by-mti",
            step(registry, "case-switch", Role::Selector, &by_mti),
        ),
        (
            "by-port",
            step(registry, "case-switch", Role::Selector, &by_port),
        ),
        (
            "local-auth",
            step(registry, "local-auth", Role::Participant, &[]),
        ),
        ("refuse", Step::Sync(Arc::new(Refuse))),
        ("close", Step::Sync(Arc::new(Close))),
        ("send", Step::Sync(Arc::new(Send))),
    ];
    for (name, s) in steps {
        b.participant(name, s).unwrap();
    }
    b.main(&["validate", "by-mti"]);
    b.build().unwrap()
}

fn request(mti: &str) -> Message {
    let mut m = Message::new(Mti::new(mti).unwrap());
    let fields: &[(u16, &str)] = if mti == "0800" {
        &[(7, "1123101010"), (11, "000001"), (70, "301")]
    } else {
        &[
            (2, TEST_PAN),
            (3, "000000"),
            (4, "000000010000"),
            (11, "000001"),
            (14, "3012"),
            (41, "TERM0001"),
            (49, "978"),
        ]
    };
    for (f, v) in fields {
        m.set(*f, Bytes::copy_from_slice(v.as_bytes()));
    }
    m
}

/// Calls into every plugin so far.
fn calls(registry: &Registry) -> u64 {
    PLUGINS
        .iter()
        .map(|name| {
            let slot = registry.slot(name).unwrap();
            registry
                .current()
                .plugin(slot)
                .stats()
                .calls
                .load(Ordering::Relaxed)
        })
        .sum()
}

/// The output of a future that is ready at once (every step here is
/// synchronous).
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("a synchronous pipeline waited"),
    }
}

/// Runs `mti` on port 5001 and returns the context, the verdict and the
/// calls into components it made.
fn run(registry: &Arc<Registry>, pipeline: &Pipeline, mti: &str) -> (Context, Verdict, u64) {
    let mut ctx = Context::new("default".into(), "local".into(), 5001, request(mti));
    ctx.spec = Some(Arc::new(Spec::iso87_ascii()));
    let before = calls(registry);
    let verdict = ready(pipeline.run(&mut ctx)).verdict;
    (ctx, verdict, calls(registry) - before)
}

#[test]
fn an_approval_on_5001_crosses_into_components_four_times() {
    let registry = registry();
    let pipeline = acquirer(&registry, false);
    for _ in 0..3 {
        let (ctx, verdict, calls) = run(&registry, &pipeline, "0200");
        assert_eq!(verdict, Verdict::Committed);
        assert_eq!(ctx.result_code(), Some("00"));
        assert_eq!(ctx.response.get(38).map(<[u8]>::len), Some(6));
        assert!(ctx.respond);
        // validate.prepare, by-mti.prepare-select, by-port.prepare-select,
        // local-auth.prepare (no commit: abort-only). Contract 1.3.0: 7.
        assert_eq!(calls, 4);
    }
}

#[test]
fn an_echo_crosses_twice() {
    let registry = registry();
    let pipeline = acquirer(&registry, false);
    let (ctx, verdict, calls) = run(&registry, &pipeline, "0800");
    assert_eq!(verdict, Verdict::Committed);
    assert_eq!(ctx.result_code(), Some("00"));
    assert!(ctx.respond);
    // validate.prepare, by-mti.prepare-select (close send).
    assert_eq!(calls, 2);
}

#[test]
fn an_abort_after_local_auth_still_calls_its_abort() {
    let registry = registry();
    let pipeline = acquirer(&registry, true);
    for _ in 0..2 {
        let (ctx, verdict, calls) = run(&registry, &pipeline, "0200");
        assert_eq!(verdict, Verdict::Aborted);
        assert_eq!(ctx.result_code(), Some("05"));
        assert!(
            ctx.response.get(38).is_none(),
            "local-auth's abort cleared its authorization code"
        );
        assert!(ctx.respond);
        // The four prepares, then local-auth.abort.
        assert_eq!(calls, 5);
    }
}
