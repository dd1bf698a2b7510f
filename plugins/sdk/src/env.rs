//! What a participant gets from the host besides the transaction: its
//! settings, logging and time.

use std::borrow::Cow;

/// The participant's own settings, from its table in the pipeline file.
pub trait Config {
    /// One setting by key, or `None` when it is not configured.
    fn get(&self, key: &str) -> Option<Cow<'_, str>>;

    /// Every setting, as key/value pairs in the order of the file. In a
    /// component this is a list call: prefer [`Config::get`].
    fn entries(&self) -> Vec<(String, String)>;
}

/// A log level, most verbose first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something looks wrong but the transaction goes on.
    Warn,
    /// Something failed.
    Error,
}

/// Logging through the host, which adds the plugin, tenant and transaction
/// identifiers, masks anything that looks like a card number and rate-limits.
/// Still: never log a PAN, track data or a PIN block; use
/// [`crate::card::mask_pan`].
pub trait Log {
    /// Logs one message.
    fn log(&self, level: Level, message: &str);

    /// Logs at [`Level::Debug`].
    fn debug(&self, message: &str) {
        self.log(Level::Debug, message)
    }
    /// Logs at [`Level::Info`].
    fn info(&self, message: &str) {
        self.log(Level::Info, message)
    }
    /// Logs at [`Level::Warn`].
    fn warn(&self, message: &str) {
        self.log(Level::Warn, message)
    }
    /// Logs at [`Level::Error`].
    fn error(&self, message: &str) {
        self.log(Level::Error, message)
    }
}

/// Time, from the host.
pub trait Clock {
    /// Wall-clock time: milliseconds since the Unix epoch, UTC.
    fn now_unix_millis(&self) -> i64;

    /// A monotonic instant in nanoseconds, for measuring durations only.
    fn monotonic_nanos(&self) -> u64;
}

/// Everything a participant gets besides the transaction. Implemented for
/// every type that is [`Config`], [`Log`] and [`Clock`].
pub trait Env: Config + Log + Clock {}

impl<T: Config + Log + Clock + ?Sized> Env for T {}

/// Settings held in memory, in file order: for tests, and for a native host
/// that already parsed the pipeline file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapConfig {
    entries: Vec<(String, String)>,
}

impl MapConfig {
    /// No settings.
    pub fn new() -> MapConfig {
        MapConfig::default()
    }

    /// Adds a setting, replacing one with the same key in place.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// [`MapConfig::set`], builder style.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> MapConfig {
        self.set(key, value);
        self
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for MapConfig {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> MapConfig {
        let mut config = MapConfig::new();
        for (k, v) in iter {
            config.set(k, v);
        }
        config
    }
}

impl Config for MapConfig {
    fn get(&self, key: &str) -> Option<Cow<'_, str>> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| Cow::Borrowed(v.as_str()))
    }

    fn entries(&self) -> Vec<(String, String)> {
        self.entries.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_config_keeps_file_order_and_replaces_in_place() {
        let config = MapConfig::new()
            .with("switch", "PORT")
            .with("case 5001", "local-auth")
            .with("switch", "TENANT");
        assert_eq!(config.get("switch").as_deref(), Some("TENANT"));
        assert_eq!(config.get("missing"), None);
        assert_eq!(
            config.entries(),
            vec![
                ("switch".to_string(), "TENANT".to_string()),
                ("case 5001".to_string(), "local-auth".to_string()),
            ]
        );
    }
}
