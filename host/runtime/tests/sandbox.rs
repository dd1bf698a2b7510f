//! The sandbox: plugins that trap, panic, loop, hoard memory or recurse are
//! stopped, their transaction aborts with 96, the instance is rebuilt and the
//! next transaction is served (host memory across a thousand failures:
//! `sandbox_memory.rs`, alone in its process); instances are never shared between tenants; instance policies
//! (reuse with recycling, fresh), failure policies, fuel and stack limits,
//! capability grants; a 1.0.0 plugin beside 1.2.0 ones in one pipeline
//! (reversals and store-and-forward: `reversals.rs`).

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_engine::{
    Context, FailureKind, Outcome, Participant, PipelineBuilder, Step, Verdict,
};
use switchyard_iso8583::{Message, Mti, Spec};
use switchyard_runtime::{
    Capability, FailurePolicy, InstancePolicy, LoadError, PluginOptions, Registry, RegistryBuilder,
    Role, Runtime, RuntimeOptions, Settings, WasmParticipant,
};
use switchyard_store::{Counters, Secret};

const TEST_PAN: &str = "4761739001010119";

fn bytes(name: &str) -> Vec<u8> {
    match switchyard_bundled_plugins::get(name) {
        Some(b) => b.to_vec(),
        None => std::fs::read(switchyard_bundled_plugins::plugin_path(name))
            .unwrap_or_else(|e| panic!("{name}: {e}")),
    }
}

fn runtime() -> Runtime {
    Runtime::new(RuntimeOptions {
        kv: Some(Arc::new(common::MemoryKv::default())),
        counters: Some(Arc::new(Counters::new(Secret::random()))),
        ..RuntimeOptions::default()
    })
    .unwrap()
}

fn settings(pairs: &[(&str, &str)]) -> Settings {
    Settings(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// One plugin as one participant, with its registry.
fn step(
    runtime: &Runtime,
    name: &str,
    options: PluginOptions,
    config: &[(&str, &str)],
) -> (Arc<Registry>, Arc<WasmParticipant>) {
    let mut builder = RegistryBuilder::new(runtime.clone(), None);
    let slot = builder.load(name, &bytes(name), options).unwrap();
    let registry = builder.build();
    let p =
        WasmParticipant::new(registry.clone(), slot, Role::Participant, settings(config)).unwrap();
    (registry, Arc::new(p))
}

fn faulty(
    runtime: &Runtime,
    mode: &str,
    options: PluginOptions,
) -> (Arc<Registry>, Arc<WasmParticipant>) {
    step(
        runtime,
        "test-faulty",
        options,
        &[("mode", mode), ("trigger_suffix", "13")],
    )
}

fn request(amount: &str, terminal: &str) -> Message {
    let mut m = Message::new(Mti::new("0200").unwrap());
    for (f, v) in [
        (2, TEST_PAN),
        (3, "000000"),
        (4, amount),
        (11, "000001"),
        (14, "3012"),
        (41, terminal),
        (49, "840"),
    ] {
        m.set(f, Bytes::copy_from_slice(v.as_bytes()));
    }
    m
}

fn ctx(tenant: &str, amount: &str, terminal: &str) -> Context {
    let mut c = Context::new(
        tenant.into(),
        "local".into(),
        5001,
        request(amount, terminal),
    );
    c.spec = Some(Arc::new(Spec::iso87_ascii()));
    c
}

fn stats(registry: &Registry) -> Arc<switchyard_runtime::Plugin> {
    registry.current().plugin(0).clone()
}

#[test]
fn every_kind_of_failure_is_stopped_classified_and_survived() {
    let rt = runtime();
    for (mode, kind) in [
        ("trap", FailureKind::Trap),
        ("panic", FailureKind::Trap),
        ("oom", FailureKind::Memory),
        ("recurse", FailureKind::Trap),
        ("loop", FailureKind::Deadline),
    ] {
        let (registry, p) = faulty(&rt, mode, PluginOptions::default());
        let started = Instant::now();
        let failure = p
            .prepare(&mut ctx("t", "000000001013", "TERM0001"))
            .unwrap_err();
        let took = started.elapsed();
        assert_eq!(failure.kind, kind, "{mode}: {failure}");
        assert!(
            failure.message.starts_with("plugin test-faulty "),
            "{mode}: names plugin and version: {failure}"
        );
        if mode == "loop" {
            // The deadline is 50 ms; report how long it took to stop.
            println!("loop stopped after {} ms", took.as_millis());
        }
        // The next transaction is served by a rebuilt instance.
        let ok = p
            .prepare(&mut ctx("t", "000000001000", "TERM0001"))
            .unwrap();
        assert_eq!(ok, Outcome::NO_JOIN, "{mode}");
        let s = stats(&registry);
        assert_eq!(s.stats().failures.load(Ordering::Relaxed), 1, "{mode}");
    }
}

#[test]
fn fuel_and_stack_limits_are_per_plugin() {
    let rt = runtime();
    let mut options = PluginOptions::default();
    options.limits.fuel = Some(5_000_000);
    options.limits.deadline = Duration::from_secs(30);
    let (registry, p) = faulty(&rt, "loop", options);
    let failure = p.prepare(&mut ctx("t", "000000001013", "T")).unwrap_err();
    assert!(
        failure.message.contains("fuel budget of 5000000 exhausted"),
        "{failure}"
    );
    assert_eq!(
        stats(&registry)
            .stats()
            .fuel_exhausted
            .load(Ordering::Relaxed),
        1
    );
    // Metered plugins still work.
    assert_eq!(
        p.prepare(&mut ctx("t", "000000001000", "T")).unwrap(),
        Outcome::NO_JOIN
    );

    let mut options = PluginOptions::default();
    options.limits.stack_bytes = 64 << 10;
    let (_, p) = faulty(&rt, "recurse", options);
    let failure = p.prepare(&mut ctx("t", "000000001013", "T")).unwrap_err();
    assert!(
        failure.message.contains("stack limit of 65536 bytes"),
        "{failure}"
    );
}

#[test]
fn instances_are_never_shared_between_tenants() {
    let rt = runtime();
    let config = [("mode", "remember"), ("trigger_suffix", "")];
    let (_, p) = step(&rt, "test-faulty", PluginOptions::default(), &config);
    let de44 = |c: &Context| c.response.get_str(44).map(str::to_owned);
    let mut a1 = ctx("acme", "000000001000", "TERMAAAA");
    p.prepare(&mut a1).unwrap();
    assert_eq!(de44(&a1).as_deref(), Some("none"));
    // Another tenant gets its own instance: it never sees acme's terminal.
    let mut b1 = ctx("globex", "000000001000", "TERMBBBB");
    p.prepare(&mut b1).unwrap();
    assert_eq!(de44(&b1).as_deref(), Some("none"));
    // The same tenant's instance is reused (policy `reuse`).
    let mut a2 = ctx("acme", "000000001000", "TERMCCCC");
    p.prepare(&mut a2).unwrap();
    assert_eq!(de44(&a2).as_deref(), Some("TERMAAAA"));
}

#[test]
fn reuse_recycles_after_max_calls_and_at_the_memory_high_water_mark() {
    let rt = runtime();
    let config = [("mode", "remember"), ("trigger_suffix", "")];
    let options = PluginOptions {
        policy: InstancePolicy::Reuse {
            max_calls: 3,
            recycle_memory_bytes: 16 << 20,
        },
        ..PluginOptions::default()
    };
    let (registry, p) = step(&rt, "test-faulty", options, &config);
    let mut seen = Vec::new();
    for i in 0..7 {
        let mut c = ctx("t", "000000001000", &format!("TERM000{i}"));
        p.prepare(&mut c).unwrap();
        seen.push(c.response.get_str(44).unwrap().to_owned());
    }
    // A new instance every third call remembers nothing.
    assert_eq!(
        seen,
        [
            "none", "TERM0000", "TERM0001", "none", "TERM0003", "TERM0004", "none"
        ]
    );
    let s = stats(&registry);
    assert_eq!(s.stats().recycled.load(Ordering::Relaxed), 2);

    // A slow leak (512 KiB per call) under a 16 MiB cap would fail after
    // ~30 calls; recycling at 4 MiB keeps it serving.
    let options = PluginOptions {
        policy: InstancePolicy::Reuse {
            max_calls: 1_000_000,
            recycle_memory_bytes: 4 << 20,
        },
        ..PluginOptions::default()
    };
    let (registry, p) = step(
        &rt,
        "test-faulty",
        options,
        &[("mode", "leak"), ("trigger_suffix", "")],
    );
    for _ in 0..100 {
        p.prepare(&mut ctx("t", "000000001000", "T")).unwrap();
    }
    let s = stats(&registry);
    assert_eq!(s.stats().failures.load(Ordering::Relaxed), 0);
    assert!(s.stats().recycled.load(Ordering::Relaxed) >= 10);
    assert!(s.stats().peak_memory.load(Ordering::Relaxed) <= 6 << 20);
}

#[test]
fn fresh_instances_keep_nothing_between_transactions() {
    let rt = runtime();
    let options = PluginOptions {
        policy: InstancePolicy::Fresh,
        ..PluginOptions::default()
    };
    let (registry, p) = step(
        &rt,
        "test-faulty",
        options,
        &[("mode", "remember"), ("trigger_suffix", "")],
    );
    for i in 0..5 {
        let mut c = ctx("t", "000000001000", &format!("TERM000{i}"));
        p.prepare(&mut c).unwrap();
        assert_eq!(c.response.get_str(44), Some("none"));
    }
    // One at load, one per transaction.
    assert_eq!(
        stats(&registry)
            .stats()
            .instantiations
            .load(Ordering::Relaxed),
        6
    );
}

#[test]
fn an_optional_plugin_that_fails_is_skipped() {
    let rt = runtime();
    let options = PluginOptions {
        failure: FailurePolicy::Optional,
        ..PluginOptions::default()
    };
    let (registry, p) = faulty(&rt, "trap", options);
    let mut c = ctx("t", "000000001013", "T");
    assert_eq!(p.prepare(&mut c).unwrap(), Outcome::NO_JOIN);
    assert_eq!(c.result_code(), None);
    assert_eq!(stats(&registry).stats().failures.load(Ordering::Relaxed), 1);
}

#[test]
fn capabilities_must_be_granted_and_are_scoped_by_tenant() {
    let rt = runtime();
    let mut builder = RegistryBuilder::new(rt.clone(), None);
    let err = builder
        .load(
            "test-capabilities",
            &bytes("test-capabilities"),
            PluginOptions::default(),
        )
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, LoadError::Imports { .. }), "{text}");
    assert!(
        text.contains(
            "switchyard:participant/counters@1.4.0: capability \"counters\" is not granted"
        ),
        "{text}"
    );
    assert!(text.contains("capability \"kv\" is not granted"), "{text}");

    let options = PluginOptions {
        grants: Capability::ALL.to_vec(),
        ..PluginOptions::default()
    };
    let (_, p) = step(&rt, "test-capabilities", options, &[]);
    let de44 = |tenant: &str| {
        let mut c = ctx(tenant, "000000001000", "T");
        // It joins: `abort` or `reverse` gives its points back.
        assert_eq!(p.prepare(&mut c).unwrap(), Outcome::PREPARED);
        c.response.get_str(44).unwrap().to_owned()
    };
    assert_eq!(de44("acme"), "n=1;p=10");
    assert_eq!(de44("acme"), "n=2;p=20");
    // Another tenant's counters and balances are its own.
    assert_eq!(de44("globex"), "n=1;p=10");
    assert_eq!(de44("acme"), "n=3;p=30");
}

#[tokio::test]
async fn a_1_0_0_plugin_runs_beside_1_2_0_plugins_in_one_pipeline() {
    let rt = runtime();
    let mut builder = RegistryBuilder::new(rt.clone(), None);
    let v1 = builder
        .load("test-v1", &bytes("test-v1"), PluginOptions::default())
        .unwrap();
    let validate = builder
        .load("validate", &bytes("validate"), PluginOptions::default())
        .unwrap();
    let local = builder
        .load("local-auth", &bytes("local-auth"), PluginOptions::default())
        .unwrap();
    let registry = builder.build();
    let mut pipeline = PipelineBuilder::new("mixed");
    pipeline.on_begin(registry.pin_hook());
    for (name, slot) in [
        ("test-v1", v1),
        ("validate", validate),
        ("local-auth", local),
    ] {
        let p = WasmParticipant::new(
            registry.clone(),
            slot,
            Role::Participant,
            Settings::default(),
        )
        .unwrap();
        pipeline.participant(name, Step::Sync(Arc::new(p))).unwrap();
    }
    pipeline.main(&["test-v1", "validate", "local-auth"]);
    let pipeline = pipeline.build().unwrap();

    let mut purchase = ctx("t", "000000001000", "TERM0001");
    assert_eq!(
        pipeline.run(&mut purchase).await.verdict,
        Verdict::Committed
    );
    assert_eq!(purchase.result_code(), Some("00"));
    assert_eq!(purchase.response.get(38).map(<[u8]>::len), Some(6));

    let mut cash = ctx("t", "000000001000", "TERM0001");
    cash.request.set(3, Bytes::from_static(b"010000"));
    assert_eq!(pipeline.run(&mut cash).await.verdict, Verdict::Aborted);
    assert_eq!(cash.result_code(), Some("57"));
}
