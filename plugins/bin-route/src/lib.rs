//! The `bin-route` group selector: routes a transaction by its card number
//! (a BIN table of prefixes and ranges, most specific wins) or by its
//! message type, and splices the groups of the chosen route into the
//! pipeline.
//!
//! Settings (flat string keys and values; keys with spaces are quoted in
//! TOML):
//! - `"bin <prefix>" = "<route>"`: a card-number prefix of 1 to 19 digits,
//!   e.g. `"bin 4" = "xxx"`, `"bin 600649" = "loyalty"`.
//! - `"bin <lo>..<hi>" = "<route>"`: a range of prefixes, `lo` and `hi` of
//!   the same length (1 to 19 digits), `lo <= hi`; matches a PAN whose first
//!   `len(lo)` digits are within `[lo, hi]`, e.g. `"bin 51..55" = "yyy"`,
//!   `"bin 2221..2720" = "yyy"`.
//!
//!   The specificity of an entry is its number of digits; the most
//!   specific entry matching the PAN wins, so `"bin 476173"` inside
//!   `"bin 4"` takes its cards. Two entries of equal specificity that
//!   overlap are a settings error. A PAN shorter than an entry does not
//!   match it.
//! - `"route <name>" = "<groups>"`: the groups spliced when the route
//!   `<name>` is chosen, separated by spaces or commas (as in
//!   `case-switch`), e.g. `"route xxx" = "query-xxx close send"`; an empty
//!   value selects no group. Every route named by a `bin` or `type` entry
//!   needs one.
//! - `"type <MTI> <DE3>" = "<route>"`: a card-type rule, checked **before**
//!   the BIN table, for transaction types that dictate their card type.
//!   `<MTI>` is 4 characters and `<DE3>` (processing code) 6, each a digit
//!   or `x` (any character); `*` alone matches anything, the field absent
//!   included. E.g. `"type 08xx *" = "network"`,
//!   `"type 0200 31xxxx" = "inquiry"`. The rule with the most literal
//!   characters wins; rules of equal specificity that can match the same
//!   message are a settings error.
//! - `no_match_rc`: the result code when nothing matches, 2 letters or
//!   digits. Default `15` (no such issuer).
//! - `variable`: the context variable set to the chosen route's name, for
//!   the participants that follow and the logs. Default `ROUTE`; `""`
//!   sets none.
//!
//! Any other key is a settings error.
//!
//! The default wiring of port 5003:
//!
//! ```toml
//! config = { "bin 4" = "xxx", "bin 51..55" = "yyy", "bin 2221..2720" = "yyy",
//!            "bin 600649" = "loyalty", "bin 600650" = "coupon",
//!            "route xxx" = "query-xxx close send", "route yyy" = "query-yyy close send",
//!            "route loyalty" = "loyalty close", "route coupon" = "coupon close" }
//! ```
//!
//! Behaviour:
//! - `prepare` reads MTI, DE2, DE3 and DE35 in one host call. The card
//!   number is DE2, or when DE2 is absent the PAN part of DE35 (before `=`
//!   or `D`). A matching `type` rule chooses the route; else the BIN table
//!   does. The route's name goes into `variable`, `prepare` keeps the route
//!   for `select` and does not join.
//! - Nothing matches (no card number, a card number that is not all
//!   digits, no entry): result code `no_match_rc`, aborted (the pipeline's
//!   `close send` answers the acquirer). The masked card number is logged
//!   at debug level.
//! - `select` returns the route's groups.
//! - The settings are checked by `check_settings` (every problem, each with
//!   its key) and parsed once per instance. An instance whose settings are
//!   bad anyway (a host that never checked them) logs the first problem at
//!   error level and aborts every transaction with **96**.
//!
//! Cost: one host call to read the request, one to set the variable; the
//! lookup allocates nothing and, with entries of up to 12 digits, is one
//! binary search however many entries and lengths there are (plus one per
//! length present above 12 digits); see [`BinTable`] and
//! `benches/route.rs`.

mod plan;
mod rules;
mod table;

pub use plan::{DEFAULT_NO_MATCH_RC, DEFAULT_VARIABLE, Plan, Route, group_names, pan_of};
pub use rules::{FieldPattern, TypePattern, TypePatternError};
pub use table::{BinRange, BinTable, MAX_DIGITS, Overlap, PatternError, RouteId, SEGMENT_DIGITS};

use switchyard_sdk::card::mask_pan;
use switchyard_sdk::{
    Config, Env, Outcome, Participant, Selector, SettingProblem, Transaction, field, rc,
};

/// The BIN-route selector. Keeps its parsed settings and the route chosen
/// by the last `prepare`.
#[derive(Clone, Debug, Default)]
pub struct BinRoute {
    /// Parsed on first use; the first problem when the settings are bad.
    plan: Option<Result<Plan, SettingProblem>>,
    /// The route `prepare` chose, for `select`.
    chosen: Option<RouteId>,
}

impl BinRoute {
    /// The instance's plan, if its settings were parsed and are good.
    pub fn plan(&self) -> Option<&Plan> {
        self.plan.as_ref().and_then(|plan| plan.as_ref().ok())
    }
}

/// The first of the problems (there is always one when parsing failed).
fn first(problems: &[SettingProblem]) -> SettingProblem {
    problems
        .first()
        .cloned()
        .unwrap_or_else(|| SettingProblem::new("", "the settings are not valid"))
}

/// The plan in `slot`, parsed from `config` on first use.
fn plan_in<'a>(
    slot: &'a mut Option<Result<Plan, SettingProblem>>,
    config: &impl Config,
) -> Result<&'a Plan, &'a SettingProblem> {
    slot.get_or_insert_with(|| Plan::from_config(config).map_err(|problems| first(&problems)))
        .as_ref()
}

/// Logs bad settings at transaction time.
fn log_bad_settings(env: &impl Env, problem: &SettingProblem) {
    env.error(&format!(
        "bin-route: setting `{}` {}; every transaction is refused with {}",
        problem.key,
        problem.message,
        rc::SYSTEM_ERROR
    ));
}

/// The route of the request in `tx`; `Err` describes a request that has
/// none, for the log (the card number masked).
fn choose(plan: &Plan, tx: &impl Transaction) -> Result<RouteId, String> {
    let values = tx.request_values(&[0, field::PAN, field::PROCESSING_CODE, field::TRACK2]);
    let pan = pan_of(values.get(1), values.get(3));
    plan.route_for(values.get(0), values.get(2), pan)
        .ok_or_else(|| match pan {
            Some(pan) => format!(
                "MTI {}, card {}",
                values.str(0).unwrap_or("?"),
                mask_pan(pan)
            ),
            None => format!("MTI {}, no card number", values.str(0).unwrap_or("?")),
        })
}

impl Participant for BinRoute {
    fn prepare(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Outcome {
        self.chosen = None;
        let plan = match plan_in(&mut self.plan, env) {
            Ok(plan) => plan,
            Err(problem) => {
                log_bad_settings(env, problem);
                tx.set_result_code(rc::SYSTEM_ERROR);
                return Outcome::Aborted;
            }
        };
        match choose(plan, tx) {
            Ok(id) => {
                if let (Some(variable), Some(route)) = (plan.variable(), plan.route(id)) {
                    tx.set_var(variable, &route.name);
                }
                self.chosen = Some(id);
                Outcome::NoJoin
            }
            Err(request) => {
                env.debug(&format!(
                    "bin-route: no route for {request}: {}",
                    plan.no_match_rc()
                ));
                tx.set_result_code(plan.no_match_rc());
                Outcome::Aborted
            }
        }
    }

    fn check_settings(&mut self, config: &impl Config) -> Vec<SettingProblem> {
        match Plan::from_config(config) {
            Ok(plan) => {
                self.plan = Some(Ok(plan));
                Vec::new()
            }
            Err(problems) => {
                self.plan = Some(Err(first(&problems)));
                problems
            }
        }
    }
}

impl Selector for BinRoute {
    /// Every group a route may splice (contract 1.3.0): the host refuses a
    /// name that is neither a group nor a participant.
    fn targets(&mut self, config: &impl Config) -> Vec<String> {
        let Ok(plan) = Plan::from_config(config) else {
            return Vec::new(); // check_settings has said what is wrong
        };
        let mut names: Vec<String> = plan
            .routes()
            .iter()
            .flat_map(|r| r.groups.iter().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    fn select(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Vec<String> {
        let chosen = self.chosen.take();
        let plan = match plan_in(&mut self.plan, env) {
            Ok(plan) => plan,
            Err(problem) => {
                log_bad_settings(env, problem);
                return Vec::new();
            }
        };
        // Normally `prepare` chose on this instance; otherwise choose again.
        let route = match chosen {
            Some(id) => plan.route(id),
            None => choose(plan, tx).ok().and_then(|id| plan.route(id)),
        };
        match route {
            Some(route) => route.groups.clone(),
            None => {
                env.warn(
                    "bin-route: select without a route for the transaction: no group selected",
                );
                Vec::new()
            }
        }
    }
}

switchyard_sdk::export_selector!(BinRoute);

#[cfg(test)]
mod tests;
