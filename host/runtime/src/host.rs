//! The host side of the participant contract: the store's data and the
//! implementation of every imported interface.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use switchyard_engine::Context;
use switchyard_engine::ports::{KvStore, PortError};
use switchyard_engine::steps::NEVER_RETURNED;

use crate::bindings::{clock, config, counters, kv, log, transaction};
use crate::deadline::CallClock;
use crate::runtime::Capabilities;

/// Most log lines a plugin instance may write per second; the rest are
/// counted and reported once the second is over.
const LOG_LINES_PER_SECOND: u32 = 50;

/// A participant's own settings, from its table in the pipeline file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings(pub Vec<(String, String)>);

impl Settings {
    /// One setting.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Memory and table caps of one instance, recording what was refused.
#[derive(Debug)]
pub(crate) struct Limiter {
    pub(crate) memory_max: usize,
    pub(crate) table_elements_max: usize,
    pub(crate) instances_max: usize,
    /// A growth past the cap was refused during the current call.
    pub(crate) memory_denied: bool,
    /// The instance's linear memory now (it only grows).
    pub(crate) memory: usize,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_max {
            self.memory_denied = true;
            return Ok(false);
        }
        self.memory = self.memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements_max)
    }

    fn instances(&self) -> usize {
        self.instances_max
    }

    fn tables(&self) -> usize {
        self.instances_max
    }

    fn memories(&self) -> usize {
        self.instances_max
    }
}

/// Log rate limiting of one instance.
#[derive(Debug)]
struct LogBudget {
    window: Instant,
    used: u32,
    suppressed: u32,
}

/// The data of one plugin instance's `Store`.
pub struct HostState {
    /// The transaction of the call in progress; a placeholder in between.
    pub(crate) ctx: Context,
    /// Whether `ctx` holds a real transaction.
    pub(crate) bound: bool,
    pub(crate) settings: Arc<Settings>,
    pub(crate) limiter: Limiter,
    pub(crate) plugin: Arc<str>,
    pub(crate) tenant: Arc<str>,
    capabilities: Arc<Capabilities>,
    log_budget: LogBudget,
    /// The deadline of the call in progress.
    pub(crate) clock: CallClock,
}

impl HostState {
    pub(crate) fn new(
        plugin: Arc<str>,
        tenant: Arc<str>,
        settings: Arc<Settings>,
        limiter: Limiter,
        capabilities: Arc<Capabilities>,
    ) -> HostState {
        HostState {
            ctx: Context::default(),
            bound: false,
            settings,
            limiter,
            plugin,
            tenant,
            capabilities,
            log_budget: LogBudget {
                window: Instant::now(),
                used: 0,
                suppressed: 0,
            },
            clock: CallClock::default(),
        }
    }

    /// The tenant the instance serves.
    pub(crate) fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The tenant of the transaction in progress (the instance's own).
    fn scope(&self, what: &str) -> wasmtime::Result<(&str, &str)> {
        if !self.bound {
            wasmtime::bail!("{what} called outside a transaction");
        }
        Ok((&self.tenant, &self.plugin))
    }

    fn txn(&mut self, what: &str) -> wasmtime::Result<&mut Context> {
        if !self.bound {
            wasmtime::bail!("transaction.{what} called outside a transaction");
        }
        Ok(&mut self.ctx)
    }
}

fn field_ok(field: u16) -> bool {
    (2..=192).contains(&field) && field != 65
}

impl transaction::Host for HostState {
    fn request_mti(&mut self) -> wasmtime::Result<String> {
        Ok(self.txn("request-mti")?.request.mti().as_str().to_owned())
    }

    fn request_fields(&mut self) -> wasmtime::Result<Vec<u16>> {
        Ok(self
            .txn("request-fields")?
            .request
            .field_numbers()
            .collect())
    }

    fn request_values(&mut self, fields: Vec<u16>) -> wasmtime::Result<Vec<u8>> {
        let request = &self.txn("request-values")?.request;
        let mut out = Vec::with_capacity(fields.len() * 16);
        for f in fields {
            let value = if f == 0 {
                Some(request.mti_str().as_bytes())
            } else {
                request.get(f)
            };
            match value {
                // Values are far below 64 KiB (the longest field is LLLLLL
                // only in exotic specs); clamp rather than corrupt.
                Some(v) if v.len() < 0xFFFF => {
                    out.extend_from_slice(&(v.len() as u16).to_be_bytes());
                    out.extend_from_slice(v);
                }
                _ => out.extend_from_slice(&[0xFF, 0xFF]),
            }
        }
        Ok(out)
    }

    fn request_field(&mut self, field: u16) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self
            .txn("request-field")?
            .request
            .get(field)
            .map(<[u8]>::to_vec))
    }

    fn response_field(&mut self, field: u16) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self
            .txn("response-field")?
            .response
            .get(field)
            .map(<[u8]>::to_vec))
    }

    fn set_response_field(
        &mut self,
        field: u16,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        let ctx = self.txn("set-response-field")?;
        if !field_ok(field) {
            return Ok(Err(format!(
                "field {field} is not a data element (2..=192, not 65)"
            )));
        }
        if NEVER_RETURNED.contains(&field) {
            return Ok(Err(format!(
                "field {field} is never returned to an acquirer"
            )));
        }
        if let Some(spec) = &ctx.spec
            && !spec.defines(field)
        {
            return Ok(Err(format!(
                "field {field} is not defined by spec {}",
                spec.name()
            )));
        }
        ctx.response.set(field, Bytes::from(value));
        Ok(Ok(()))
    }

    fn clear_response_field(&mut self, field: u16) -> wasmtime::Result<()> {
        let ctx = self.txn("clear-response-field")?;
        if field_ok(field) {
            ctx.response.remove(field);
        }
        Ok(())
    }

    fn get_var(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.txn("get-var")?.var(&name).map(Cow::into_owned))
    }

    fn set_var(&mut self, name: String, value: String) -> wasmtime::Result<()> {
        let ctx = self.txn("set-var")?;
        if !ctx.set_var(&name, value) {
            tracing::warn!(plugin = %self.plugin, var = %name, "plugin tried to overwrite a host variable; ignored");
        }
        Ok(())
    }

    fn result_code(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.txn("result-code")?.result_code().map(str::to_owned))
    }

    fn set_result_code(&mut self, code: String) -> wasmtime::Result<()> {
        self.txn("set-result-code")?.set_result_code(code);
        Ok(())
    }
}

impl config::Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.settings.get(&key).map(str::to_owned))
    }

    fn entries(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.settings.0.clone())
    }
}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let now = Instant::now();
        let budget = &mut self.log_budget;
        if now.duration_since(budget.window).as_secs() >= 1 {
            if budget.suppressed > 0 {
                tracing::warn!(plugin = %self.plugin, tenant = %self.tenant,
                    suppressed = budget.suppressed, "plugin log lines suppressed by rate limit");
            }
            budget.window = now;
            budget.used = 0;
            budget.suppressed = 0;
        }
        if budget.used >= LOG_LINES_PER_SECOND {
            budget.suppressed += 1;
            return Ok(());
        }
        budget.used += 1;
        let message = mask_card_numbers(&message);
        let (plugin, tenant) = (&*self.plugin, &*self.tenant);
        let (stan, listener) = if self.bound {
            (
                self.ctx.request.get_str(11).unwrap_or(""),
                self.ctx.listener(),
            )
        } else {
            ("", "")
        };
        match level {
            log::Level::Trace => tracing::trace!(plugin, tenant, listener, stan, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, tenant, listener, stan, "{message}"),
            log::Level::Info => tracing::info!(plugin, tenant, listener, stan, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, tenant, listener, stan, "{message}"),
            log::Level::Error => tracing::error!(plugin, tenant, listener, stan, "{message}"),
        }
        Ok(())
    }
}

impl counters::Host for HostState {
    fn add(
        &mut self,
        name: String,
        key: String,
        delta: i64,
        window_seconds: u32,
    ) -> wasmtime::Result<Result<i64, String>> {
        let scope = self.scope("counters.add")?;
        Ok(match &self.capabilities.counters {
            Some(c) => c
                .counter_add(scope, &name, &key, delta, window_seconds)
                .map_err(|e| e.to_string()),
            None => Err(NO_COUNTERS.to_owned()),
        })
    }

    fn sum(
        &mut self,
        name: String,
        key: String,
        window_seconds: u32,
    ) -> wasmtime::Result<Result<i64, String>> {
        let scope = self.scope("counters.sum")?;
        Ok(match &self.capabilities.counters {
            Some(c) => c
                .counter_sum(scope, &name, &key, window_seconds)
                .map_err(|e| e.to_string()),
            None => Err(NO_COUNTERS.to_owned()),
        })
    }
}

const NO_COUNTERS: &str = "this switch runs without counters";

/// The store and the (tenant, plugin) scope of a key/value call, or why
/// there is none.
type KvScope<'a> = Result<(&'a dyn KvStore, (&'a str, &'a str)), String>;

impl HostState {
    fn kv_store(&self, what: &str) -> wasmtime::Result<KvScope<'_>> {
        let scope = self.scope(what)?;
        Ok(match &self.capabilities.kv {
            Some(store) => Ok((&**store, scope)),
            None => Err("this switch runs without a store".to_owned()),
        })
    }
}

fn store_error(plugin: &str, e: PortError) -> String {
    tracing::error!(plugin, error = %e, "plugin key/value store failed");
    e.to_string()
}

impl kv::Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, String>> {
        Ok(self
            .kv_store("kv.get")?
            .and_then(|(store, (tenant, plugin))| {
                store
                    .kv_get(tenant, plugin, &key)
                    .map_err(|e| store_error(plugin, e))
            }))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        Ok(self
            .kv_store("kv.set")?
            .and_then(|(store, (tenant, plugin))| {
                store
                    .kv_set(tenant, plugin, &key, &value)
                    .map_err(|e| store_error(plugin, e))
            }))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, String>> {
        Ok(self
            .kv_store("kv.delete")?
            .and_then(|(store, (tenant, plugin))| {
                store
                    .kv_delete(tenant, plugin, &key)
                    .map_err(|e| store_error(plugin, e))
            }))
    }

    fn compare_and_set(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<bool, String>> {
        Ok(self
            .kv_store("kv.compare-and-set")?
            .and_then(|(store, (tenant, plugin))| {
                store
                    .kv_compare_and_set(tenant, plugin, &key, expected.as_deref(), &value)
                    .map_err(|e| store_error(plugin, e))
            }))
    }
}

static MONOTONIC_ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);

impl clock::Host for HostState {
    fn now_unix_millis(&mut self) -> wasmtime::Result<i64> {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Ok(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }

    fn monotonic_nanos(&mut self) -> wasmtime::Result<u64> {
        Ok(u64::try_from(MONOTONIC_ORIGIN.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }
}

/// Masks every run of 13 to 19 digits (what a card number looks like) to its
/// first 6 and last 4 digits.
pub fn mask_card_numbers(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let run = i - start;
            if (13..=19).contains(&run) {
                let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
                o.push_str(&text[copied..start]);
                o.push_str(&text[start..start + 6]);
                o.extend(std::iter::repeat_n('*', run - 10));
                o.push_str(&text[i - 4..i]);
                copied = i;
            }
        } else {
            i += 1;
        }
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(&text[copied..]);
            Cow::Owned(o)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_in_log_text_are_masked() {
        assert_eq!(
            mask_card_numbers("pan 4761739001010119 stan 000123"),
            "pan 476173******0119 stan 000123"
        );
        assert_eq!(
            mask_card_numbers("amount 000000001000"),
            "amount 000000001000"
        );
        assert!(matches!(mask_card_numbers("nothing"), Cow::Borrowed(_)));
    }
}
