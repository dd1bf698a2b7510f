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

/// Windowed counters for velocity checks (contract 1.1.0), scoped by the
/// host to the tenant and the plugin. A component gets them only when its
/// configuration grants `counters`; elsewhere they are unavailable unless
/// the environment provides them.
pub trait Counters {
    /// Adds `delta` to `name`/`key` now and returns the sum over the last
    /// `window_seconds` seconds (1..=2678400, 31 days, on a host offering
    /// contract 1.3.0; 1..=86400 before). Keys may be card numbers: the
    /// host keeps only their keyed hash.
    fn counter_add(
        &self,
        name: &str,
        key: &str,
        delta: i64,
        window_seconds: u32,
    ) -> Result<i64, String> {
        let _ = (name, key, delta, window_seconds);
        Err("counters are not available here".into())
    }

    /// The sum over the last `window_seconds` seconds.
    fn counter_sum(&self, name: &str, key: &str, window_seconds: u32) -> Result<i64, String> {
        self.counter_add(name, key, 0, window_seconds)
    }
}

/// The plugin's own key/value store (contract 1.1.0), scoped by the host to
/// the tenant and the plugin, durable. A component gets it only when its
/// configuration grants `kv`.
pub trait Kv {
    /// The value under `key`.
    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let _ = key;
        Err("the key/value store is not available here".into())
    }
    /// Stores `value` under `key` (at most 64 KiB).
    fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        let _ = (key, value);
        Err("the key/value store is not available here".into())
    }
    /// Removes `key`; true when it existed.
    fn kv_delete(&self, key: &str) -> Result<bool, String> {
        let _ = key;
        Err("the key/value store is not available here".into())
    }
    /// Stores `value` only when the current value is `expected` (`None`:
    /// absent). True when stored.
    fn kv_compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, String> {
        let _ = (key, expected, value);
        Err("the key/value store is not available here".into())
    }
}

/// Everything a participant gets besides the transaction. Implemented for
/// every type that is [`Config`], [`Log`], [`Clock`], [`Counters`] and
/// [`Kv`] (the last two have defaults that report "not available").
pub trait Env: Config + Log + Clock + Counters + Kv {}

impl<T: Config + Log + Clock + Counters + Kv + ?Sized> Env for T {}

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
