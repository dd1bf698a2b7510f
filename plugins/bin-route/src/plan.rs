//! The settings, checked and resolved once into a [`Plan`]: the BIN table,
//! the card-type rules and the routes' groups. Transactions read only the
//! plan.

use std::collections::BTreeMap;

use switchyard_sdk::{Config, SettingProblem};

use crate::rules::TypePattern;
use crate::table::{BinRange, BinTable, RouteId};

/// The result code when nothing matches (`no_match_rc` not configured):
/// 15, no such issuer.
pub const DEFAULT_NO_MATCH_RC: &str = "15";

/// The context variable set to the route's name (`variable` not
/// configured).
pub const DEFAULT_VARIABLE: &str = "ROUTE";

/// A route: its name and the groups spliced when it is selected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The name, as in `route <name>`.
    pub name: String,
    /// The groups, in order.
    pub groups: Vec<String>,
}

/// The resolved settings of an instance.
#[derive(Clone, Debug)]
pub struct Plan {
    bins: BinTable,
    /// Most specific first.
    rules: Vec<(TypePattern, RouteId)>,
    routes: Vec<Route>,
    no_match_rc: String,
    variable: String,
}

/// Group names of a setting: separated by whitespace or commas (the rule of
/// `case-switch`).
pub fn group_names(setting: &str) -> Vec<String> {
    setting
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The card number of a request: DE2, or when DE2 is absent the PAN part of
/// track 2 (DE35, before its `=` or `D` separator, without a `;` start
/// sentinel).
pub fn pan_of<'a>(de2: Option<&'a [u8]>, de35: Option<&'a [u8]>) -> Option<&'a [u8]> {
    if de2.is_some() {
        return de2;
    }
    let track = de35?;
    let track = track.strip_prefix(b";").unwrap_or(track);
    let end = track
        .iter()
        .position(|&c| matches!(c, b'=' | b'D' | b'd'))
        .unwrap_or(track.len());
    Some(&track[..end])
}

/// What a settings key is.
enum Key<'a> {
    Variable,
    NoMatchRc,
    Bin(&'a str),
    Route(&'a str),
    Type(&'a str),
    Unknown,
}

fn classify(key: &str) -> Key<'_> {
    match key {
        "variable" => Key::Variable,
        "no_match_rc" => Key::NoMatchRc,
        _ => {
            let (word, rest) = key.split_once(' ').unwrap_or((key, ""));
            match word {
                "bin" => Key::Bin(rest.trim()),
                "route" => Key::Route(rest.trim()),
                "type" => Key::Type(rest),
                _ => Key::Unknown,
            }
        }
    }
}

/// Whether `name` is one word: no whitespace, no comma.
fn is_one_word(name: &str) -> bool {
    !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c == ',')
}

/// The route named by the value of a `bin` or `type` setting.
fn route_named(value: &str, index: &BTreeMap<&str, RouteId>) -> Result<RouteId, String> {
    let name = value.trim();
    if name.is_empty() {
        return Err(
            "expects the name of a route, e.g. \"xxx\", whose groups are in `route xxx`".into(),
        );
    }
    if !is_one_word(name) {
        return Err(format!(
            "expects one route name, not {name:?}; the groups go in `route <name>`"
        ));
    }
    index.get(name).copied().ok_or_else(|| {
        format!("names route `{name}`, which has no `route {name}` setting with its groups")
    })
}

/// Both values, or the messages of those that failed.
fn both<A, B>(a: Result<A, String>, b: Result<B, String>) -> Result<(A, B), Vec<String>> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (a, b) => Err([a.err(), b.err()].into_iter().flatten().collect()),
    }
}

/// The problem of a key that is not a setting.
const UNKNOWN_KEY: &str = "is not a setting of bin-route; expected `bin <prefix>`, \
    `bin <lo>..<hi>`, `route <name>`, `type <MTI> <DE3>`, `no_match_rc` or `variable`";

/// Whether a result code is 2 ASCII letters or digits.
fn is_result_code(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|c| c.is_ascii_alphanumeric())
}

impl Plan {
    /// Checks and resolves the settings. Every problem is reported, each
    /// with its key: unknown keys, bad `bin` and `type` patterns, values
    /// that name no route, entries of equal specificity that overlap, a bad
    /// `no_match_rc`.
    pub fn from_config(config: &impl Config) -> Result<Plan, Vec<SettingProblem>> {
        Plan::from_entries(&config.entries())
    }

    /// [`Plan::from_config`] over settings already read, in file order.
    pub fn from_entries(entries: &[(String, String)]) -> Result<Plan, Vec<SettingProblem>> {
        let mut problems = Vec::new();
        let mut no_match_rc = DEFAULT_NO_MATCH_RC.to_owned();
        let mut variable = DEFAULT_VARIABLE.to_owned();

        // Routes first: `bin` and `type` values refer to them.
        let mut routes = Vec::new();
        let mut index = BTreeMap::new();
        for (key, value) in entries {
            let Key::Route(name) = classify(key) else {
                continue;
            };
            if !is_one_word(name) {
                problems.push(SettingProblem::new(
                    key,
                    "expects `route <name>` with a one-word name (no spaces or commas) \
                     = \"<groups>\"",
                ));
                continue;
            }
            let id = RouteId(routes.len() as u32);
            if index.insert(name, id).is_none() {
                routes.push(Route {
                    name: name.to_owned(),
                    groups: group_names(value),
                });
            } else {
                problems.push(SettingProblem::new(
                    key,
                    format!("names route `{name}` a second time; keep one `route {name}`"),
                ));
            }
        }

        let mut bins: Vec<(BinRange, RouteId)> = Vec::new();
        let mut bin_keys: Vec<&str> = Vec::new();
        let mut rules: Vec<(TypePattern, RouteId, &str)> = Vec::new();
        for (key, value) in entries {
            let problem = |message: String| SettingProblem::new(key, message);
            match classify(key) {
                Key::Route(_) => {}
                Key::Variable => value.clone_into(&mut variable),
                Key::NoMatchRc if is_result_code(value) => value.clone_into(&mut no_match_rc),
                Key::NoMatchRc => problems.push(problem(format!(
                    "expects a result code of 2 letters or digits \
                     (default {DEFAULT_NO_MATCH_RC}), not {value:?}"
                ))),
                Key::Bin(pattern) => {
                    let range =
                        BinRange::parse(pattern).map_err(|e| format!("bad BIN pattern: {e}"));
                    match both(range, route_named(value, &index)) {
                        Ok(entry) => {
                            bins.push(entry);
                            bin_keys.push(key);
                        }
                        Err(messages) => problems.extend(messages.into_iter().map(problem)),
                    }
                }
                Key::Type(patterns) => {
                    let pattern = TypePattern::parse(patterns).map_err(|e| e.to_string());
                    match both(pattern, route_named(value, &index)) {
                        Ok((pattern, route)) => rules.push((pattern, route, key)),
                        Err(messages) => problems.extend(messages.into_iter().map(problem)),
                    }
                }
                Key::Unknown => problems.push(problem(UNKNOWN_KEY.to_owned())),
            }
        }

        let table = BinTable::build(&bins).unwrap_or_else(|overlaps| {
            for overlap in overlaps {
                let digits = bins[overlap.second].0.digits();
                problems.push(SettingProblem::new(
                    bin_keys[overlap.second],
                    format!(
                        "overlaps `{}` at the same specificity ({digits} digits); entries \
                         of equal length must not overlap (a longer entry inside a shorter \
                         one is fine)",
                        bin_keys[overlap.first]
                    ),
                ));
            }
            BinTable::default()
        });

        // Most specific first; file order among equals.
        rules.sort_by_key(|(pattern, _, _)| std::cmp::Reverse(pattern.specificity()));
        for (i, (pattern, _, key)) in rules.iter().enumerate() {
            let clash = rules[..i].iter().find(|(earlier, _, _)| {
                earlier.specificity() == pattern.specificity() && earlier.can_overlap(pattern)
            });
            if let Some((_, _, earlier_key)) = clash {
                problems.push(SettingProblem::new(
                    *key,
                    format!(
                        "can match the same messages as `{earlier_key}` at the same specificity \
                         ({} literal characters); make one of them more specific",
                        pattern.specificity()
                    ),
                ));
            }
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Plan {
            bins: table,
            rules: rules
                .into_iter()
                .map(|(pattern, route, _)| (pattern, route))
                .collect(),
            routes,
            no_match_rc,
            variable,
        })
    }

    /// The route for a request: the most specific `type` rule matching its
    /// MTI and DE3, else the most specific `bin` entry matching its PAN
    /// (all digits). `None` when nothing matches. Allocates nothing.
    pub fn route_for(
        &self,
        mti: Option<&[u8]>,
        processing_code: Option<&[u8]>,
        pan: Option<&[u8]>,
    ) -> Option<RouteId> {
        self.rules
            .iter()
            .find(|(pattern, _)| pattern.matches(mti, processing_code))
            .map(|&(_, route)| route)
            .or_else(|| pan.and_then(|pan| self.bins.lookup(pan)))
    }

    /// Every route of the plan, in settings order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// One route by its id.
    pub fn route(&self, id: RouteId) -> Option<&Route> {
        self.routes.get(id.0 as usize)
    }

    /// The BIN table.
    pub fn bins(&self) -> &BinTable {
        &self.bins
    }

    /// The result code when nothing matches.
    pub fn no_match_rc(&self) -> &str {
        &self.no_match_rc
    }

    /// The context variable set to the route's name; `None` when disabled
    /// (`variable = ""`).
    pub fn variable(&self) -> Option<&str> {
        Some(self.variable.as_str()).filter(|v| !v.is_empty())
    }
}
