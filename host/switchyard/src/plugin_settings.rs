//! Plugin settings proven at load (contract 1.3.0, export `settings`):
//! every configured use of a plugin — a participant's `config`, an
//! endpoint's `formatter_config`, each merged over the plugin's own
//! `config` — is shown to the plugin, which names what is wrong; a
//! selector also names what it may select, and each of those names must
//! be a group of a pipeline or a participant. `switchyard check` and
//! start-up refuse the configuration with every problem at once, each at
//! its path, instead of failing every transaction with RC 96.

use std::collections::BTreeSet;

use anyhow::bail;
use switchyard_runtime::Registry;

use crate::config::{Config, settings};

/// Refuses `config` when a plugin refuses the settings of one of its uses
/// or a selector may select a name that is neither a group nor a
/// participant.
pub fn check(config: &Config, registry: &Registry) -> anyhow::Result<()> {
    let known = selectable(config);
    let mut problems = Vec::new();
    for (name, p) in &config.participants {
        let Some(plugin) = &p.plugin else { continue };
        let use_ = Use {
            plugin,
            at: format!("participants.{name}.config"),
            own: &p.config,
        };
        use_.check(config, registry, Some(&known), &mut problems);
    }
    for (name, e) in &config.endpoints {
        let use_ = Use {
            plugin: &e.formatter,
            at: format!("endpoints.{name}.formatter_config"),
            own: &e.formatter_config,
        };
        use_.check(config, registry, None, &mut problems);
    }
    if !problems.is_empty() {
        bail!("plugin settings refused:\n  - {}", problems.join("\n  - "));
    }
    Ok(())
}

/// Every name a selector may return: the groups of every pipeline, and
/// the participants (a name that is no group selects that participant).
fn selectable(config: &Config) -> BTreeSet<&str> {
    config
        .pipelines
        .values()
        .flat_map(|p| p.groups.keys())
        .chain(config.participants.keys())
        .map(String::as_str)
        .collect()
}

/// One configured use of a plugin.
struct Use<'a> {
    plugin: &'a str,
    /// The path of the use's own settings table.
    at: String,
    own: &'a toml::Table,
}

impl Use<'_> {
    fn check(
        &self,
        config: &Config,
        registry: &Registry,
        known: Option<&BTreeSet<&str>>,
        problems: &mut Vec<String>,
    ) {
        let (Some(slot), Some(plugin_config)) =
            (registry.slot(self.plugin), config.plugins.get(self.plugin))
        else {
            return; // refused already: the plugin did not load
        };
        let merged = settings(&[&plugin_config.config, self.own]);
        let live = registry.current();
        let check = match live.plugin(slot).check_settings(&merged) {
            Ok(c) => c,
            Err(f) => {
                problems.push(format!(
                    "{}: plugin {}: its settings check failed: {}",
                    self.at, self.plugin, f.message
                ));
                return;
            }
        };
        for (key, message) in check.problems {
            problems.push(format!(
                "{}: plugin {}: {message}",
                self.path_of(&key),
                self.plugin
            ));
        }
        let Some(known) = known else { return };
        for target in check.targets {
            if !known.contains(target.as_str()) {
                problems.push(format!(
                    "{}: plugin {} may select {target:?}, which is neither a group of a pipeline \
                     nor a participant",
                    self.at, self.plugin
                ));
            }
        }
    }

    /// Where `key` is set: the use's own table, else the plugin's.
    fn path_of(&self, key: &str) -> String {
        if key.is_empty() {
            return self.at.clone();
        }
        let quoted = toml_key(key);
        if self.own.contains_key(key) {
            format!("{}.{quoted}", self.at)
        } else {
            format!("plugins.{}.config.{quoted}", self.plugin)
        }
    }
}

/// `key` as TOML writes it in a dotted path: bare when it can be.
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_quoted_only_when_they_must_be() {
        assert_eq!(toml_key("limit"), "limit");
        assert_eq!(toml_key("bin 4"), "\"bin 4\"");
        assert_eq!(toml_key("case 5001"), "\"case 5001\"");
    }
}
