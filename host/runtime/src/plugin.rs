//! One loaded version of a plugin: a compiled, checked component ready to
//! instantiate, its instances, and the call wrapper that enforces the
//! sandbox and turns failures into RC 96 causes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use switchyard_engine::{Context, Failure, FailureKind};
use wasmtime::Store;
use wasmtime::component::{Component, InstancePre, Linker};

use crate::bindings::{
    FORMATTER_EXPORT, PARTICIPANT_EXPORT, SAF_EXPORT, SELECTOR_EXPORT, formatter_export,
    participant_export, reversible_export, saf_export, selection_export, selector_export,
    settings_export,
};
use crate::breaker::{Admission, Breaker, BreakerState, Transition};
use crate::deadline::{SLICE_TICKS, on_epoch};
use crate::error::LoadError;
use crate::host::{HostState, Limiter, Settings};
use crate::metrics::PluginStats;
use crate::options::{InstancePolicy, PluginOptions};
use crate::runtime::{EPOCH_TICK, Runtime, WasiCalled};

/// Most failure lines per plugin per second; the rest are counted and
/// reported once the second is over (a crash loop must not flood the log).
const FAILURE_LINES_PER_SECOND: u32 = 5;

/// What a plugin is asked to do in a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A participant (exports `participant`; `reversible` is optional).
    Participant,
    /// A group selector (exports `participant` and `group-selector`).
    Selector,
    /// A formatter (exports `formatter`): builds requests and reads replies.
    Formatter,
    /// The formatter of an endpoint (exports `formatter` and, since contract
    /// 1.2.0, `store-and-forward`): besides requests, it builds the reversal
    /// of a transaction that timed out and forwards acquirer reversals and
    /// advices. An endpoint's formatter is checked for this role, at load
    /// and at every swap.
    EndpointFormatter,
}

impl Role {
    /// The role's name in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Role::Participant => "participant",
            Role::Selector => "group selector",
            Role::Formatter => "formatter",
            Role::EndpointFormatter => "formatter of an endpoint",
        }
    }

    /// Every role.
    pub const ALL: [Role; 4] = [
        Role::Participant,
        Role::Selector,
        Role::Formatter,
        Role::EndpointFormatter,
    ];
}

/// Why an endpoint's formatter needs `store-and-forward`, in the message
/// that refuses one without it.
const SAF_NEEDED: &str = "an endpoint needs it to build the reversal of a transaction that timed out \
     and to forward acquirer reversals and advices; rebuild the formatter against contract 1.2.0 \
     (SDK: implement Formatter::format_saf)";

/// The state every version of one plugin shares: its metrics and the
/// rate limit of its failure log.
#[derive(Debug, Default)]
pub struct PluginShared {
    /// Metrics across versions.
    pub stats: PluginStats,
    failure_log: Mutex<(Option<Instant>, u32, u64)>,
}

/// Whether a failure of this kind counts towards opening the breaker: the
/// plugin misbehaved (trap, deadline or fuel, memory cap), not a decline
/// of its own nor a host problem.
fn opens_breaker(kind: FailureKind) -> bool {
    matches!(
        kind,
        FailureKind::Trap | FailureKind::Deadline | FailureKind::Memory
    )
}

/// Longest the trial instantiation at load or swap time may take (wall
/// time, start functions included).
pub const LOAD_CHECK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

static NEXT_VERSION_ID: AtomicU64 = AtomicU64::new(1);

/// A compiled, checked version of a plugin.
pub struct Plugin {
    name: Arc<str>,
    digest: String,
    id: u64,
    pre: InstancePre<HostState>,
    participant: Option<participant_export::GuestIndices>,
    selector: Option<selector_export::GuestIndices>,
    selection: Option<selection_export::GuestIndices>,
    formatter: Option<formatter_export::GuestIndices>,
    reversible: Option<reversible_export::GuestIndices>,
    saf: Option<saf_export::GuestIndices>,
    settings: Option<settings_export::GuestIndices>,
    options: PluginOptions,
    deadline_ticks: u64,
    runtime: Runtime,
    shared: Arc<PluginShared>,
    /// This version's circuit breaker (a swap starts closed).
    breaker: Breaker,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("version", &self.version())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// One instance of a plugin with its store.
pub(crate) struct Instance {
    pub(crate) store: Store<HostState>,
    pub(crate) participant: Option<participant_export::Guest>,
    pub(crate) selector: Option<selector_export::Guest>,
    pub(crate) selection: Option<selection_export::Guest>,
    pub(crate) formatter: Option<formatter_export::Guest>,
    pub(crate) reversible: Option<reversible_export::Guest>,
    pub(crate) saf: Option<saf_export::Guest>,
    pub(crate) settings: Option<settings_export::Guest>,
    pub(crate) version: u64,
    calls: u64,
}

/// The export interfaces of a new instance.
struct Exports {
    participant: Option<participant_export::Guest>,
    selector: Option<selector_export::Guest>,
    selection: Option<selection_export::Guest>,
    formatter: Option<formatter_export::Guest>,
    reversible: Option<reversible_export::Guest>,
    saf: Option<saf_export::Guest>,
    settings: Option<settings_export::Guest>,
}

/// What a plugin said of one configured use's settings
/// ([`Plugin::check_settings`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsCheck {
    /// (setting key, message) of every problem; empty: accepted.
    pub problems: Vec<(String, String)>,
    /// A selector's possible selections (group or participant names).
    pub targets: Vec<String>,
}

/// What became of an instance after a call.
pub(crate) enum AfterCall {
    /// Keep using it.
    Keep,
    /// Drop it (failed, or retired by policy).
    Retire,
}

impl Plugin {
    pub(crate) fn new(
        runtime: &Runtime,
        name: &str,
        digest: String,
        component: &Component,
        linker: &Linker<HostState>,
        options: PluginOptions,
        shared: Arc<PluginShared>,
    ) -> Result<Plugin, LoadError> {
        let pre = linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::Link {
                plugin: name.into(),
                reason: format!("{e:#}"),
            })?;
        let participant = participant_export::GuestIndices::new(&pre).ok();
        let selector = selector_export::GuestIndices::new(&pre).ok();
        let formatter = formatter_export::GuestIndices::new(&pre).ok();
        // Since 1.2.0, beside `participant` and `formatter` only: a plugin
        // built against an older contract has neither.
        let reversible = participant
            .as_ref()
            .and_then(|_| reversible_export::GuestIndices::new(&pre).ok());
        let saf = formatter
            .as_ref()
            .and_then(|_| saf_export::GuestIndices::new(&pre).ok());
        // Since 1.3.0, any role: a plugin built before has no settings check.
        let settings = settings_export::GuestIndices::new(&pre).ok();
        // Since 1.4.0, beside `group-selector` only: `prepare` and `select`
        // in one call.
        let selection = selector
            .as_ref()
            .and_then(|_| selection_export::GuestIndices::new(&pre).ok());
        if participant.is_none() && formatter.is_none() {
            return Err(LoadError::Exports {
                plugin: name.into(),
                role: "plugin",
                reason: format!("it exports neither {PARTICIPANT_EXPORT} nor {FORMATTER_EXPORT}"),
            });
        }
        let ticks = options.limits.deadline.as_millis() / EPOCH_TICK.as_millis();
        let plugin = Plugin {
            name: name.into(),
            digest,
            id: NEXT_VERSION_ID.fetch_add(1, Ordering::Relaxed),
            pre,
            participant,
            selector,
            selection,
            formatter,
            reversible,
            saf,
            settings,
            deadline_ticks: u64::try_from(ticks.max(1)).unwrap_or(u64::MAX),
            breaker: Breaker::new(options.breaker),
            options,
            runtime: runtime.clone(),
            shared,
        };
        // Instantiate once now, so that a plugin that cannot start fails at
        // load (or swap) time and not on its first transaction. Swaps run
        // this on a lowest-priority thread that a busy switch may leave
        // waiting for tens of ms: the call deadline (wall time) would refuse
        // a sound version, so the check gets `LOAD_CHECK_DEADLINE` instead
        // (a start function that loops is still stopped).
        let check_ticks = plugin.load_check_ticks();
        plugin
            .instantiate_within("", Arc::default(), check_ticks)
            .map_err(|f| LoadError::Instantiate {
                plugin: name.into(),
                reason: f.message,
            })?;
        Ok(plugin)
    }

    /// The plugin's name in the config.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its version: the first 12 hex digits of the SHA-256 of its bytes.
    pub fn version(&self) -> &str {
        &self.digest[..12]
    }

    /// The full SHA-256 of its bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// A number unique to this loaded version.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Its options.
    pub fn options(&self) -> &PluginOptions {
        &self.options
    }

    /// Its metrics (shared by all its versions).
    pub fn stats(&self) -> &PluginStats {
        &self.shared.stats
    }

    /// The state of this version's circuit breaker.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Runs `call` (getting an instance and calling it) under this version's
    /// circuit breaker: while it is open the call is refused at once with a
    /// [`FailureKind::CircuitOpen`] failure (already logged: the breaker
    /// logs when it opens and closes, not per call).
    #[inline]
    pub(crate) fn guarded<R>(
        &self,
        tenant: &str,
        call: impl FnOnce() -> Result<R, Failure>,
    ) -> Result<R, Failure> {
        let admission = self.breaker.admit();
        if let Admission::Refused { retry_in } = admission {
            return Err(self.refused(retry_in));
        }
        let result = call();
        let failed = matches!(&result, Err(f) if opens_breaker(f.kind));
        if let Some(transition) = self.breaker.settle(admission, failed) {
            self.log_transition(tenant, transition);
        }
        result
    }

    #[cold]
    fn refused(&self, retry_in: Duration) -> Failure {
        self.shared
            .stats
            .breaker_refused
            .fetch_add(1, Ordering::Relaxed);
        let mut failure = Failure::new(
            FailureKind::CircuitOpen,
            format!(
                "plugin {} {}: circuit breaker open (it failed {} times within {} ms); not \
                 called, next trial in {} ms",
                self.name,
                self.version(),
                self.options.breaker.failures,
                self.options.breaker.window.as_millis(),
                retry_in.as_millis()
            ),
        );
        failure.logged = true;
        failure
    }

    #[cold]
    fn log_transition(&self, tenant: &str, transition: Transition) {
        let stats = &self.shared.stats;
        let b = &self.options.breaker;
        let cooldown_ms = b.cooldown.as_millis() as u64;
        match transition {
            Transition::Opened { failures } => {
                stats.breaker_opens.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(plugin = %self.name, version = self.version(), tenant, failures,
                    window_ms = b.window.as_millis() as u64, cooldown_ms,
                    "plugin circuit breaker opened: its calls fail at once (RC 96; optional \
                     participants are skipped) until a trial call after the cool-down succeeds");
            }
            Transition::Reopened => {
                stats.breaker_opens.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(plugin = %self.name, version = self.version(), tenant, cooldown_ms,
                    "plugin circuit breaker re-opened: the trial call after the cool-down failed");
            }
            Transition::Closed => {
                tracing::warn!(plugin = %self.name, version = self.version(), tenant,
                    "plugin circuit breaker closed: the trial call succeeded; calls run again");
            }
        }
    }

    /// Whether this version exports `reversible` (contract 1.2.0): it is
    /// told when a transaction it committed is reversed.
    pub fn exports_reversible(&self) -> bool {
        self.reversible.is_some()
    }

    /// Whether this version exports `selection` (contract 1.4.0): as a
    /// group selector, it prepares and selects in one call.
    pub fn exports_selection(&self) -> bool {
        self.selection.is_some()
    }

    /// Whether this version exports `store-and-forward` (contract 1.2.0):
    /// it builds reversals and advices for its endpoint.
    pub fn exports_store_and_forward(&self) -> bool {
        self.saf.is_some()
    }

    /// Whether the plugin exports what `role` needs.
    pub fn check_role(&self, role: Role) -> Result<(), LoadError> {
        let missing = match role {
            Role::Participant => self.participant.is_none().then_some(PARTICIPANT_EXPORT),
            Role::Selector => {
                if self.participant.is_none() {
                    Some(PARTICIPANT_EXPORT)
                } else {
                    self.selector.is_none().then_some(SELECTOR_EXPORT)
                }
            }
            Role::Formatter => self.formatter.is_none().then_some(FORMATTER_EXPORT),
            Role::EndpointFormatter => {
                if self.formatter.is_none() {
                    Some(FORMATTER_EXPORT)
                } else {
                    self.saf.is_none().then_some(SAF_EXPORT)
                }
            }
        };
        match missing {
            None => Ok(()),
            Some(export) => Err(LoadError::Exports {
                plugin: self.name.to_string(),
                role: role.name(),
                reason: if export == SAF_EXPORT {
                    format!("it does not export {export}: {SAF_NEEDED}")
                } else {
                    format!("it does not export {export}")
                },
            }),
        }
    }

    /// The roles this version can play.
    pub fn roles(&self) -> Vec<Role> {
        Role::ALL
            .into_iter()
            .filter(|r| self.check_role(*r).is_ok())
            .collect()
    }

    /// Whether the plugin checks its settings at load (contract 1.3.0,
    /// `settings`).
    pub fn exports_settings_check(&self) -> bool {
        self.settings.is_some()
    }

    /// Asks the plugin what is wrong with `settings` and, for a selector,
    /// which names it may select (contract 1.3.0, export `settings`), in a
    /// fresh instance that serves no tenant and runs under the load-check
    /// deadline. A plugin built against an older contract accepts any
    /// settings and names no targets. `Err`: the check itself failed (a
    /// trap, the deadline).
    pub fn check_settings(&self, settings: &[(String, String)]) -> Result<SettingsCheck, Failure> {
        if self.settings.is_none() {
            return Ok(SettingsCheck::default());
        }
        let ticks = self.load_check_ticks();
        let mut instance =
            self.instantiate_within("", Arc::new(Settings(settings.to_vec())), ticks)?;
        let Some(check) = instance.settings.take() else {
            return Ok(SettingsCheck::default());
        };
        let now = self.runtime.ticks().now();
        instance.store.data_mut().clock.start(now, ticks);
        instance.store.set_epoch_deadline(SLICE_TICKS);
        if let Some(fuel) = self.options.limits.fuel {
            let _ = instance.store.set_fuel(fuel);
        }
        let result = check.call_check(&mut instance.store).and_then(|problems| {
            let targets = match self.selector {
                Some(_) => check.call_targets(&mut instance.store)?,
                None => Vec::new(),
            };
            Ok(SettingsCheck {
                problems: problems.into_iter().map(|p| (p.key, p.message)).collect(),
                targets,
            })
        });
        result.map_err(|e| self.failure(&instance.store, &e))
    }

    /// The load check's deadline in epoch ticks.
    fn load_check_ticks(&self) -> u64 {
        let ticks = self
            .options
            .limits
            .deadline
            .max(LOAD_CHECK_DEADLINE)
            .as_millis()
            / EPOCH_TICK.as_millis();
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }

    /// A fresh instance for `tenant` with `settings`.
    pub(crate) fn instantiate(
        &self,
        tenant: &str,
        settings: Arc<Settings>,
    ) -> Result<Instance, Failure> {
        self.instantiate_within(tenant, settings, self.deadline_ticks)
    }

    /// [`Plugin::instantiate`] with start functions stopped after
    /// `deadline_ticks` epoch ticks; the instance's calls then get the
    /// plugin's own deadline.
    fn instantiate_within(
        &self,
        tenant: &str,
        settings: Arc<Settings>,
        deadline_ticks: u64,
    ) -> Result<Instance, Failure> {
        let limits = &self.options.limits;
        let limiter = Limiter {
            memory_max: limits.memory_bytes,
            table_elements_max: limits.table_elements,
            instances_max: limits.instances,
            memory_denied: false,
            memory: 0,
        };
        let state = HostState::new(
            self.name.clone(),
            tenant.into(),
            settings,
            limiter,
            self.runtime.capabilities().clone(),
        );
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limiter);
        let ticks = self.runtime.ticks().clone();
        store.epoch_deadline_callback(move |mut cx| Ok(on_epoch(&mut cx.data_mut().clock, &ticks)));
        let now = self.runtime.ticks().now();
        store.data_mut().clock.start(now, deadline_ticks);
        store.set_epoch_deadline(SLICE_TICKS);
        if let Some(fuel) = limits.fuel {
            // Instantiation runs start functions: give it the call budget.
            let _ = store.set_fuel(fuel);
        }
        let instantiated = (|| {
            let instance = self.pre.instantiate(&mut store)?;
            let participant = match &self.participant {
                Some(i) => Some(i.load(&mut store, &instance)?),
                None => None,
            };
            let selector = match &self.selector {
                Some(i) => Some(i.load(&mut store, &instance)?),
                None => None,
            };
            let selection = match &self.selection {
                Some(i) => Some(i.load(&mut store, &instance)?),
                None => None,
            };
            let formatter = match &self.formatter {
                Some(i) => Some(i.load(&mut store, &instance)?),
                None => None,
            };
            let reversible = match &self.reversible {
                Some(i) => Some(i.load(&mut store, &instance)?),
                None => None,
            };
            let saf = match &self.saf {
                Some(i) => Some(i.load(&mut store, &instance)?),
                None => None,
            };
            let settings = match &self.settings {
                Some(i) => Some(i.load(&mut store, &instance)?),
                None => None,
            };
            wasmtime::Result::Ok(Exports {
                participant,
                selector,
                selection,
                formatter,
                reversible,
                saf,
                settings,
            })
        })();
        self.shared
            .stats
            .instantiations
            .fetch_add(1, Ordering::Relaxed);
        match instantiated {
            Ok(e) => Ok(Instance {
                store,
                participant: e.participant,
                selector: e.selector,
                selection: e.selection,
                formatter: e.formatter,
                reversible: e.reversible,
                saf: e.saf,
                settings: e.settings,
                version: self.id,
                calls: 0,
            }),
            Err(e) => Err(self.failure(&store, &e)),
        }
    }

    /// Runs `call` on `instance` for the transaction in `ctx` (swapped into
    /// the store for the call), under the plugin's deadline and fuel. Says
    /// whether the instance may be used again: not after a failure (a
    /// trapped store is poisoned), nor once the instance policy retires it.
    pub(crate) fn run<R>(
        &self,
        instance: &mut Instance,
        ctx: Option<&mut Context>,
        call: impl FnOnce(&mut Instance) -> wasmtime::Result<R>,
    ) -> (Result<R, Failure>, AfterCall) {
        let stats = &self.shared.stats;
        stats.calls.fetch_add(1, Ordering::Relaxed);
        let bound = ctx.is_some();
        let mut ctx = ctx;
        {
            let state = instance.store.data_mut();
            if let Some(c) = ctx.as_deref_mut() {
                std::mem::swap(&mut state.ctx, c);
            }
            state.bound = bound;
            state.limiter.memory_denied = false;
            state
                .clock
                .start(self.runtime.ticks().now(), self.deadline_ticks);
        }
        // A short first slice: a call still running when it ends hands its
        // async worker off and goes on to the deadline (`deadline`).
        instance.store.set_epoch_deadline(SLICE_TICKS);
        if let Some(fuel) = self.options.limits.fuel {
            let _ = instance.store.set_fuel(fuel);
        }
        // Latency is sampled (1 call in 4): two clock
        // reads are a noticeable share of a sub-microsecond call.
        let timed = instance.calls.is_multiple_of(4);
        let started = timed.then(Instant::now);
        let result = call(instance);
        if let Some(started) = started {
            stats.latency.record(started.elapsed());
        }
        instance.calls += 1;
        let state = instance.store.data_mut();
        if let Some(c) = ctx {
            std::mem::swap(&mut state.ctx, c);
        }
        state.bound = false;
        let memory = state.limiter.memory;
        if memory as u64 > stats.peak_memory.load(Ordering::Relaxed) {
            stats
                .peak_memory
                .fetch_max(memory as u64, Ordering::Relaxed);
        }
        match result {
            Ok(v) => {
                let retire = match self.options.policy {
                    InstancePolicy::Reuse {
                        max_calls,
                        recycle_memory_bytes,
                    } => instance.calls >= max_calls || memory > recycle_memory_bytes,
                    InstancePolicy::Fresh => false,
                };
                if retire {
                    stats.recycled.fetch_add(1, Ordering::Relaxed);
                    (Ok(v), AfterCall::Retire)
                } else {
                    (Ok(v), AfterCall::Keep)
                }
            }
            Err(e) => (Err(self.failure(&instance.store, &e)), AfterCall::Retire),
        }
    }

    fn failure(&self, store: &Store<HostState>, e: &wasmtime::Error) -> Failure {
        let stats = &self.shared.stats;
        stats.failures.fetch_add(1, Ordering::Relaxed);
        let limits = &self.options.limits;
        let (kind, cause) = match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => {
                stats.deadline_overruns.fetch_add(1, Ordering::Relaxed);
                (
                    FailureKind::Deadline,
                    format!("deadline of {} ms exceeded", limits.deadline.as_millis()),
                )
            }
            Some(wasmtime::Trap::OutOfFuel) => {
                stats.fuel_exhausted.fetch_add(1, Ordering::Relaxed);
                (
                    FailureKind::Deadline,
                    format!("fuel budget of {} exhausted", limits.fuel.unwrap_or(0)),
                )
            }
            _ if store.data().limiter.memory_denied => {
                stats.memory_cap_hits.fetch_add(1, Ordering::Relaxed);
                (
                    FailureKind::Memory,
                    format!("memory cap of {} bytes reached", limits.memory_bytes),
                )
            }
            Some(wasmtime::Trap::StackOverflow) => {
                stats.traps.fetch_add(1, Ordering::Relaxed);
                (
                    FailureKind::Trap,
                    format!("wasm stack limit of {} bytes exceeded", limits.stack_bytes),
                )
            }
            Some(trap) => {
                stats.traps.fetch_add(1, Ordering::Relaxed);
                (FailureKind::Trap, format!("trap: {trap}"))
            }
            None if e.downcast_ref::<WasiCalled>().is_some() => {
                stats.traps.fetch_add(1, Ordering::Relaxed);
                (FailureKind::Trap, e.root_cause().to_string())
            }
            None => (FailureKind::Host, e.root_cause().to_string()),
        };
        let mut failure = Failure::new(
            kind,
            format!("plugin {} {}: {cause}", self.name, self.version()),
        );
        self.log_failure(store.data().tenant(), &failure);
        failure.logged = true;
        failure
    }

    fn log_failure(&self, tenant: &str, failure: &Failure) {
        let mut window = self.shared.failure_log.lock();
        let now = Instant::now();
        let (start, logged, suppressed) = &mut *window;
        if start.is_none_or(|s| now.duration_since(s) >= Duration::from_secs(1)) {
            if *suppressed > 0 {
                tracing::error!(plugin = %self.name, suppressed = *suppressed,
                    "plugin failure lines suppressed in the last second (crash loop?)");
            }
            *start = Some(now);
            *logged = 0;
            *suppressed = 0;
        }
        if *logged < FAILURE_LINES_PER_SECOND {
            *logged += 1;
            tracing::error!(plugin = %self.name, version = self.version(), tenant,
                kind = ?failure.kind, cause = %failure.message,
                failures = self.shared.stats.failures.load(Ordering::Relaxed),
                "plugin failed; its instance is rebuilt");
        } else {
            *suppressed += 1;
        }
    }
}
