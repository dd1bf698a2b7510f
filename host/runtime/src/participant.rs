//! Plugins as pipeline steps: [`WasmParticipant`] implements the engine's
//! `Participant` (plain participants and group selectors, and `reverse`
//! for those that export `reversible`) and [`WasmFormatter`] its
//! `Formatter` (with `format_saf` for those that export
//! `store-and-forward`).
//!
//! A step resolves its plugin through the transaction's pinned generation
//! (see [`crate::Registry`]), so a swap never changes the version under a
//! running transaction. Instances are kept per version and per tenant: an
//! instance is never shared between tenants, so what one tenant's
//! transaction leaves in a plugin's memory can never reach another tenant's.
//! With the `reuse` policy idle instances are pooled; with `fresh` each
//! transaction gets its own, held in the context from `prepare` to `commit`
//! or `abort`.
//!
//! Crossings into a component are the sandbox's main cost, so a step makes
//! as few as the plugin's contract version allows (1.4.0): a selector that
//! exports `selection` is called once (`prepare-select`) where an older one
//! gets `prepare` and `select`, and a participant that answers `prepare`
//! with the abort-only bit gets no `commit` call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use switchyard_engine::ports::SafKind;
use switchyard_engine::{
    Context, Failure, FailureKind, Formatter, Outbound, Outcome, Participant, SafMessage,
};
use wasmtime::Store;

use crate::bindings::{
    REVERSIBLE_EXPORT, SAF_EXPORT, SELECTION_EXPORT, participant_export, saf_export,
};
use crate::error::LoadError;
use crate::host::{HostState, Settings};
use crate::options::{FailurePolicy, InstancePolicy};
use crate::plugin::{AfterCall, Instance, Plugin, Role};
use crate::registry::{PINNED_KEY, Pinned, Registry, SlotId};

static NEXT_STEP_ID: AtomicU64 = AtomicU64::new(1);

/// An instance held by a transaction between its calls (policy `fresh`).
struct Held(Instance);

/// What a selector's `prepare-select` (contract 1.4.0) chose, kept in the
/// context from `prepare` to the `select` that the engine calls next.
struct Chosen(Vec<String>);

/// The participant joined with the outcome bit [`ABORT_ONLY`]: it has
/// nothing to do in `commit`, which is then not called.
struct AbortOnly;

/// Outcome bit of contract 1.4.0: prepared and joined, but only `abort` is
/// to be called (the engine's `Outcome` drops bits it does not know).
const ABORT_ONLY: u32 = 0x20;

/// Idle instances of one step: per plugin version, per tenant. A short list
/// scanned linearly: a step sees a handful of tenants and, only during a
/// swap, two versions.
#[derive(Default)]
struct Pools {
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    version: u64,
    tenant: Arc<str>,
    instances: Vec<Instance>,
}

impl Pools {
    fn checkout(&self, plugin: &Plugin, live: u64, tenant: &Arc<str>) -> Option<Instance> {
        let mut idle = self.idle.lock();
        // Versions swapped out leave their idle instances behind: drop them.
        if idle
            .iter()
            .any(|i| i.version != plugin.id() && i.version != live)
        {
            idle.retain(|i| i.version == plugin.id() || i.version == live);
        }
        idle.iter_mut()
            .find(|i| i.version == plugin.id() && same(&i.tenant, tenant))?
            .instances
            .pop()
    }

    fn checkin(&self, tenant: &Arc<str>, instance: Instance) {
        let mut idle = self.idle.lock();
        match idle
            .iter_mut()
            .find(|i| i.version == instance.version && same(&i.tenant, tenant))
        {
            Some(i) => i.instances.push(instance),
            None => idle.push(Idle {
                version: instance.version,
                tenant: tenant.clone(),
                instances: vec![instance],
            }),
        }
    }
}

fn same(a: &Arc<str>, b: &Arc<str>) -> bool {
    Arc::ptr_eq(a, b) || **a == **b
}

/// Shared machinery of participants and formatters.
struct Calls {
    registry: Arc<Registry>,
    slot: SlotId,
    settings: Arc<Settings>,
    pools: Pools,
    /// Key of this step's held instances in a context's extensions.
    step_id: u64,
}

impl Calls {
    fn new(registry: Arc<Registry>, slot: SlotId, settings: Settings) -> Calls {
        Calls {
            registry,
            slot,
            settings: Arc::new(settings),
            pools: Pools::default(),
            step_id: NEXT_STEP_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Runs `call` for the transaction in `ctx` on the version it is pinned
    /// to. `keep` says, after the first phase, whether a `fresh` instance
    /// is held for a later phase.
    fn call<R>(
        &self,
        ctx: &mut Context,
        phase: Phase,
        call: impl FnOnce(&mut Instance) -> wasmtime::Result<R>,
        keep: impl FnOnce(&R) -> bool,
    ) -> Result<R, Failure> {
        self.on_pinned(ctx, |plugin, ctx| {
            self.call_on(plugin, ctx, phase, call, keep)
        })
    }

    /// [`Calls::call`] when the version the transaction is pinned to
    /// `exports` what the call needs; `None` (and no call) when it does not.
    fn call_if<R>(
        &self,
        ctx: &mut Context,
        phase: Phase,
        exports: impl FnOnce(&Plugin) -> bool,
        call: impl FnOnce(&mut Instance) -> wasmtime::Result<R>,
        keep: impl FnOnce(&R) -> bool,
    ) -> Option<Result<R, Failure>> {
        self.on_pinned(ctx, |plugin, ctx| {
            exports(plugin).then(|| self.call_on(plugin, ctx, phase, call, keep))
        })
    }

    /// `f` with the version of this step's plugin that the transaction in
    /// `ctx` is pinned to (the live one when it is not pinned).
    fn on_pinned<T>(&self, ctx: &mut Context, f: impl FnOnce(&Plugin, &mut Context) -> T) -> T {
        // Take the pinned generation out for the call (no reference count
        // traffic), and put it back after.
        let pinned = ctx.extensions.remove::<Pinned>(PINNED_KEY);
        let owned;
        let generation = match &pinned {
            Some(p) => &p.0,
            None => {
                owned = self.registry.current();
                &owned
            }
        };
        let result = f(generation.plugin(self.slot), ctx);
        if let Some(p) = pinned {
            ctx.extensions.insert(PINNED_KEY, p);
        }
        result
    }

    /// The plugin's name and version for the transaction in `ctx`, for
    /// messages.
    fn label(&self, ctx: &Context) -> String {
        let label = |p: &Plugin| format!("{} {}", p.name(), p.version());
        match ctx.extensions.get::<Pinned>(PINNED_KEY) {
            Some(p) => label(p.0.plugin(self.slot)),
            None => label(self.registry.current().plugin(self.slot)),
        }
    }

    /// [`Calls::call_instance`] under the plugin's circuit breaker.
    #[inline]
    fn call_on<R>(
        &self,
        plugin: &Plugin,
        ctx: &mut Context,
        phase: Phase,
        call: impl FnOnce(&mut Instance) -> wasmtime::Result<R>,
        keep: impl FnOnce(&R) -> bool,
    ) -> Result<R, Failure> {
        let tenant = ctx.tenant().clone();
        plugin.guarded(&tenant, || {
            self.call_instance(plugin, ctx, &tenant, phase, call, keep)
        })
    }

    /// Gets an instance (held, pooled or new) and runs `call` on it.
    #[inline]
    fn call_instance<R>(
        &self,
        plugin: &Plugin,
        ctx: &mut Context,
        tenant: &Arc<str>,
        phase: Phase,
        call: impl FnOnce(&mut Instance) -> wasmtime::Result<R>,
        keep: impl FnOnce(&R) -> bool,
    ) -> Result<R, Failure> {
        let fresh = plugin.options().policy == InstancePolicy::Fresh;
        let held = if fresh {
            ctx.extensions.remove::<Held>(self.step_id).map(|h| h.0)
        } else {
            None
        };
        let mut instance = match held {
            Some(i) => i,
            None => match (!fresh)
                .then(|| self.pools.checkout(plugin, self.live_id(), tenant))
                .flatten()
            {
                Some(i) => i,
                None => plugin.instantiate(tenant, self.settings.clone())?,
            },
        };
        let (result, after) = plugin.run(&mut instance, Some(ctx), call);
        if let (Ok(value), AfterCall::Keep) = (&result, after) {
            if fresh {
                let hold = match phase {
                    Phase::First => keep(value),
                    Phase::Middle => true,
                    Phase::Last => false,
                };
                if hold {
                    ctx.extensions.insert(self.step_id, Held(instance));
                }
            } else if self.live_id() == instance.version {
                self.pools.checkin(tenant, instance);
            }
        }
        result
    }

    /// The id of the live version of this step's plugin.
    fn live_id(&self) -> u64 {
        self.registry.live_id(self.slot)
    }

    /// A call outside any transaction (an endpoint reply's key), on the live
    /// version, with instances kept apart from every tenant's.
    fn call_unbound<R>(
        &self,
        call: impl FnOnce(&mut Instance) -> wasmtime::Result<R>,
    ) -> Result<R, Failure> {
        let generation = self.registry.current();
        let plugin = generation.plugin(self.slot);
        let tenant: Arc<str> = LINK_TENANT.into();
        plugin.guarded(LINK_TENANT, || {
            let mut instance = match self.pools.checkout(plugin, plugin.id(), &tenant) {
                Some(i) => i,
                None => plugin.instantiate(LINK_TENANT, self.settings.clone())?,
            };
            let (result, after) = plugin.run(&mut instance, None, call);
            if let AfterCall::Keep = after {
                self.pools.checkin(&tenant, instance);
            }
            result
        })
    }

    fn failure_policy(&self, ctx: &Context) -> FailurePolicy {
        match ctx.extensions.get::<Pinned>(PINNED_KEY) {
            Some(p) => p.0.plugin(self.slot).options().failure,
            None => self.registry.current().plugin(self.slot).options().failure,
        }
    }
}

/// The tenant key of instances that read endpoint replies outside any
/// transaction.
const LINK_TENANT: &str = "";

/// Which call of a transaction this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `prepare`, `format-request`, `format-saf`: may keep a `fresh`
    /// instance.
    First,
    /// `select` right after `prepare`: uses the held instance and keeps it.
    Middle,
    /// `commit`, `abort`, `parse-response`, `reverse`: the last call.
    Last,
}

/// A plugin acting as a participant or group selector of a pipeline.
///
/// [`Participant::reverse`] calls the `reversible` export (contract 1.2.0)
/// of the version the context is pinned to (the live one when it is not:
/// a reversal arrives long after its transaction); `None` when that
/// version does not export it. Its failures are classified like those of
/// every other call (trap, deadline, memory cap → their kinds; `err` from
/// the plugin → `Rejected`), and the failure policy applies as it does to
/// `commit` and `abort`: an `optional` plugin's failure is skipped.
pub struct WasmParticipant {
    calls: Calls,
    selector: bool,
}

impl WasmParticipant {
    /// The plugin in `slot` of `registry` as a participant (or, with `role`
    /// [`Role::Selector`], a group selector) configured with `settings`.
    pub fn new(
        registry: Arc<Registry>,
        slot: SlotId,
        role: Role,
        settings: Settings,
    ) -> Result<WasmParticipant, LoadError> {
        registry.require_role(slot, role)?;
        Ok(WasmParticipant {
            calls: Calls::new(registry, slot, settings),
            selector: role == Role::Selector,
        })
    }

    fn optional<T>(&self, ctx: &Context, r: Result<T, Failure>, fallback: T) -> Result<T, Failure> {
        match r {
            Err(_) if self.calls.failure_policy(ctx) == FailurePolicy::Optional => Ok(fallback),
            other => other,
        }
    }
}

impl WasmParticipant {
    /// `commit` or `abort`: the transaction's last call into the plugin.
    fn last(
        &self,
        ctx: &mut Context,
        call: impl FnOnce(&participant_export::Guest, &mut Store<HostState>) -> wasmtime::Result<()>,
    ) -> Result<(), Failure> {
        let r = self.calls.call(
            ctx,
            Phase::Last,
            |i| {
                let guest = i
                    .participant
                    .as_ref()
                    .ok_or_else(|| unexported("participant"))?;
                call(guest, &mut i.store)
            },
            |_| false,
        );
        self.optional(ctx, r, ())
    }
}

fn unexported(what: &str) -> wasmtime::Error {
    wasmtime::format_err!("plugin does not export {what}")
}

impl WasmParticipant {
    /// A selector's `prepare-select` (contract 1.4.0), when the version the
    /// transaction is pinned to exports it: the outcome bits, with the
    /// groups kept in `ctx` for the `select` that follows. `None`: it does
    /// not export it.
    fn prepare_select(&self, ctx: &mut Context) -> Option<Result<u32, Failure>> {
        let r = self.calls.call_if(
            ctx,
            Phase::First,
            Plugin::exports_selection,
            |i| {
                let guest = i
                    .selection
                    .as_ref()
                    .ok_or_else(|| unexported(SELECTION_EXPORT))?;
                guest.call_prepare_select(&mut i.store)
            },
            |choice| Outcome::from_bits(choice.outcome).joins(),
        )?;
        Some(r.map(|choice| {
            if Outcome::from_bits(choice.outcome).is_prepared() {
                ctx.extensions
                    .insert(self.calls.step_id, Chosen(choice.groups));
            }
            choice.outcome
        }))
    }

    /// The participant's `prepare`.
    fn prepare_only(&self, ctx: &mut Context) -> Result<u32, Failure> {
        let selector = self.selector;
        self.calls.call(
            ctx,
            Phase::First,
            |i| {
                let guest = i
                    .participant
                    .as_ref()
                    .ok_or_else(|| unexported("participant"))?;
                guest.call_prepare(&mut i.store)
            },
            |bits| selector || Outcome::from_bits(*bits).joins(),
        )
    }
}

impl Participant for WasmParticipant {
    fn prepare(&self, ctx: &mut Context) -> Result<Outcome, Failure> {
        let bits = match self.selector.then(|| self.prepare_select(ctx)).flatten() {
            Some(r) => r,
            None => self.prepare_only(ctx),
        };
        let r = bits.map(|bits| {
            let outcome = Outcome::from_bits(bits);
            if bits & ABORT_ONLY != 0 && outcome.is_prepared() && outcome.joins() {
                ctx.extensions.insert(self.calls.step_id, AbortOnly);
            }
            outcome
        });
        self.optional(ctx, r, Outcome::NO_JOIN)
    }

    fn commit(&self, ctx: &mut Context) -> Result<(), Failure> {
        if ctx
            .extensions
            .remove::<AbortOnly>(self.calls.step_id)
            .is_some()
        {
            // Nothing to commit (contract 1.4.0): no call; a `fresh`
            // instance held for it is dropped now.
            ctx.extensions.remove::<Held>(self.calls.step_id);
            return Ok(());
        }
        self.last(ctx, |guest, store| guest.call_commit(store))
    }

    fn abort(&self, ctx: &mut Context) -> Result<(), Failure> {
        ctx.extensions.remove::<AbortOnly>(self.calls.step_id);
        self.last(ctx, |guest, store| guest.call_abort(store))
    }

    fn reverse(&self, ctx: &mut Context) -> Option<Result<(), Failure>> {
        let r = self.calls.call_if(
            ctx,
            Phase::Last,
            Plugin::exports_reversible,
            |i| {
                let guest = i
                    .reversible
                    .as_ref()
                    .ok_or_else(|| unexported(REVERSIBLE_EXPORT))?;
                guest.call_reverse(&mut i.store)
            },
            |_| false,
        )?;
        let r = r.and_then(|undone| {
            undone.map_err(|reason| {
                Failure::new(
                    FailureKind::Rejected,
                    format!("participant {}: reverse: {reason}", self.calls.label(ctx)),
                )
            })
        });
        Some(self.optional(ctx, r, ()))
    }

    fn select(&self, ctx: &mut Context) -> Option<Result<Vec<String>, Failure>> {
        self.selector.then(|| {
            if let Some(Chosen(groups)) = ctx.extensions.remove::<Chosen>(self.calls.step_id) {
                return Ok(groups);
            }
            let r = self.calls.call(
                ctx,
                Phase::Middle,
                |i| {
                    let guest = i
                        .selector
                        .as_ref()
                        .ok_or_else(|| unexported("group-selector"))?;
                    guest.call_select(&mut i.store)
                },
                |_| false,
            );
            self.optional(ctx, r, Vec::new())
        })
    }
}

/// A plugin acting as an endpoint's formatter.
///
/// [`Formatter::format_saf`] calls the `store-and-forward` export (contract
/// 1.2.0). A formatter made with [`WasmFormatter::for_endpoint`] is checked
/// for it at load and at every swap; one made with [`WasmFormatter::new`]
/// (requests only) fails `format_saf` with a `Host` failure when its version
/// does not export it.
pub struct WasmFormatter {
    calls: Calls,
}

impl WasmFormatter {
    /// The plugin in `slot` of `registry` as a formatter configured with
    /// `settings` ([`Role::Formatter`]: requests and replies; see
    /// [`WasmFormatter::for_endpoint`]).
    pub fn new(
        registry: Arc<Registry>,
        slot: SlotId,
        settings: Settings,
    ) -> Result<WasmFormatter, LoadError> {
        Self::with_role(registry, slot, Role::Formatter, settings)
    }

    /// The plugin in `slot` of `registry` as the formatter of an endpoint
    /// ([`Role::EndpointFormatter`]): it must export `store-and-forward`,
    /// now and in every version swapped in later, so that the endpoint can
    /// be sent reversals and advices.
    pub fn for_endpoint(
        registry: Arc<Registry>,
        slot: SlotId,
        settings: Settings,
    ) -> Result<WasmFormatter, LoadError> {
        Self::with_role(registry, slot, Role::EndpointFormatter, settings)
    }

    fn with_role(
        registry: Arc<Registry>,
        slot: SlotId,
        role: Role,
        settings: Settings,
    ) -> Result<WasmFormatter, LoadError> {
        registry.require_role(slot, role)?;
        Ok(WasmFormatter {
            calls: Calls::new(registry, slot, settings),
        })
    }

    fn rejected(&self, what: &str, reason: String) -> Failure {
        let generation = self.calls.registry.current();
        let plugin = generation.plugin(self.calls.slot);
        Failure::new(
            FailureKind::Rejected,
            format!(
                "formatter {} {}: {what}: {reason}",
                plugin.name(),
                plugin.version()
            ),
        )
    }
}

impl Formatter for WasmFormatter {
    fn format_request(&self, ctx: &mut Context) -> Result<Outbound, Failure> {
        let out = self.calls.call(
            ctx,
            Phase::First,
            |i| {
                let guest = i
                    .formatter
                    .as_ref()
                    .ok_or_else(|| unexported("formatter"))?;
                guest.call_format_request(&mut i.store)
            },
            |r| r.is_ok(),
        )?;
        out.map(|o| Outbound {
            payload: o.payload,
            key: o.key,
        })
        .map_err(|reason| self.rejected("format-request", reason))
    }

    fn reply_key(&self, reply: &[u8]) -> Result<String, Failure> {
        self.calls
            .call_unbound(|i| {
                let guest = i
                    .formatter
                    .as_ref()
                    .ok_or_else(|| unexported("formatter"))?;
                guest.call_reply_key(&mut i.store, reply)
            })?
            .map_err(|reason| self.rejected("reply-key", reason))
    }

    fn parse_response(&self, ctx: &mut Context, reply: &[u8]) -> Result<(), Failure> {
        self.calls
            .call(
                ctx,
                Phase::Last,
                |i| {
                    let guest = i
                        .formatter
                        .as_ref()
                        .ok_or_else(|| unexported("formatter"))?;
                    guest.call_parse_response(&mut i.store, reply)
                },
                |_| false,
            )?
            .map_err(|reason| self.rejected("parse-response", reason))
    }

    fn format_saf(&self, ctx: &mut Context, message: &SafMessage) -> Result<Outbound, Failure> {
        let kind = match message.kind {
            SafKind::Reversal => saf_export::SafKind::Reversal,
            SafKind::Advice => saf_export::SafKind::Advice,
            SafKind::LocalReversal => {
                return Err(Failure::new(
                    FailureKind::Host,
                    format!(
                        "formatter {}: format-saf: a local reversal is the host's own (its \
                         participants are told); no endpoint message is built for it",
                        self.calls.label(ctx)
                    ),
                ));
            }
        };
        let request = saf_export::SafRequest {
            kind,
            retransmission: message.retransmission,
            reason: message.reason.clone(),
        };
        let out = self
            .calls
            .call_if(
                ctx,
                Phase::First,
                Plugin::exports_store_and_forward,
                |i| {
                    let guest = i.saf.as_ref().ok_or_else(|| unexported(SAF_EXPORT))?;
                    guest.call_format_saf(&mut i.store, &request)
                },
                |r| r.is_ok(),
            )
            .unwrap_or_else(|| {
                Err(Failure::new(
                    FailureKind::Host,
                    format!(
                        "formatter {} does not export {SAF_EXPORT}: it cannot build the {} of a \
                         transaction; rebuild it against contract 1.2.0 (SDK: implement \
                         Formatter::format_saf)",
                        self.calls.label(ctx),
                        message.kind.name()
                    ),
                ))
            })?;
        out.map(|o| Outbound {
            payload: o.payload,
            key: o.key,
        })
        .map_err(|reason| self.rejected("format-saf", reason))
    }
}
