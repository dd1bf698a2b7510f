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
//! With neither a matching case nor a `default`, it selects no group and
//! logs a warning. `prepare` does nothing and does not join; the work is done
//! in `select`: one variable and one or two settings read, whatever the
//! number of cases.

use switchyard_sdk::{Config, Env, Outcome, Participant, Selector, Transaction};

/// The variable switched on when `switch` is not configured.
pub const DEFAULT_SWITCH: &str = "PORT";

/// The CaseSwitch selector. Stateless.
#[derive(Clone, Copy, Debug, Default)]
pub struct CaseSwitch;

/// Group names of a setting: separated by whitespace or commas.
pub fn group_names(setting: &str) -> Vec<String> {
    setting
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The setting that applies to `value`: `case <value>`, else `default`.
fn groups_for(config: &impl Config, value: Option<&str>) -> Option<String> {
    value
        .and_then(|v| config.get(&format!("case {v}")))
        .or_else(|| config.get("default"))
        .map(|groups| groups.into_owned())
}

impl Participant for CaseSwitch {
    fn prepare(&mut self, _tx: &mut impl Transaction, _env: &impl Env) -> Outcome {
        Outcome::NoJoin
    }
}

impl Selector for CaseSwitch {
    fn select(&mut self, tx: &mut impl Transaction, env: &impl Env) -> Vec<String> {
        let switch = env.get("switch");
        let switch = switch.as_deref().unwrap_or(DEFAULT_SWITCH);
        let value = tx.var(switch);
        match groups_for(env, value.as_deref()) {
            Some(groups) => group_names(&groups),
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
}

switchyard_sdk::export_selector!(CaseSwitch);

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
        assert_eq!(CaseSwitch.prepare(&mut tx, env), Outcome::NoJoin);
        assert_eq!(tx.calls(), 0, "prepare asks the host nothing");
        let groups = CaseSwitch.select(&mut tx, env);
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
    fn reads_one_variable_and_at_most_three_settings() {
        let env = default_wiring();
        let mut tx = on_port("5005");
        CaseSwitch.select(&mut tx, &env);
        assert_eq!(tx.calls(), 1);
        assert_eq!(env.config_calls(), 3);
    }

    #[test]
    fn group_names_split_on_spaces_and_commas() {
        assert_eq!(group_names(" a  b,c ,, d\t"), ["a", "b", "c", "d"]);
        assert!(group_names("").is_empty());
    }
}
