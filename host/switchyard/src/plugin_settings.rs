//! What the loaded plugins prove of a [`Plan`] before anything runs:
//!
//! - each plugin can play the role its uses need (a participant or
//!   selector; an endpoint's formatter, with `store-and-forward`);
//! - every configured use of a plugin — a participant's `config`, an
//!   endpoint's `formatter_config`, each merged over the plugin's own
//!   `config` — is shown to the plugin (contract 1.3.0, export `settings`),
//!   which names what is wrong;
//! - a selector names what it may select, and each of those names must be
//!   a group of every pipeline the selector runs in, or a participant;
//! - a group that no selector of its pipeline may select (when every
//!   selector there says what it selects) is dead configuration.
//!
//! `switchyard check` and start-up refuse the configuration with every
//! problem at once, each at its path, instead of failing every transaction
//! with RC 96.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::bail;
use switchyard_runtime::{Registry, Role};

use crate::plan::{PipelinePlan, Plan, Step, toml_key};

/// Refuses `plan` when one of [`problems`] is found.
pub fn check(plan: &Plan, registry: &Registry) -> anyhow::Result<()> {
    let problems = problems(plan, registry);
    if !problems.is_empty() {
        bail!(
            "{} problem(s) found by the plugins:\n  - {}",
            problems.len(),
            problems.join("\n  - ")
        );
    }
    Ok(())
}

/// Every problem the loaded plugins find in `plan`, each at its path.
pub fn problems(plan: &Plan, registry: &Registry) -> Vec<String> {
    let mut problems = Vec::new();
    let mut found: BTreeMap<&str, Found> = BTreeMap::new();
    for (name, step) in &plan.participants {
        let Step::Plugin { plugin, settings } = step else {
            continue;
        };
        let use_ = Use {
            plugin,
            at: format!("participants.{}", toml_key(name)),
            own: plan
                .config
                .participants
                .get(name)
                .map(|p| p.config.clone())
                .unwrap_or_default(),
            settings,
        };
        if let Some(f) = use_.check(registry, Role::Participant, &mut problems) {
            found.insert(name, f);
        }
    }
    for (name, e) in &plan.endpoints {
        let use_ = Use {
            plugin: &e.formatter,
            at: format!("endpoints.{}", toml_key(name)),
            own: e.config.formatter_config.clone(),
            settings: &e.formatter_settings,
        };
        use_.check(registry, Role::EndpointFormatter, &mut problems);
    }
    let mut reached = BTreeSet::new();
    for (name, pipeline) in &plan.pipelines {
        reached.extend(selections(plan, name, pipeline, &found, &mut problems));
    }
    // A selector no traced selection reaches (an older selector may select
    // it): its targets must be a group of some pipeline or a participant.
    let groups: BTreeSet<&str> = plan
        .pipelines
        .values()
        .flat_map(|p| p.groups.keys())
        .map(String::as_str)
        .collect();
    for (n, f) in &found {
        if !f.selector || reached.contains(n) {
            continue;
        }
        for t in &f.targets {
            if !groups.contains(t.as_str()) && !plan.participants.contains_key(t) {
                problems.push(format!(
                    "participants.{}.config: selector {n:?} (plugin {}) may select {t:?}, \
                     which is neither a group of a pipeline nor a participant",
                    toml_key(n),
                    f.plugin
                ));
            }
        }
    }
    problems
}

/// The selections of one pipeline: every target of a selector that may
/// run in it must be one of its groups or a participant; every group must
/// be selectable by one of those selectors (known only when each of them
/// says what it selects). What surely runs in it, by name.
fn selections<'a>(
    plan: &'a Plan,
    name: &str,
    pipeline: &'a PipelinePlan,
    found: &'a BTreeMap<&'a str, Found>,
    problems: &mut Vec<String>,
) -> BTreeSet<&'a str> {
    // What surely runs: the main list, and what declared selections reach.
    let mut reached = BTreeSet::new();
    let mut complete = true;
    let mut queue: Vec<&str> = pipeline.participants.iter().map(String::as_str).collect();
    while let Some(n) = queue.pop() {
        if !reached.insert(n) {
            continue;
        }
        let Some(f) = found.get(n).filter(|f| f.selector) else {
            continue;
        };
        if !f.declares_targets {
            complete = false;
            continue;
        }
        for t in &f.targets {
            if let Some(members) = pipeline.groups.get(t) {
                queue.extend(members.iter().map(String::as_str));
            } else if plan.participants.contains_key(t) {
                queue.push(t.as_str());
            } else {
                problems.push(format!(
                    "participants.{}.config: selector {n:?} (plugin {}) may select {t:?}, \
                     which is neither a group of pipeline {name:?} nor a participant",
                    toml_key(n),
                    f.plugin
                ));
            }
        }
    }
    if !complete {
        return reached;
    }
    for g in pipeline.groups.keys() {
        let selected = reached
            .iter()
            .filter_map(|n| found.get(n))
            .any(|f| f.selector && f.targets.contains(g));
        if !selected {
            problems.push(format!(
                "pipelines.{}.groups.{}: no selector of pipeline {name:?} selects this group",
                toml_key(name),
                toml_key(g)
            ));
        }
    }
    reached
}

/// One configured use of a plugin.
struct Use<'a> {
    plugin: &'a str,
    /// The path of the use: `participants.NAME` or `endpoints.NAME`.
    at: String,
    /// The use's own settings table (`config`, `formatter_config`).
    own: toml::Table,
    /// The merged settings the plugin gets.
    settings: &'a [(String, String)],
}

/// What a plugin said of one use.
struct Found {
    plugin: String,
    selector: bool,
    declares_targets: bool,
    targets: Vec<String>,
}

impl Use<'_> {
    /// The role and settings checks; `None` when the plugin did not load
    /// (refused already) or cannot play the role.
    fn check(&self, registry: &Registry, role: Role, problems: &mut Vec<String>) -> Option<Found> {
        let slot = registry.slot(self.plugin)?;
        let live = registry.current();
        let plugin = live.plugin(slot);
        let selector = role == Role::Participant && plugin.check_role(Role::Selector).is_ok();
        if let Err(e) = plugin.check_role(role) {
            let key = if role == Role::Participant {
                "plugin"
            } else {
                "formatter"
            };
            problems.push(format!("{}.{key}: {e}", self.at));
            return None;
        }
        let settings_at = self.settings_table();
        let check = match plugin.check_settings(self.settings) {
            Ok(c) => c,
            Err(f) => {
                problems.push(format!(
                    "{settings_at}: plugin {}: its settings check failed: {}",
                    self.plugin, f.message
                ));
                return None;
            }
        };
        for (key, message) in check.problems {
            problems.push(format!(
                "{}: plugin {}: {message}",
                self.path_of(&key),
                self.plugin
            ));
        }
        Some(Found {
            plugin: self.plugin.to_owned(),
            selector,
            declares_targets: plugin.exports_settings_check(),
            targets: check.targets,
        })
    }

    /// The path of the use's own settings table.
    fn settings_table(&self) -> String {
        if self.at.starts_with("endpoints.") {
            format!("{}.formatter_config", self.at)
        } else {
            format!("{}.config", self.at)
        }
    }

    /// Where `key` is set: the use's own table, else the plugin's.
    fn path_of(&self, key: &str) -> String {
        if key.is_empty() {
            return self.settings_table();
        }
        let quoted = toml_key(key);
        if self.own.contains_key(key) {
            format!("{}.{quoted}", self.settings_table())
        } else {
            format!("plugins.{}.config.{quoted}", toml_key(self.plugin))
        }
    }
}
