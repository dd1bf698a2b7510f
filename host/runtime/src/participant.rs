//! Plugins as pipeline steps: [`WasmParticipant`] implements the engine's
//! `Participant` (plain participants and group selectors) and
//! [`WasmFormatter`] its `Formatter`.
//!
//! Each holds its own instances, per tenant: an instance is never shared
//! between tenants, so what one tenant's transaction leaves in a plugin's
//! memory can never reach another tenant's. Instances are reused across
//! transactions; one that failed is dropped and rebuilt on the next call.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use switchyard_engine::{Context, Failure, FailureKind, Formatter, Outbound, Outcome, Participant};

use crate::error::LoadError;
use crate::host::Settings;
use crate::plugin::{Instance, Plugin, Role};

/// Idle instances of one step, per tenant.
#[derive(Default)]
struct Pools {
    idle: Mutex<HashMap<Arc<str>, Vec<Instance>>>,
}

impl Pools {
    fn checkout(
        &self,
        plugin: &Plugin,
        tenant: &Arc<str>,
        settings: &Arc<Settings>,
    ) -> Result<Instance, Failure> {
        if let Some(instance) = self.idle.lock().get_mut(tenant).and_then(Vec::pop) {
            return Ok(instance);
        }
        plugin.instantiate(tenant, settings.clone())
    }

    fn checkin(&self, tenant: &Arc<str>, instance: Instance) {
        let mut idle = self.idle.lock();
        match idle.get_mut(tenant) {
            Some(v) => v.push(instance),
            None => {
                idle.insert(tenant.clone(), vec![instance]);
            }
        }
    }
}

/// A plugin acting as a participant or group selector of a pipeline.
pub struct WasmParticipant {
    plugin: Arc<Plugin>,
    settings: Arc<Settings>,
    selector: bool,
    pools: Pools,
}

impl WasmParticipant {
    /// `plugin` as a participant (or, with `role` [`Role::Selector`], a group
    /// selector) configured with `settings`.
    pub fn new(
        plugin: Arc<Plugin>,
        role: Role,
        settings: Settings,
    ) -> Result<WasmParticipant, LoadError> {
        plugin.check_role(role)?;
        Ok(WasmParticipant {
            plugin,
            settings: Arc::new(settings),
            selector: role == Role::Selector,
            pools: Pools::default(),
        })
    }

    /// The plugin behind this step.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    fn call<R>(
        &self,
        ctx: &mut Context,
        call: impl FnOnce(&mut Instance) -> wasmtime::Result<R>,
    ) -> Result<R, Failure> {
        let tenant = ctx.tenant().clone();
        let mut instance = self.pools.checkout(&self.plugin, &tenant, &self.settings)?;
        let result = self.plugin.run(&mut instance, Some(ctx), call);
        if result.is_ok() {
            self.pools.checkin(&tenant, instance);
        }
        result
    }
}

fn unexported(what: &str) -> wasmtime::Error {
    wasmtime::format_err!("plugin does not export {what}")
}

impl Participant for WasmParticipant {
    fn prepare(&self, ctx: &mut Context) -> Result<Outcome, Failure> {
        self.call(ctx, |i| {
            let guest = i
                .participant
                .as_ref()
                .ok_or_else(|| unexported("participant"))?;
            guest.call_prepare(&mut i.store)
        })
        .map(Outcome::from_bits)
    }

    fn commit(&self, ctx: &mut Context) -> Result<(), Failure> {
        self.call(ctx, |i| {
            let guest = i
                .participant
                .as_ref()
                .ok_or_else(|| unexported("participant"))?;
            guest.call_commit(&mut i.store)
        })
    }

    fn abort(&self, ctx: &mut Context) -> Result<(), Failure> {
        self.call(ctx, |i| {
            let guest = i
                .participant
                .as_ref()
                .ok_or_else(|| unexported("participant"))?;
            guest.call_abort(&mut i.store)
        })
    }

    fn select(&self, ctx: &mut Context) -> Option<Result<Vec<String>, Failure>> {
        self.selector.then(|| {
            self.call(ctx, |i| {
                let guest = i
                    .selector
                    .as_ref()
                    .ok_or_else(|| unexported("group-selector"))?;
                guest.call_select(&mut i.store)
            })
        })
    }
}

/// The tenant key of instances that read endpoint replies outside any
/// transaction.
const LINK_TENANT: &str = "";

/// A plugin acting as an endpoint's formatter.
pub struct WasmFormatter {
    plugin: Arc<Plugin>,
    settings: Arc<Settings>,
    pools: Pools,
    link_tenant: Arc<str>,
}

impl WasmFormatter {
    /// `plugin` as a formatter configured with `settings`.
    pub fn new(plugin: Arc<Plugin>, settings: Settings) -> Result<WasmFormatter, LoadError> {
        plugin.check_role(Role::Formatter)?;
        Ok(WasmFormatter {
            plugin,
            settings: Arc::new(settings),
            pools: Pools::default(),
            link_tenant: LINK_TENANT.into(),
        })
    }

    fn call<R>(
        &self,
        ctx: Option<&mut Context>,
        call: impl FnOnce(&mut Instance) -> wasmtime::Result<R>,
    ) -> Result<R, Failure> {
        let tenant = ctx
            .as_ref()
            .map_or_else(|| self.link_tenant.clone(), |c| c.tenant().clone());
        let mut instance = self.pools.checkout(&self.plugin, &tenant, &self.settings)?;
        let result = self.plugin.run(&mut instance, ctx, call);
        if result.is_ok() {
            self.pools.checkin(&tenant, instance);
        }
        result
    }

    fn rejected(&self, what: &str, reason: String) -> Failure {
        Failure::new(
            FailureKind::Rejected,
            format!(
                "formatter {} {}: {what}: {reason}",
                self.plugin.name(),
                self.plugin.version()
            ),
        )
    }
}

impl Formatter for WasmFormatter {
    fn format_request(&self, ctx: &mut Context) -> Result<Outbound, Failure> {
        let out = self.call(Some(ctx), |i| {
            let guest = i
                .formatter
                .as_ref()
                .ok_or_else(|| unexported("formatter"))?;
            guest.call_format_request(&mut i.store)
        })?;
        out.map(|o| Outbound {
            payload: o.payload,
            key: o.key,
        })
        .map_err(|reason| self.rejected("format-request", reason))
    }

    fn reply_key(&self, reply: &[u8]) -> Result<String, Failure> {
        self.call(None, |i| {
            let guest = i
                .formatter
                .as_ref()
                .ok_or_else(|| unexported("formatter"))?;
            guest.call_reply_key(&mut i.store, reply)
        })?
        .map_err(|reason| self.rejected("reply-key", reason))
    }

    fn parse_response(&self, ctx: &mut Context, reply: &[u8]) -> Result<(), Failure> {
        self.call(Some(ctx), |i| {
            let guest = i
                .formatter
                .as_ref()
                .ok_or_else(|| unexported("formatter"))?;
            guest.call_parse_response(&mut i.store, reply)
        })?
        .map_err(|reason| self.rejected("parse-response", reason))
    }
}
