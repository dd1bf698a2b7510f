//! In-memory stand-ins for the store behind the `kv` and `counters`
//! capabilities: the runtime's tests check the plumbing (grants, scoping by
//! tenant and plugin, what a plugin does with them), not a database, and a
//! disk write must not decide whether a 50 ms call deadline holds.
#![allow(dead_code)]

use std::collections::HashMap;

use parking_lot::Mutex;
use switchyard_engine::ports::{CounterStore, KvStore, PortError};

/// An in-memory kv store, scoped like the real one by tenant and plugin.
#[derive(Default)]
pub struct MemoryKv(Mutex<HashMap<(String, String, String), Vec<u8>>>);

impl MemoryKv {
    /// The value of `key` for `tenant` and `plugin`.
    pub fn get(&self, tenant: &str, plugin: &str, key: &str) -> Option<Vec<u8>> {
        self.0
            .lock()
            .get(&(tenant.into(), plugin.into(), key.into()))
            .cloned()
    }
}

impl KvStore for MemoryKv {
    fn kv_get(&self, tenant: &str, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        Ok(self.get(tenant, plugin, key))
    }
    fn kv_set(&self, tenant: &str, plugin: &str, key: &str, value: &[u8]) -> Result<(), PortError> {
        self.0
            .lock()
            .insert((tenant.into(), plugin.into(), key.into()), value.to_vec());
        Ok(())
    }
    fn kv_delete(&self, tenant: &str, plugin: &str, key: &str) -> Result<bool, PortError> {
        Ok(self
            .0
            .lock()
            .remove(&(tenant.into(), plugin.into(), key.into()))
            .is_some())
    }
    fn kv_compare_and_set(
        &self,
        tenant: &str,
        plugin: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, PortError> {
        let mut map = self.0.lock();
        let k = (tenant.to_owned(), plugin.to_owned(), key.to_owned());
        if map.get(&k).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        map.insert(k, value.to_vec());
        Ok(true)
    }
}

/// Counters that never expire (windows do not matter here).
#[derive(Default)]
pub struct MemoryCounters(Mutex<HashMap<String, i64>>);

impl CounterStore for MemoryCounters {
    fn counter_add(
        &self,
        scope: (&str, &str),
        name: &str,
        key: &str,
        delta: i64,
        _window_seconds: u32,
    ) -> Result<i64, PortError> {
        let mut map = self.0.lock();
        let sum = map
            .entry(format!("{}/{}/{name}/{key}", scope.0, scope.1))
            .or_default();
        *sum += delta;
        Ok(*sum)
    }
    fn counter_sum(
        &self,
        scope: (&str, &str),
        name: &str,
        key: &str,
        window_seconds: u32,
    ) -> Result<i64, PortError> {
        self.counter_add(scope, name, key, 0, window_seconds)
    }
}
