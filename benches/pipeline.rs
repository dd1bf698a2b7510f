//! One pass of the pipeline validate → local-auth, in-process, with the
//! bundled WASM components and with the same plugin code compiled natively,
//! side by side in one run. Also the cost of a single participant call.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use futures::executor::block_on;
use switchyard_benches::{Native, sample_0200};
use switchyard_engine::{Context, Participant, Pipeline, PipelineBuilder, Step, Verdict};
use switchyard_iso8583::Message;
use switchyard_runtime::{
    PluginOptions, RegistryBuilder, Role, Runtime, RuntimeOptions, Settings, WasmParticipant,
};

fn wasm(runtime: &Runtime, name: &str, settings: &[(&str, &str)]) -> Arc<WasmParticipant> {
    let bytes = switchyard_bundled_plugins::get(name).unwrap();
    let mut builder = RegistryBuilder::new(runtime.clone(), None);
    let slot = builder.load(name, bytes, PluginOptions::default()).unwrap();
    let settings = Settings(
        settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    Arc::new(WasmParticipant::new(builder.build(), slot, Role::Participant, settings).unwrap())
}

fn pipeline(validate: Arc<dyn Participant>, local_auth: Arc<dyn Participant>) -> Pipeline {
    let mut b = PipelineBuilder::new("bench");
    b.participant("validate", Step::Sync(validate)).unwrap();
    b.participant("local-auth", Step::Sync(local_auth)).unwrap();
    b.main(&["validate", "local-auth"]);
    b.build().unwrap()
}

fn run(p: &Pipeline, request: &Message) {
    let mut ctx = Context::new("bench".into(), "bench".into(), 5001, request.clone());
    let d = block_on(p.run(&mut ctx));
    assert_eq!(d.verdict, Verdict::Committed);
}

fn benches(c: &mut Criterion) {
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let limit = [("limit", "5000.00")];
    let wasm_validate = wasm(&runtime, "validate", &[]);
    let wasm_local_auth = wasm(&runtime, "local-auth", &limit);
    let native_validate = Native::new(validate::Validate, &[]);
    let native_local_auth = Native::new(local_auth::LocalAuth::default(), &limit);
    let wasm_pipeline = pipeline(wasm_validate.clone(), wasm_local_auth);
    let native_pipeline = pipeline(native_validate.clone(), native_local_auth);
    let request = sample_0200();

    let mut g = c.benchmark_group("pipeline/validate+local-auth");
    g.bench_function("native", |b| b.iter(|| run(&native_pipeline, &request)));
    g.bench_function("wasm", |b| b.iter(|| run(&wasm_pipeline, &request)));
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
}

criterion_group!(pipeline_benches, benches);
criterion_main!(pipeline_benches);
