//! Shared pieces of the benches: the sample messages, and the *native twins*
//! of the bundled participants — the same plugin source code (written against
//! `switchyard-sdk`) compiled for the host and run as engine participants, so
//! the WASM sandbox's cost is measured side by side with no other difference.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;
use switchyard_engine::{Context, Failure, Outcome, Participant};
use switchyard_iso8583::{Message, Mti};
use switchyard_sdk::{Clock, Config, Counters, Kv, Level, Log, Transaction};

/// The 16-field 0200 of the codec targets (test PAN, no track or PIN data).
pub fn sample_0200() -> Message {
    let mut m = Message::new(Mti::new("0200").unwrap());
    let fields: [(u16, &str); 16] = [
        (2, "4761739001010119"),
        (3, "000000"),
        (4, "000000010000"),
        (7, "1123101010"),
        (11, "000123"),
        (12, "101010"),
        (13, "1123"),
        (14, "2812"),
        (18, "5999"),
        (22, "012"),
        (25, "00"),
        (37, "000000123456"),
        (41, "TERM0001"),
        (42, "MERCHANT0000001"),
        (43, "SWITCHYARD TEST MERCHANT   AMSTERDAM  NL"),
        (49, "978"),
    ];
    for (f, v) in fields {
        m.set(f, Bytes::from_static(v.as_bytes()));
    }
    m
}

/// The SDK's view of an engine context (what the WASM host imports do,
/// without the sandbox).
pub struct HostTransaction<'a>(pub &'a mut Context);

impl Transaction for HostTransaction<'_> {
    fn request_mti(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.0.request.mti_str())
    }
    fn request_fields(&self) -> Cow<'_, [u16]> {
        Cow::Owned(self.0.request.field_numbers().collect())
    }
    fn request_field(&self, field: u16) -> Option<Cow<'_, [u8]>> {
        self.0.request.get(field).map(Cow::Borrowed)
    }
    fn response_field(&self, field: u16) -> Option<Cow<'_, [u8]>> {
        self.0.response.get(field).map(Cow::Borrowed)
    }
    fn set_response_field(&mut self, field: u16, value: &[u8]) -> Result<(), String> {
        self.0
            .response
            .try_set(field, Bytes::copy_from_slice(value))
            .map_err(|e| e.to_string())
    }
    fn clear_response_field(&mut self, field: u16) {
        self.0.response.remove(field);
    }
    fn var(&self, name: &str) -> Option<Cow<'_, str>> {
        self.0.var(name)
    }
    fn set_var(&mut self, name: &str, value: &str) {
        self.0.set_var(name, value);
    }
    fn result_code(&self) -> Option<Cow<'_, str>> {
        self.0.result_code().map(Cow::Borrowed)
    }
    fn set_result_code(&mut self, code: &str) {
        self.0.set_result_code(code.to_owned());
    }
}

/// Settings, log and clock of a native participant.
pub struct HostEnv {
    settings: Vec<(String, String)>,
    origin: Instant,
}

impl HostEnv {
    /// An environment with `settings`.
    pub fn new(settings: &[(&str, &str)]) -> HostEnv {
        HostEnv {
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            origin: Instant::now(),
        }
    }
}

impl Config for HostEnv {
    fn get(&self, key: &str) -> Option<Cow<'_, str>> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| Cow::Borrowed(v.as_str()))
    }
    fn entries(&self) -> Vec<(String, String)> {
        self.settings.clone()
    }
}

impl Log for HostEnv {
    fn log(&self, level: Level, message: &str) {
        tracing::debug!(?level, "{message}");
    }
}

impl Clock for HostEnv {
    fn now_unix_millis(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
    fn monotonic_nanos(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
}

/// The bundled participants of the benches use neither counters nor kv.
impl Counters for HostEnv {}
impl Kv for HostEnv {}

/// A plugin's logic compiled natively, as an engine participant.
pub struct Native<P> {
    participant: Mutex<P>,
    env: HostEnv,
}

impl<P> Native<P> {
    /// `participant` with `settings`.
    pub fn new(participant: P, settings: &[(&str, &str)]) -> Arc<Native<P>> {
        Arc::new(Native {
            participant: Mutex::new(participant),
            env: HostEnv::new(settings),
        })
    }
}

/// A selector's logic compiled natively, as an engine group selector.
pub struct NativeSelector<P> {
    inner: Native<P>,
}

impl<P> NativeSelector<P> {
    /// `selector` with `settings`.
    pub fn new(selector: P, settings: &[(&str, &str)]) -> Arc<NativeSelector<P>> {
        Arc::new(NativeSelector {
            inner: Native {
                participant: Mutex::new(selector),
                env: HostEnv::new(settings),
            },
        })
    }
}

impl<P: switchyard_sdk::Selector + Send> Participant for NativeSelector<P> {
    fn prepare(&self, ctx: &mut Context) -> Result<Outcome, Failure> {
        self.inner.prepare(ctx)
    }
    fn select(&self, ctx: &mut Context) -> Option<Result<Vec<String>, Failure>> {
        let inner = &self.inner;
        Some(Ok(inner
            .participant
            .lock()
            .select(&mut HostTransaction(ctx), &inner.env)))
    }
}

impl<P: switchyard_sdk::Participant + Send> Participant for Native<P> {
    fn prepare(&self, ctx: &mut Context) -> Result<Outcome, Failure> {
        let bits = self
            .participant
            .lock()
            .prepare(&mut HostTransaction(ctx), &self.env)
            .bits();
        Ok(Outcome::from_bits(bits))
    }
    fn commit(&self, ctx: &mut Context) -> Result<(), Failure> {
        // As the host does for a component (contract 1.4.0).
        if P::COMMITS {
            self.participant
                .lock()
                .commit(&mut HostTransaction(ctx), &self.env);
        }
        Ok(())
    }
    fn abort(&self, ctx: &mut Context) -> Result<(), Failure> {
        self.participant
            .lock()
            .abort(&mut HostTransaction(ctx), &self.env);
        Ok(())
    }
}

/// The native twin of the bundled plugin `bundled` configured with
/// `settings`, as the step the switch would make of it (the native steps of
/// `switchyard::StartOptions`): `validate`, `local-auth` and `case-switch`,
/// the plugins of the default 5001 path; `None` for the others (they stay
/// WASM).
pub fn native_twin(bundled: &str, settings: &[(String, String)]) -> Option<Arc<dyn Participant>> {
    let pairs: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let step: Arc<dyn Participant> = match bundled {
        "validate" => Native::new(validate::Validate, &pairs),
        "local-auth" => Native::new(local_auth::LocalAuth::default(), &pairs),
        "case-switch" => NativeSelector::new(case_switch::CaseSwitch::new(), &pairs),
        _ => return None,
    };
    Some(step)
}
