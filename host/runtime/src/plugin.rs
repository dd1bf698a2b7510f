//! A loaded plugin: a compiled, checked component ready to instantiate, and
//! its instances.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use switchyard_engine::{Failure, FailureKind};
use wasmtime::Store;
use wasmtime::component::{Component, InstancePre};

use crate::bindings::{
    FORMATTER_EXPORT, OFFERED_IMPORTS, PARTICIPANT_EXPORT, SELECTOR_EXPORT, formatter_export,
    participant_export, selector_export,
};
use crate::error::LoadError;
use crate::host::{HostState, Limiter, Settings};
use crate::runtime::{EPOCH_TICK, Runtime};

/// Sandbox limits of a plugin's instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest linear memory of an instance, in bytes (default 16 MiB).
    pub memory_bytes: usize,
    /// Longest one call may run (default 50 ms), enforced by epoch
    /// interruption at 1 ms resolution.
    pub deadline: Duration,
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
            table_elements: 10_000,
            instances: 64,
        }
    }
}

/// What a plugin is asked to do in a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A participant (exports `participant`).
    Participant,
    /// A group selector (exports `participant` and `group-selector`).
    Selector,
    /// An endpoint formatter (exports `formatter`).
    Formatter,
}

impl Role {
    /// The role's name in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Role::Participant => "participant",
            Role::Selector => "group selector",
            Role::Formatter => "formatter",
        }
    }
}

/// Counters of a plugin, across its instances.
#[derive(Debug, Default)]
pub struct PluginStats {
    /// Calls made.
    pub calls: AtomicU64,
    /// Calls that failed (trap, deadline, memory).
    pub failures: AtomicU64,
    /// Calls stopped at their deadline.
    pub deadline_overruns: AtomicU64,
    /// Instances created.
    pub instantiations: AtomicU64,
    /// Largest linear memory any instance reached, in bytes.
    pub peak_memory: AtomicU64,
}

/// A compiled, checked plugin.
pub struct Plugin {
    name: Arc<str>,
    digest: String,
    pre: InstancePre<HostState>,
    participant: Option<participant_export::GuestIndices>,
    selector: Option<selector_export::GuestIndices>,
    formatter: Option<formatter_export::GuestIndices>,
    limits: Limits,
    deadline_ticks: u64,
    stats: PluginStats,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("version", &self.version())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// One instance of a plugin with its store.
pub(crate) struct Instance {
    pub(crate) store: Store<HostState>,
    pub(crate) participant: Option<participant_export::Guest>,
    pub(crate) selector: Option<selector_export::Guest>,
    pub(crate) formatter: Option<formatter_export::Guest>,
}

impl Plugin {
    pub(crate) fn new(
        runtime: &Runtime,
        name: &str,
        digest: String,
        component: Component,
        limits: Limits,
    ) -> Result<Plugin, LoadError> {
        let engine = runtime.engine();
        let mut missing = Vec::new();
        for (import, _) in component.component_type().imports(engine) {
            if !OFFERED_IMPORTS.contains(&import) && !import.starts_with("wasi:") {
                missing.push(import.to_owned());
            }
        }
        if !missing.is_empty() {
            return Err(LoadError::Imports {
                plugin: name.into(),
                missing,
                offered: OFFERED_IMPORTS.iter().map(|s| s.to_string()).collect(),
            });
        }
        // A std guest imports WASI interfaces it never calls; they trap if
        // called: plugins get no filesystem, network, environment or clock
        // except through the host capabilities.
        let mut linker = runtime.linker().clone();
        linker
            .define_unknown_imports_as_traps(&component)
            .map_err(|e| LoadError::Link {
                plugin: name.into(),
                reason: format!("{e:#}"),
            })?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link {
                plugin: name.into(),
                reason: format!("{e:#}"),
            })?;
        let participant = participant_export::GuestIndices::new(&pre).ok();
        let selector = selector_export::GuestIndices::new(&pre).ok();
        let formatter = formatter_export::GuestIndices::new(&pre).ok();
        if participant.is_none() && formatter.is_none() {
            return Err(LoadError::Exports {
                plugin: name.into(),
                role: "plugin",
                reason: format!("it exports neither {PARTICIPANT_EXPORT} nor {FORMATTER_EXPORT}"),
            });
        }
        let ticks = limits.deadline.as_millis() / EPOCH_TICK.as_millis();
        let plugin = Plugin {
            name: name.into(),
            digest,
            pre,
            participant,
            selector,
            formatter,
            deadline_ticks: u64::try_from(ticks.max(1)).unwrap_or(u64::MAX),
            limits,
            stats: PluginStats::default(),
        };
        // Instantiate once now, so that a plugin that cannot start fails at
        // load time and not on its first transaction.
        plugin
            .instantiate("", Arc::default())
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

    /// Its sandbox limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Its counters.
    pub fn stats(&self) -> &PluginStats {
        &self.stats
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
        };
        match missing {
            None => Ok(()),
            Some(export) => Err(LoadError::Exports {
                plugin: self.name.to_string(),
                role: role.name(),
                reason: format!("it does not export {export}"),
            }),
        }
    }

    /// A fresh instance for `tenant` with `settings`.
    pub(crate) fn instantiate(
        &self,
        tenant: &str,
        settings: Arc<Settings>,
    ) -> Result<Instance, Failure> {
        let limiter = Limiter {
            memory_max: self.limits.memory_bytes,
            table_elements_max: self.limits.table_elements,
            instances_max: self.limits.instances,
            memory_denied: false,
            peak_memory: 0,
        };
        let state = HostState::new(self.name.clone(), tenant.into(), settings, limiter);
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.deadline_ticks);
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
            let formatter = match &self.formatter {
                Some(i) => Some(i.load(&mut store, &instance)?),
                None => None,
            };
            wasmtime::Result::Ok((participant, selector, formatter))
        })();
        self.stats.instantiations.fetch_add(1, Ordering::Relaxed);
        match instantiated {
            Ok((participant, selector, formatter)) => Ok(Instance {
                store,
                participant,
                selector,
                formatter,
            }),
            Err(e) => Err(self.failure(&store, &e)),
        }
    }

    /// Runs `call` on `instance` for the transaction in `ctx` (swapped into
    /// the store for the call), under the plugin's deadline. On failure the
    /// instance must be dropped: a trapped store is poisoned.
    pub(crate) fn run<R>(
        &self,
        instance: &mut Instance,
        ctx: Option<&mut switchyard_engine::Context>,
        call: impl FnOnce(&mut Instance) -> wasmtime::Result<R>,
    ) -> Result<R, Failure> {
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        let bound = ctx.is_some();
        let mut ctx = ctx;
        {
            let state = instance.store.data_mut();
            if let Some(c) = ctx.as_deref_mut() {
                std::mem::swap(&mut state.ctx, c);
            }
            state.bound = bound;
            state.limiter.memory_denied = false;
        }
        instance.store.set_epoch_deadline(self.deadline_ticks);
        let result = call(instance);
        let state = instance.store.data_mut();
        if let Some(c) = ctx {
            std::mem::swap(&mut state.ctx, c);
        }
        state.bound = false;
        let peak = state.limiter.peak_memory as u64;
        self.stats.peak_memory.fetch_max(peak, Ordering::Relaxed);
        result.map_err(|e| self.failure(&instance.store, &e))
    }

    fn failure(&self, store: &Store<HostState>, e: &wasmtime::Error) -> Failure {
        self.stats.failures.fetch_add(1, Ordering::Relaxed);
        let (kind, cause) = match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => {
                self.stats.deadline_overruns.fetch_add(1, Ordering::Relaxed);
                (
                    FailureKind::Deadline,
                    format!(
                        "deadline of {} ms exceeded",
                        self.limits.deadline.as_millis()
                    ),
                )
            }
            Some(wasmtime::Trap::StackOverflow) => {
                (FailureKind::Trap, "wasm stack limit exceeded".to_owned())
            }
            _ if store.data().limiter.memory_denied => (
                FailureKind::Memory,
                format!(
                    "memory cap of {} bytes reached ({e})",
                    self.limits.memory_bytes
                ),
            ),
            Some(trap) => (FailureKind::Trap, format!("trap: {trap}")),
            None => (FailureKind::Host, format!("{e}")),
        };
        Failure::new(
            kind,
            format!("plugin {} {}: {cause}", self.name, self.version()),
        )
    }
}
