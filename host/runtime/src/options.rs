//! What an operator configures per plugin: sandbox limits, instance policy,
//! failure policy, circuit breaker and granted capabilities.

use std::time::Duration;

/// Sandbox limits of a plugin's instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest linear memory of an instance, in bytes (default 16 MiB).
    pub memory_bytes: usize,
    /// Longest one call may run (default 50 ms), enforced by epoch
    /// interruption at 1 ms resolution.
    pub deadline: Duration,
    /// Fuel (roughly, wasm instructions) one call may use; `None` (the
    /// default) meters nothing and relies on the deadline.
    pub fuel: Option<u64>,
    /// Largest wasm stack of a call, in bytes (default 512 KiB); deeper
    /// recursion traps.
    pub stack_bytes: usize,
    /// Largest table of an instance, in elements (default 10,000).
    pub table_elements: usize,
    /// Most core instances, tables and memories a component may create
    /// (default 64).
    pub instances: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            memory_bytes: 16 << 20,
            deadline: Duration::from_millis(50),
            fuel: None,
            stack_bytes: 512 << 10,
            table_elements: 10_000,
            instances: 64,
        }
    }
}

/// How instances are used across transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstancePolicy {
    /// Long-lived instances, per tenant, reused across transactions; retired
    /// after a failure, after `max_calls` calls, and when their linear memory
    /// passes `recycle_memory_bytes` (so a slow leak cannot grow for ever).
    Reuse {
        /// Calls before an instance is retired.
        max_calls: u64,
        /// Linear memory high-water mark, in bytes.
        recycle_memory_bytes: usize,
    },
    /// A new instance for every transaction (from the pooling allocator,
    /// with copy-on-write memory images), kept from `prepare` to `commit` or
    /// `abort` and then dropped: nothing survives a transaction.
    Fresh,
}

impl InstancePolicy {
    /// `reuse` with the defaults: a million calls, three quarters of `limits`'s memory cap.
    pub fn reuse_for(limits: &Limits) -> InstancePolicy {
        InstancePolicy::Reuse {
            max_calls: 1_000_000,
            recycle_memory_bytes: limits.memory_bytes / 4 * 3,
        }
    }
}

/// What a failing call does to the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// The transaction aborts with RC 96 (the default).
    #[default]
    Required,
    /// The failure is logged and the pipeline goes on without the plugin.
    Optional,
}

/// The circuit breaker of a plugin: after `failures` failed calls (trap,
/// deadline, memory cap, fuel; not a business decline) within `window`, the
/// plugin is *open* for `cooldown`: its calls fail at once, without entering
/// wasm, with [`switchyard_engine::FailureKind::CircuitOpen`]. After the
/// cool-down one trial call is let through (*half-open*): success closes the
/// breaker, failure opens it again for another cool-down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerOptions {
    /// Failures that open the breaker (default 5); 0 turns it off.
    pub failures: u32,
    /// The window those failures must fall in (default 10 s).
    pub window: Duration,
    /// How long an open breaker refuses calls (default 30 s).
    pub cooldown: Duration,
}

impl Default for BreakerOptions {
    fn default() -> BreakerOptions {
        BreakerOptions {
            failures: 5,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(30),
        }
    }
}

impl BreakerOptions {
    /// A breaker that never opens.
    pub const OFF: BreakerOptions = BreakerOptions {
        failures: 0,
        window: Duration::from_secs(10),
        cooldown: Duration::from_secs(30),
    };
}

/// A host capability a plugin may import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// Fields of request and response, variables, result code.
    Transaction,
    /// The plugin's own settings.
    Config,
    /// Logging through the host.
    Log,
    /// Wall and monotonic time.
    Clock,
    /// Windowed counters (1.1.0).
    Counters,
    /// The plugin's own key/value store (1.1.0).
    Kv,
}

impl Capability {
    /// Every capability.
    pub const ALL: [Capability; 6] = [
        Capability::Transaction,
        Capability::Config,
        Capability::Log,
        Capability::Clock,
        Capability::Counters,
        Capability::Kv,
    ];

    /// Granted unless the configuration says otherwise.
    pub const DEFAULT_GRANTS: [Capability; 4] = [
        Capability::Transaction,
        Capability::Config,
        Capability::Log,
        Capability::Clock,
    ];

    /// The interface's name in the contract (and in `grants`).
    pub const fn name(self) -> &'static str {
        match self {
            Capability::Transaction => "transaction",
            Capability::Config => "config",
            Capability::Log => "log",
            Capability::Clock => "clock",
            Capability::Counters => "counters",
            Capability::Kv => "kv",
        }
    }

    /// The contract minor version that introduced it.
    pub const fn since_minor(self) -> u32 {
        match self {
            Capability::Counters | Capability::Kv => 1,
            _ => 0,
        }
    }

    /// By interface name.
    pub fn parse(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Everything configured for one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginOptions {
    /// Sandbox limits.
    pub limits: Limits,
    /// Instance policy.
    pub policy: InstancePolicy,
    /// Failure policy.
    pub failure: FailurePolicy,
    /// Capabilities it may import.
    pub grants: Vec<Capability>,
    /// Its circuit breaker (off in `PluginOptions::default()`; a
    /// configured plugin of the switch gets `BreakerOptions::default()`
    /// unless its configuration says otherwise).
    pub breaker: BreakerOptions,
}

impl Default for PluginOptions {
    fn default() -> PluginOptions {
        let limits = Limits::default();
        PluginOptions {
            policy: InstancePolicy::reuse_for(&limits),
            limits,
            failure: FailurePolicy::Required,
            grants: Capability::DEFAULT_GRANTS.to_vec(),
            // Off for embedders and tests that count every failure; the
            // switch's configuration turns it on (`BreakerOptions::default`).
            breaker: BreakerOptions::OFF,
        }
    }
}

impl PluginOptions {
    /// Whether `capability` is granted.
    pub fn grants(&self, capability: Capability) -> bool {
        self.grants.contains(&capability)
    }
}
