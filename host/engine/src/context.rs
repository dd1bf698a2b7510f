//! The transaction context: what participants read and write.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use switchyard_iso8583::{Message, Spec};

use crate::extensions::Extensions;
use crate::profiler::Profiler;

/// Variables the host defines for every transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostVar {
    /// The listener's configured port, e.g. `5001`.
    Port,
    /// The tenant the listener serves.
    Tenant,
    /// The listener's name.
    Listener,
    /// The request's MTI, e.g. `0200`.
    Mti,
    /// The transaction's tranlog row (empty when the switch runs without
    /// a tranlog).
    TranlogId,
    /// The subject of the client certificate verified by a mutual-TLS
    /// listener, e.g. `CN=terminal-17, O=Acme` (empty otherwise).
    TlsClientSubject,
}

impl HostVar {
    /// The variable's name as participants see it.
    pub const fn name(self) -> &'static str {
        match self {
            HostVar::Port => "PORT",
            HostVar::Tenant => "TENANT",
            HostVar::Listener => "LISTENER",
            HostVar::Mti => "MTI",
            HostVar::TranlogId => "TRANLOG_ID",
            HostVar::TlsClientSubject => "TLS_CLIENT_SUBJECT",
        }
    }

    fn parse(name: &str) -> Option<HostVar> {
        Some(match name {
            "PORT" => HostVar::Port,
            "TENANT" => HostVar::Tenant,
            "LISTENER" => HostVar::Listener,
            "MTI" => HostVar::Mti,
            "TRANLOG_ID" => HostVar::TranlogId,
            "TLS_CLIENT_SUBJECT" => HostVar::TlsClientSubject,
            _ => return None,
        })
    }
}

/// The upstream leg of a switched-out transaction, as the endpoint step
/// records it in the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamLeg {
    /// The endpoint's name.
    pub endpoint: Arc<str>,
    /// What became of the request.
    pub result: crate::ports::Upstream,
}

/// One transaction crossing the switch.
///
/// A thin handle to [`ContextData`] (its fields and methods are reached
/// through `Deref`): moving or swapping a context moves one pointer, which
/// is what the WASM runtime does twice on every plugin call.
#[derive(Default)]
pub struct Context(Box<ContextData>);

impl std::ops::Deref for Context {
    type Target = ContextData;
    fn deref(&self) -> &ContextData {
        &self.0
    }
}

impl std::ops::DerefMut for Context {
    fn deref_mut(&mut self) -> &mut ContextData {
        &mut self.0
    }
}

/// What a transaction carries; see [`Context`].
#[derive(Default)]
pub struct ContextData {
    tenant: Arc<str>,
    listener: Arc<str>,
    port: u16,
    /// The listener's message spec (what fields a response may carry).
    pub spec: Option<Arc<Spec>>,
    /// The acquirer's request as decoded by the listener's spec.
    pub request: Message,
    /// The response being built. Its MTI is set by the `close` step.
    pub response: Message,
    result_code: Option<Cow<'static, str>>,
    vars: Vec<(Box<str>, String)>,
    /// Time spent at an endpoint, when the transaction was switched out.
    pub external: Option<Duration>,
    /// Set by the `send` step: the response is to be written to the
    /// acquirer (by the listener, once the tranlog has it).
    pub respond: bool,
    /// The transaction's tranlog row.
    pub tranlog_id: Option<crate::ports::TxId>,
    /// Where the transaction was switched out to, and what became of it.
    pub upstream: Option<UpstreamLeg>,
    /// The transaction's timing trace.
    pub profiler: Profiler,
    /// Why the transaction failed, when a participant failed (for logs).
    pub failure: Option<String>,
    /// Values other crates attach to the transaction.
    pub extensions: Extensions,
    /// The verified TLS client certificate's subject (`TLS_CLIENT_SUBJECT`),
    /// set by a mutual-TLS listener.
    pub tls_client_subject: Option<Arc<str>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Debug for ContextData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("tenant", &self.tenant)
            .field("listener", &self.listener)
            .field("port", &self.port)
            .field("request", &self.request)
            .field("response", &self.response)
            .field("result_code", &self.result_code)
            .field("vars", &self.vars)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context for `request` received on `listener` (serving `tenant` on `port`).
    pub fn new(tenant: Arc<str>, listener: Arc<str>, port: u16, request: Message) -> Context {
        Context(Box::new(ContextData {
            tenant,
            listener,
            port,
            request,
            profiler: Profiler::start(),
            ..ContextData::default()
        }))
    }
}

impl ContextData {
    /// The tenant this transaction belongs to.
    pub fn tenant(&self) -> &Arc<str> {
        &self.tenant
    }

    /// The name of the listener that received the request.
    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// The listener's configured port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The result code decided so far.
    pub fn result_code(&self) -> Option<&str> {
        self.result_code.as_deref()
    }

    /// Decides the result code.
    pub fn set_result_code(&mut self, code: impl Into<Cow<'static, str>>) {
        self.result_code = Some(code.into());
    }

    /// A context variable: a host variable or one a participant set.
    pub fn var(&self, name: &str) -> Option<Cow<'_, str>> {
        if let Some(host) = HostVar::parse(name) {
            return Some(self.host_var(host));
        }
        self.vars
            .iter()
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| Cow::Borrowed(v.as_str()))
    }

    /// The value of a host variable.
    pub fn host_var(&self, var: HostVar) -> Cow<'_, str> {
        match var {
            HostVar::Port => Cow::Owned(self.port.to_string()),
            HostVar::Tenant => Cow::Borrowed(&self.tenant),
            HostVar::Listener => Cow::Borrowed(&self.listener),
            HostVar::Mti => Cow::Borrowed(self.request.mti_str()),
            HostVar::TranlogId => match self.tranlog_id {
                Some(id) => Cow::Owned(id.to_string()),
                None => Cow::Borrowed(""),
            },
            HostVar::TlsClientSubject => {
                Cow::Borrowed(self.tls_client_subject.as_deref().unwrap_or(""))
            }
        }
    }

    /// Sets a variable. Host variables cannot be overwritten: that returns
    /// `false` and changes nothing.
    pub fn set_var(&mut self, name: &str, value: impl Into<String>) -> bool {
        if HostVar::parse(name).is_some() {
            return false;
        }
        let value = value.into();
        match self.vars.iter_mut().find(|(k, _)| &**k == name) {
            Some((_, v)) => *v = value,
            None => self.vars.push((name.into(), value)),
        }
        true
    }

    /// The variables participants set, in the order they were first set.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (&**k, v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_iso8583::Mti;

    fn ctx() -> Context {
        Context::new(
            "acme".into(),
            "local".into(),
            5001,
            Message::new(Mti::new("0200").unwrap()),
        )
    }

    #[test]
    fn host_variables_are_visible_and_read_only() {
        let mut c = ctx();
        assert_eq!(c.var("PORT").as_deref(), Some("5001"));
        assert_eq!(c.var("TENANT").as_deref(), Some("acme"));
        assert_eq!(c.var("LISTENER").as_deref(), Some("local"));
        assert_eq!(c.var("MTI").as_deref(), Some("0200"));
        assert!(!c.set_var("PORT", "1"));
        assert_eq!(c.var("PORT").as_deref(), Some("5001"));
        assert_eq!(c.var("TLS_CLIENT_SUBJECT").as_deref(), Some(""));
        c.tls_client_subject = Some("CN=terminal-17, O=Acme".into());
        assert!(!c.set_var("TLS_CLIENT_SUBJECT", "CN=spoofed"));
        assert_eq!(
            c.var("TLS_CLIENT_SUBJECT").as_deref(),
            Some("CN=terminal-17, O=Acme")
        );
    }

    #[test]
    fn participant_variables_are_set_and_replaced() {
        let mut c = ctx();
        assert_eq!(c.var("ROUTE"), None);
        assert!(c.set_var("ROUTE", "xxx"));
        assert!(c.set_var("ROUTE", "yyy"));
        assert_eq!(c.var("ROUTE").as_deref(), Some("yyy"));
        assert_eq!(c.vars().count(), 1);
    }
}
