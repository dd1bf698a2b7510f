//! A thousand plugin failures in a row leave host memory flat. Alone in its
//! test binary: the resident set size is process-wide, so no other test may
//! run beside it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use switchyard_engine::{Context, Outcome, Participant};
use switchyard_iso8583::{Message, Mti, Spec};
use switchyard_runtime::{
    PluginOptions, Registry, RegistryBuilder, Role, Runtime, RuntimeOptions, Settings,
    WasmParticipant,
};

fn faulty(rt: &Runtime, mode: &str) -> (Arc<Registry>, WasmParticipant) {
    let wasm = std::fs::read(switchyard_bundled_plugins::plugin_path("test-faulty")).unwrap();
    let mut builder = RegistryBuilder::new(rt.clone(), None);
    let slot = builder
        .load("test-faulty", &wasm, PluginOptions::default())
        .unwrap();
    let registry = builder.build();
    let settings = Settings(vec![
        ("mode".into(), mode.into()),
        ("trigger_suffix".into(), "13".into()),
    ]);
    let p = WasmParticipant::new(registry.clone(), slot, Role::Participant, settings).unwrap();
    (registry, p)
}

fn ctx(amount: &str) -> Context {
    let mut m = Message::new(Mti::new("0200").unwrap());
    m.set(4, Bytes::copy_from_slice(amount.as_bytes()));
    m.set(11, Bytes::from_static(b"000001"));
    let mut c = Context::new("t".into(), "local".into(), 5001, m);
    c.spec = Some(Arc::new(Spec::iso87_ascii()));
    c
}

fn stats(registry: &Registry) -> Arc<switchyard_runtime::Plugin> {
    registry.current().plugin(0).clone()
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn a_thousand_failures_in_a_row_leave_host_memory_flat() {
    let rt = Runtime::new(RuntimeOptions::default()).unwrap();
    let modes = ["trap", "panic", "oom", "recurse"];
    let steps: Vec<_> = modes.iter().map(|m| faulty(&rt, m)).collect();
    let fail_all = |rounds: usize| {
        for _ in 0..rounds {
            for (_, p) in &steps {
                assert!(p.prepare(&mut ctx("000000001013")).is_err());
            }
        }
    };
    fail_all(25); // warm up allocators and caches
    let before = rss_bytes();
    fail_all(250); // 1,000 failures
    let after = rss_bytes();
    let grown = after.saturating_sub(before);
    println!(
        "RSS before {} MiB, after 1,000 failures {} MiB",
        before >> 20,
        after >> 20
    );
    assert!(
        grown < 24 << 20,
        "host memory grew by {} MiB over 1,000 failures",
        grown >> 20
    );
    for (registry, p) in &steps {
        assert_eq!(
            stats(registry).stats().failures.load(Ordering::Relaxed),
            275
        );
        assert_eq!(
            p.prepare(&mut ctx("000000001000")).unwrap(),
            Outcome::NO_JOIN
        );
    }
}
