//! How `switchyard plugin test` prints a [`Report`]: one `key  value` line
//! per item, continuation lines indented, times in milliseconds at
//! microsecond resolution, card data masked (DE2 first 6 / last 4) or
//! redacted (DE35, DE45, DE52).

use std::fmt;
use std::time::Duration;

use switchyard_runtime::Role;

use super::harness::Report;
use crate::client::field_lines;

/// Width of the key column.
const KEY: usize = 10;

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Writes `key` and the first of `lines`, the others indented under it;
/// `none` when there are no lines.
fn section(
    f: &mut fmt::Formatter<'_>,
    key: &str,
    lines: impl IntoIterator<Item = String>,
    none: &str,
) -> fmt::Result {
    let mut key = key;
    let mut any = false;
    for line in lines {
        writeln!(f, "{key:KEY$} {line}")?;
        key = "";
        any = true;
    }
    if !any {
        writeln!(f, "{key:KEY$} {none}")?;
    }
    Ok(())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:KEY$} {} {} (loaded in {})",
            "plugin",
            self.plugin,
            self.version,
            ms(self.load)
        )?;
        let role = match self.role {
            Role::Participant => "participant",
            Role::Selector => "selector",
            Role::Formatter => "formatter",
            Role::EndpointFormatter => "formatter of an endpoint",
        };
        writeln!(f, "{:KEY$} {role}", "role")?;
        let calls = self.calls.iter().enumerate().map(|(i, call)| {
            let first = if i == 0 {
                " (first call: instantiates)"
            } else {
                ""
            };
            let how = match &call.failure {
                Some(failure) => format!("FAILED ({:?})", failure.kind),
                None => "ok".to_owned(),
            };
            format!(
                "{:<15} {:>10}  {how}{first}",
                call.step.name(),
                ms(call.elapsed)
            )
        });
        section(f, "calls", calls, "(none)")?;
        if !self.repeats.is_empty() {
            let mut times = self.repeats.clone();
            times.sort();
            writeln!(
                f,
                "{:KEY$} {} more runs, {}: min {}, median {}, max {}",
                "repeats",
                times.len(),
                self.calls.first().map_or("", |c| c.step.name()),
                ms(times[0]),
                ms(times[times.len() / 2]),
                ms(times[times.len() - 1]),
            )?;
        }
        let formatter = matches!(self.role, Role::Formatter | Role::EndpointFormatter);
        if !formatter {
            let outcome = match self.outcome {
                Some(o) => format!("{o:?} (0x{:02x})", o.bits()),
                None => "(prepare did not return)".to_owned(),
            };
            writeln!(f, "{:KEY$} {outcome}", "outcome")?;
            let result = match (&self.result_code, self.result_code_by_host) {
                (None, _) => "(none)".to_owned(),
                (Some(rc), false) => rc.clone(),
                (Some(rc), true) if self.failure.is_some() => {
                    format!("{rc} (set by the host: the plugin failed)")
                }
                (Some(rc), true) => {
                    format!("{rc} (set by the host: the plugin aborted without a result code)")
                }
            };
            writeln!(f, "{:KEY$} {result}", "result")?;
        }
        if self.role == Role::Selector {
            let groups = match &self.groups {
                Some(g) if g.is_empty() => "(none selected)".to_owned(),
                Some(g) => g.join(" "),
                None => "(select was not called or failed)".to_owned(),
            };
            writeln!(f, "{:KEY$} {groups}", "groups")?;
        }
        if formatter {
            let summary = |o: &super::harness::OutboundSummary| {
                format!(
                    "{} bytes (not shown: they may carry card data), key {:?}",
                    o.bytes, o.key
                )
            };
            let outbound = self.outbound.as_ref().map_or("(none)".to_owned(), summary);
            writeln!(f, "{:KEY$} {outbound}", "outbound")?;
            let reversal = match &self.reversal {
                Some(o) => summary(o),
                None if self.store_and_forward => "(none)".to_owned(),
                None => "(not built: it does not export store-and-forward, contract 1.2.0; \
                         an endpoint refuses it)"
                    .to_owned(),
            };
            writeln!(f, "{:KEY$} {reversal}", "reversal")?;
        }
        section(f, "response", field_lines(&self.response), "(no field set)")?;
        section(
            f,
            "vars",
            self.vars.iter().map(|(k, v)| format!("{k}={v}")),
            "(none set)",
        )?;
        section(
            f,
            "log",
            self.logs
                .iter()
                .map(|l| format!("{:<5} {}", l.level, l.message)),
            "(nothing logged)",
        )?;
        let failure = self.failure.as_ref().map(ToString::to_string);
        section(f, "failure", failure, "(none)")
    }
}
