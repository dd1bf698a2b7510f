//! The sandbox's cost, side by side in one run: the same plugin source code
//! run as WASM components (the bundled ones) and compiled natively.
//!
//! - `pipeline/validate+local-auth`: one pass of the two participants;
//! - `transaction/default-5001`: a whole in-process transaction of the
//!   default wire contract on port 5001 — decode the frame, the `acquirer`
//!   pipeline (validate, by-mti, by-port, local-auth, close, send) and encode
//!   the response — which is what the sandbox adds to;
//! - `participant-call/validate.prepare`: one participant call;
//! - `participant-call/case-switch.prepare`: a call that does nothing, the
//!   floor of a crossing; `…/case-switch.prepare+select`: a selector's turn
//!   (one crossing since contract 1.4.0);
//! - `instance-policy/validate.prepare`: `reuse` vs `fresh` (a new instance
//!   from the pooling allocator for every transaction).
//!
//! `SWITCHYARD_BENCH_BASELINE_PLUGINS=DIR` adds
//! `transaction/default-5001/wasm-baseline`: the same pipeline with
//! `validate.wasm`, `case_switch.wasm` and `local_auth.wasm` from `DIR` (for
//! example built from an older revision), on this host.
//!
//! Times are wall-clock by default. With `SWITCHYARD_BENCH_CPU=1` they are
//! the bench thread's CPU time instead (`CLOCK_THREAD_CPUTIME_ID`), which a
//! busy shared machine does not inflate by descheduling the bench: use it
//! to compare native and WASM where other work competes for the cores.

use std::sync::Arc;

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, criterion_group};
use futures::executor::block_on;
use switchyard_benches::{Native, NativeSelector, sample_0200};
use switchyard_engine::steps::Close;
use switchyard_engine::{Context, Participant, Pipeline, PipelineBuilder, Step, Verdict};
use switchyard_iso8583::{Bytes, Message, Spec};
use switchyard_runtime::{
    InstancePolicy, PluginOptions, Registry, RegistryBuilder, Role, Runtime, RuntimeOptions,
    Settings, WasmParticipant,
};

fn settings(pairs: &[(&str, &str)]) -> Settings {
    Settings(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// Loads bundled plugins into one registry.
fn registry(runtime: &Runtime, names: &[&str], options: PluginOptions) -> Arc<Registry> {
    let mut builder = RegistryBuilder::new(runtime.clone(), None);
    for name in names {
        let bytes = switchyard_bundled_plugins::get(name).unwrap();
        builder.load(name, bytes, options.clone()).unwrap();
    }
    builder.build()
}

fn wasm(
    registry: &Arc<Registry>,
    name: &str,
    role: Role,
    config: &[(&str, &str)],
) -> Arc<WasmParticipant> {
    let slot = registry.slot(name).unwrap();
    Arc::new(WasmParticipant::new(registry.clone(), slot, role, settings(config)).unwrap())
}

fn two_step(validate: Arc<dyn Participant>, local_auth: Arc<dyn Participant>) -> Pipeline {
    let mut b = PipelineBuilder::new("bench");
    b.participant("validate", Step::Sync(validate)).unwrap();
    b.participant("local-auth", Step::Sync(local_auth)).unwrap();
    b.main(&["validate", "local-auth"]);
    b.build().unwrap()
}

/// A `send` that marks the response for the listener, which encodes it
/// after the pipeline (the socket write is not the sandbox's business).
struct Send;

impl Participant for Send {
    fn prepare(
        &self,
        _ctx: &mut Context,
    ) -> Result<switchyard_engine::Outcome, switchyard_engine::Failure> {
        Ok(switchyard_engine::Outcome::PREPARED)
    }
    fn prepare_for_abort(
        &self,
        _ctx: &mut Context,
    ) -> Option<Result<switchyard_engine::Outcome, switchyard_engine::Failure>> {
        Some(Ok(switchyard_engine::Outcome::PREPARED))
    }
    fn commit(&self, ctx: &mut Context) -> Result<(), switchyard_engine::Failure> {
        ctx.respond = true;
        Ok(())
    }
    fn abort(&self, ctx: &mut Context) -> Result<(), switchyard_engine::Failure> {
        self.commit(ctx)
    }
}

const BY_MTI: [(&str, &str); 3] = [
    ("switch", "MTI"),
    ("case 0800", "close send"),
    ("default", "by-port"),
];
const BY_PORT: [(&str, &str); 4] = [
    ("switch", "PORT"),
    ("case 5001", "local-auth close send"),
    ("case 5002", "query-xxx close send"),
    ("default", "log close send"),
];
const LIMIT: [(&str, &str); 1] = [("limit", "5000.00")];

/// The default `acquirer` pipeline with these four plugin steps.
fn acquirer(steps: [(&str, Arc<dyn Participant>); 4], pin: Option<&Arc<Registry>>) -> Pipeline {
    let mut b = PipelineBuilder::new("acquirer");
    if let Some(r) = pin {
        b.on_begin(r.pin_hook());
    }
    for (name, p) in steps {
        b.participant(name, Step::Sync(p)).unwrap();
    }
    b.participant("close", Step::Sync(Arc::new(Close))).unwrap();
    b.participant("send", Step::Sync(Arc::new(Send))).unwrap();
    b.main(&["validate", "by-mti"]);
    b.build().unwrap()
}

/// The default `acquirer` pipeline with the plugins of `reg`.
fn acquirer_of(reg: &Arc<Registry>) -> Pipeline {
    acquirer(
        [
            ("validate", wasm(reg, "validate", Role::Participant, &[])),
            ("by-mti", wasm(reg, "case-switch", Role::Selector, &BY_MTI)),
            (
                "by-port",
                wasm(reg, "case-switch", Role::Selector, &BY_PORT),
            ),
            (
                "local-auth",
                wasm(reg, "local-auth", Role::Participant, &LIMIT),
            ),
        ],
        Some(reg),
    )
}

fn transaction(pipeline: &Pipeline, spec: &Arc<Spec>, frame: &Bytes) {
    let request = spec.decode(frame.clone()).unwrap();
    let mut ctx = Context::new("default".into(), "local".into(), 5001, request);
    ctx.spec = Some(spec.clone());
    let d = block_on(pipeline.run(&mut ctx));
    assert_eq!(d.verdict, Verdict::Committed);
    assert!(ctx.respond);
    std::hint::black_box(spec.encode(&ctx.response).unwrap());
}

/// A selector's turn as the engine takes it: `prepare`, then `select`.
fn select(p: &dyn Participant, ctx: &mut Context) -> Vec<String> {
    assert!(p.prepare(ctx).unwrap().is_prepared());
    p.select(ctx).unwrap().unwrap()
}

fn run(p: &Pipeline, request: &Message) {
    let mut ctx = Context::new("bench".into(), "bench".into(), 5001, request.clone());
    let d = block_on(p.run(&mut ctx));
    assert_eq!(d.verdict, Verdict::Committed);
}

fn benches<M: Measurement + 'static>(c: &mut Criterion<M>) {
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let plugins = ["validate", "local-auth", "case-switch"];
    let reg = registry(&runtime, &plugins, PluginOptions::default());
    let request = sample_0200();

    // validate → local-auth.
    let wasm_validate = wasm(&reg, "validate", Role::Participant, &[]);
    let native_validate = Native::new(validate::Validate, &[]);
    let wasm_pipeline = two_step(
        wasm_validate.clone(),
        wasm(&reg, "local-auth", Role::Participant, &LIMIT),
    );
    let native_pipeline = two_step(
        native_validate.clone(),
        Native::new(local_auth::LocalAuth::default(), &LIMIT),
    );
    let mut g = c.benchmark_group("pipeline/validate+local-auth");
    g.bench_function("native", |b| b.iter(|| run(&native_pipeline, &request)));
    g.bench_function("wasm", |b| b.iter(|| run(&wasm_pipeline, &request)));
    g.finish();

    // A whole in-process transaction of the default contract.
    let spec = Arc::new(Spec::iso87_ascii());
    let frame = spec.encode(&request).unwrap();
    let native_acquirer = acquirer(
        [
            ("validate", native_validate.clone()),
            (
                "by-mti",
                NativeSelector::new(case_switch::CaseSwitch::new(), &BY_MTI),
            ),
            (
                "by-port",
                NativeSelector::new(case_switch::CaseSwitch::new(), &BY_PORT),
            ),
            (
                "local-auth",
                Native::new(local_auth::LocalAuth::default(), &LIMIT),
            ),
        ],
        None,
    );
    let wasm_acquirer = acquirer_of(&reg);
    // The same plugins built elsewhere (e.g. from an older revision, against
    // an older contract), on this host, side by side.
    let baseline = std::env::var_os("SWITCHYARD_BENCH_BASELINE_PLUGINS").map(|dir| {
        let mut builder = RegistryBuilder::new(runtime.clone(), None);
        for name in plugins {
            let path = std::path::Path::new(&dir).join(format!("{}.wasm", name.replace('-', "_")));
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            builder
                .load(name, &bytes, PluginOptions::default())
                .unwrap();
        }
        acquirer_of(&builder.build())
    });
    let mut g = c.benchmark_group("transaction/default-5001");
    g.bench_function("native", |b| {
        b.iter(|| transaction(&native_acquirer, &spec, &frame))
    });
    g.bench_function("wasm", |b| {
        b.iter(|| transaction(&wasm_acquirer, &spec, &frame))
    });
    if let Some(baseline) = &baseline {
        g.bench_function("wasm-baseline", |b| {
            b.iter(|| transaction(baseline, &spec, &frame))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("participant-call/validate.prepare");
    let mut ctx = Context::new("bench".into(), "bench".into(), 5001, request.clone());
    g.bench_function("native", |b| {
        b.iter(|| native_validate.prepare(&mut ctx).unwrap())
    });
    g.bench_function("wasm", |b| {
        b.iter(|| wasm_validate.prepare(&mut ctx).unwrap())
    });
    g.finish();

    // A call that does nothing (case-switch's prepare makes no host call;
    // as a plain participant it gets `prepare` alone): the floor of what the
    // sandbox costs per call.
    let native_switch = NativeSelector::new(case_switch::CaseSwitch::new(), &BY_PORT);
    let wasm_floor = wasm(&reg, "case-switch", Role::Participant, &BY_PORT);
    let mut g = c.benchmark_group("participant-call/case-switch.prepare");
    g.bench_function("native", |b| {
        b.iter(|| native_switch.prepare(&mut ctx).unwrap())
    });
    g.bench_function("wasm", |b| b.iter(|| wasm_floor.prepare(&mut ctx).unwrap()));
    g.finish();

    // A selector's whole turn, `prepare` then `select`: one crossing
    // (`prepare-select`, contract 1.4.0) for the bundled case-switch.
    let wasm_switch = wasm(&reg, "case-switch", Role::Selector, &BY_PORT);
    let mut g = c.benchmark_group("participant-call/case-switch.prepare+select");
    g.bench_function("native", |b| b.iter(|| select(&*native_switch, &mut ctx)));
    g.bench_function("wasm", |b| b.iter(|| select(&*wasm_switch, &mut ctx)));
    g.finish();

    let fresh = registry(
        &runtime,
        &["validate"],
        PluginOptions {
            policy: InstancePolicy::Fresh,
            ..PluginOptions::default()
        },
    );
    let fresh_validate = wasm(&fresh, "validate", Role::Participant, &[]);
    let mut g = c.benchmark_group("instance-policy/validate.prepare");
    g.bench_function("reuse", |b| {
        b.iter(|| wasm_validate.prepare(&mut ctx).unwrap())
    });
    g.bench_function("fresh", |b| {
        b.iter(|| fresh_validate.prepare(&mut ctx).unwrap())
    });
    g.finish();
}

/// The bench thread's CPU time (`SWITCHYARD_BENCH_CPU=1`).
struct CpuTime {
    wall: WallTime,
}

fn thread_cpu_time() -> Duration {
    cpu_time::ThreadTime::now().as_duration()
}

impl Measurement for CpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_time()
    }
    fn end(&self, started: Duration) -> Duration {
        thread_cpu_time().saturating_sub(started)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}

criterion_group!(pipeline_benches, benches);

fn main() {
    if std::env::var_os("SWITCHYARD_BENCH_CPU").is_some() {
        let mut c = Criterion::default()
            .with_measurement(CpuTime { wall: WallTime })
            .configure_from_args();
        benches(&mut c);
        c.final_summary();
    } else {
        pipeline_benches();
        Criterion::default().configure_from_args().final_summary();
    }
}
