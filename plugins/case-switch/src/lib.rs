//! The `case-switch` group selector (OLS.Switch `CaseSwitch`): picks the
//! pipeline groups to run next from the value of a context variable.
//!
//! Settings:
//! - `switch`: the name of the context variable to switch on. Default `PORT`
//!   (which the host sets to the listener's port).
//! - `case <value>`: the groups to run when the variable is `<value>`,
//!   separated by spaces (or commas), e.g. `"case 5001" = "local-auth close send"`.
//! - `default`: the groups when no case matches or the variable is unset.
//!
//! [`CaseSwitch::check_settings`] reports a `switch` that is empty or holds
//! whitespace, a `case` key without a value, and any other key;
//! [`CaseSwitch::targets`] names every group of every `case` and of
//! `default`, so that the host refuses a name that is neither a group nor a
//! participant.
//!
//! Switching on `MTI` names each MTI in its own case: an ISO 8583:1993
//! echo test is `"case 1804"` beside the 1987 `"case 0800"`.
//!
//! With neither a matching case nor a `default`, it selects no group and
//! logs a warning. `prepare` does nothing and does not join; the work is done
//! in `select`: one variable read, whatever the number of cases. Settings
//! are fixed for an instance's lifetime (contract 1.1.0), so the cases are
//! read and split into group names once, on the first `select`, and kept.

use switchyard_sdk::{Config, Env, Outcome, Participant, Selector, SettingProblem, Transaction};

/// The variable switched on when `switch` is not configured.
pub const DEFAULT_SWITCH: &str = "PORT";

/// The CaseSwitch selector. Keeps its settings, parsed, once read.
#[derive(Clone, Debug, Default)]
pub struct CaseSwitch {
    table: Option<Table>,
}

impl CaseSwitch {
    /// A selector that reads its settings on first use.
    pub const fn new() -> CaseSwitch {
        CaseSwitch { table: None }
    }
}

/// The settings, parsed: the variable, the groups of each case, the
/// default's.
#[derive(Clone, Debug)]
struct Table {
    switch: String,
    /// (value, groups), in the order of the settings.
    cases: Vec<(String, Vec<String>)>,
    default: Option<Vec<String>>,
}

impl Table {
    fn read(config: &impl Config) -> Table {
        let mut table = Table {
            switch: DEFAULT_SWITCH.to_owned(),
            cases: Vec::new(),
            default: None,
        };
        for (key, value) in config.entries() {
            if key == "switch" {
                table.switch = value;
            } else if key == "default" {
                table.default = Some(group_names(&value));
            } else if let Some(case) = key.strip_prefix("case ") {
                table.cases.push((case.to_owned(), group_names(&value)));
            }
        }
        table
    }

    /// The groups of `case <value>`, else of `default`.
    fn groups(&self, value: Option<&str>) -> Option<&[String]> {
        value
            .and_then(|v| self.cases.iter().find(|(case, _)| case == v))
            .map(|(_, groups)| groups.as_slice())
            .or(self.default.as_deref())
    }
}

/// Group names of a setting: separated by whitespace or commas.
pub fn group_names(setting: &str) -> Vec<String> {
    setting
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The problem with one setting, if any.
fn setting_problem(key: &str, value: &str) -> Option<String> {
    match key {
        "switch" if value.trim().is_empty() => Some(
            "is empty: expected the name of a context variable, e.g. \"PORT\" or \"MTI\"".into(),
        ),
        "switch" if value.contains(char::is_whitespace) => Some(format!(
            "{value:?} is not a variable name: expected one word, e.g. \"PORT\" or \"MTI\""
        )),
        "switch" | "default" => None,
        _ => match key.strip_prefix("case ") {
            Some(v) if !v.trim().is_empty() => None,
            Some(_) => Some("names no value: expected `case <value>`, e.g. \"case 5001\"".into()),
            None => Some("unknown setting: expected `switch`, `default` or `case <value>`".into()),
        },
    }
}

impl Participant for CaseSwitch {
    fn prepare(&mut self, _tx: &mut impl Transaction, _env: &impl Env) -> Outcome {
        Outcome::NoJoin
    }

    /// Every setting that is not `switch` (a variable name), `default` or
    /// `case <value>`.
    fn check_settings(&mut self, config: &impl Config) -> Vec<SettingProblem> {
        config
            .entries()
            .into_iter()
            .filter_map(|(key, value)| {
                setting_problem(&key, &value).map(|message| SettingProblem::new(key, message))
            })
            .collect()
    }
}

impl Selector for CaseSwitch {
    fn select(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Vec<String> {
        let table = self.table.get_or_insert_with(|| Table::read(env));
        let switch = table.switch.as_str();
        let value = tx.var(switch);
        match table.groups(value.as_deref()) {
            Some(groups) => groups.to_vec(),
            None => {
                env.warn(&match value.as_deref() {
                    Some(v) => format!(
                        "case-switch: no `case {v}` for {switch} and no `default`: no group selected"
                    ),
                    None => format!(
                        "case-switch: {switch} is not set and there is no `default`: no group selected"
                    ),
                });
                Vec::new()
            }
        }
    }

    /// The groups of every `case` and of `default`, each once, in the
    /// order of the settings.
    fn targets(&mut self, config: &impl Config) -> Vec<String> {
        let mut targets: Vec<String> = Vec::new();
        for (key, value) in config.entries() {
            if key == "default" || key.starts_with("case ") {
                for name in group_names(&value) {
                    if !targets.contains(&name) {
                        targets.push(name);
                    }
                }
            }
        }
        targets
    }
}

switchyard_sdk::export_selector!(CaseSwitch, CaseSwitch::new());

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::Level;
    use switchyard_sdk::mock::{MockEnv, MockTransaction};

    /// The published test card; passes Luhn.
    const TEST_PAN: &str = "4761739001010119";
    /// The test card with its check digit changed: fails Luhn.
    const BAD_LUHN_PAN: &str = "4761739001010118";

    fn default_wiring() -> MockEnv {
        MockEnv::new()
            .with_config("switch", "PORT")
            .with_config("case 5001", "local-auth close send")
            .with_config("case 5002", "query-xxx close send")
            .with_config("default", "log close")
    }

    fn on_port(port: &str) -> MockTransaction {
        MockTransaction::new("0200")
            .with_field(2, TEST_PAN)
            .with_var("PORT", port)
    }

    fn select(env: &MockEnv, mut tx: MockTransaction) -> Vec<String> {
        let mut switch = CaseSwitch::new();
        assert_eq!(switch.prepare(&mut tx, env), Outcome::NoJoin);
        assert_eq!(tx.calls(), 0, "prepare asks the host nothing");
        let groups = switch.select(&mut tx, env);
        assert!(tx.fields_read().is_empty(), "a selector reads no field");
        assert!(tx.rc().is_none() && tx.response().is_empty());
        groups
    }

    #[test]
    fn selects_the_case_of_the_port() {
        let env = default_wiring();
        assert_eq!(
            select(&env, on_port("5001")),
            ["local-auth", "close", "send"]
        );
        assert_eq!(
            select(&env, on_port("5002")),
            ["query-xxx", "close", "send"]
        );
    }

    #[test]
    fn falls_back_to_default() {
        let env = default_wiring();
        assert_eq!(select(&env, on_port("5005")), ["log", "close"]);
        let unset = MockTransaction::new("0200").with_field(2, BAD_LUHN_PAN);
        assert_eq!(select(&env, unset), ["log", "close"]);
    }

    #[test]
    fn switches_on_any_variable_and_defaults_to_port() {
        let env = MockEnv::new()
            .with_config("switch", "TENANT")
            .with_config("case acme", "velocity, local-auth");
        let tx = on_port("5001").with_var("TENANT", "acme");
        assert_eq!(select(&env, tx), ["velocity", "local-auth"]);

        let env = MockEnv::new().with_config("case 5001", "local-auth");
        assert_eq!(select(&env, on_port("5001")), ["local-auth"]);
    }

    #[test]
    fn no_case_and_no_default_selects_nothing_with_a_warning() {
        let env = MockEnv::new().with_config("case 5001", "local-auth");
        assert!(select(&env, on_port("5002")).is_empty());
        assert!(env.logged(Level::Warn, "no `case 5002` for PORT"));
        assert!(select(&env, MockTransaction::new("0200")).is_empty());
        assert!(env.logged(Level::Warn, "PORT is not set"));
        for (_, message) in env.logs() {
            assert!(!message.contains(TEST_PAN));
        }
    }

    #[test]
    fn an_empty_case_selects_no_group_on_purpose() {
        let env = default_wiring().with_config("case 5003", "");
        assert!(select(&env, on_port("5003")).is_empty());
        assert!(env.logs().is_empty());
    }

    #[test]
    fn reads_one_variable_and_its_settings_once() {
        let env = default_wiring();
        let mut switch = CaseSwitch::new();
        let mut tx = on_port("5005");
        assert_eq!(switch.select(&mut tx, &env), ["log", "close"]);
        assert_eq!(tx.calls(), 1);
        assert_eq!(env.config_calls(), 1);
        let mut tx = on_port("5001");
        assert_eq!(
            switch.select(&mut tx, &env),
            ["local-auth", "close", "send"]
        );
        assert_eq!(tx.calls(), 1);
        assert_eq!(env.config_calls(), 1, "the settings were kept");
    }

    #[test]
    fn group_names_split_on_spaces_and_commas() {
        assert_eq!(group_names(" a  b,c ,, d\t"), ["a", "b", "c", "d"]);
        assert!(group_names("").is_empty());
    }

    #[test]
    fn the_default_wiring_has_no_setting_problem() {
        assert!(
            CaseSwitch::new()
                .check_settings(&default_wiring())
                .is_empty()
        );
        let by_mti = MockEnv::new()
            .with_config("switch", "MTI")
            .with_config("case 0800", "close send")
            .with_config("case 1804", "close send")
            .with_config("default", "by-port");
        assert!(CaseSwitch::new().check_settings(&by_mti).is_empty());
        let tx = MockTransaction::new("1804").with_var("MTI", "1804");
        assert_eq!(select(&by_mti, tx), ["close", "send"]);
    }

    #[test]
    fn check_settings_reports_every_bad_key() {
        let env = MockEnv::new()
            .with_config("switch", "")
            .with_config("case ", "close")
            .with_config("cases 5001", "local-auth")
            .with_config("Default", "log");
        let problems = CaseSwitch::new().check_settings(&env);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["switch", "case ", "cases 5001", "Default"]);
        assert!(problems[0].message.contains("is empty"));
        assert!(problems[1].message.contains("case <value>"));
        assert!(problems[2].message.contains("unknown setting"));
        let env = MockEnv::new().with_config("switch", " PORT");
        let problems = CaseSwitch::new().check_settings(&env);
        assert!(
            problems[0].message.contains("not a variable name"),
            "{problems:?}"
        );
    }

    #[test]
    fn targets_are_the_groups_of_every_case_and_the_default() {
        let env = default_wiring().with_config("case 5003", "");
        assert_eq!(
            CaseSwitch::new().targets(&env),
            ["local-auth", "close", "send", "query-xxx", "log"]
        );
        let env = MockEnv::new().with_config("switch", "close");
        assert!(
            CaseSwitch::new().targets(&env).is_empty(),
            "`switch` names no group"
        );
    }
}
