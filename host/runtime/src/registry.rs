//! The registry of the switch's plugins: which version of each is live, hot
//! swap and rollback, and pinning each transaction to the versions that were
//! live when it started.
//!
//! The live versions form a *generation*, replaced as a whole (one atomic
//! pointer swap) by a swap or rollback. A transaction pins the generation
//! when it enters its pipeline and uses it to the end, so transactions that
//! started before a swap finish on the versions they started with, and new
//! ones use the new version.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use switchyard_engine::ports::{SwapHistory, SwapRecord};
use switchyard_engine::{BeginHook, Context};

use crate::error::LoadError;
use crate::options::PluginOptions;
use crate::plugin::{Plugin, PluginShared, Role};
use crate::runtime::Runtime;

/// Versions kept per plugin for rollback (the live one included).
const VERSIONS_KEPT: usize = 8;

/// Index of a plugin in the registry.
pub type SlotId = usize;

/// The live version of every plugin.
#[derive(Debug)]
pub struct Generation {
    /// Increases by one with every swap or rollback.
    pub number: u64,
    plugins: Vec<Arc<Plugin>>,
}

impl Generation {
    /// The live version of the plugin in `slot`.
    pub fn plugin(&self, slot: SlotId) -> &Arc<Plugin> {
        &self.plugins[slot]
    }
}

/// A transaction's pinned generation (in its context's extensions).
pub(crate) struct Pinned(pub(crate) Arc<Generation>);

/// The extension key of [`Pinned`].
pub(crate) const PINNED_KEY: u64 = 0;

struct Slot {
    name: String,
    options: PluginOptions,
    shared: Arc<PluginShared>,
    roles: Mutex<Vec<Role>>,
    versions: Mutex<Vec<Arc<Plugin>>>,
}

/// What a plugin runs now.
#[derive(Debug, Clone)]
pub struct PluginStatus {
    /// Name in the config.
    pub name: String,
    /// The live version (12 hex digits of its SHA-256).
    pub version: String,
    /// Its full SHA-256.
    pub digest: String,
    /// Earlier versions kept for rollback, newest first.
    pub previous: Vec<String>,
    /// The roles pipelines use it in.
    pub roles: Vec<Role>,
    /// Its options.
    pub options: PluginOptions,
    /// The live version.
    pub plugin: Arc<Plugin>,
}

/// The result of a swap or rollback.
#[derive(Debug, Clone)]
pub struct SwapOutcome {
    /// What was recorded.
    pub record: SwapRecord,
    /// The generation now live.
    pub generation: u64,
    /// False when the new bytes were already live (nothing changed).
    pub changed: bool,
}

/// Loads the plugins of a configuration.
pub struct RegistryBuilder {
    runtime: Runtime,
    store: Option<Arc<dyn SwapHistory>>,
    slots: Vec<Slot>,
    by_name: HashMap<String, SlotId>,
}

impl RegistryBuilder {
    /// Plugins run by `runtime`; swaps are recorded in `store` when given.
    pub fn new(runtime: Runtime, store: Option<Arc<dyn SwapHistory>>) -> RegistryBuilder {
        RegistryBuilder {
            runtime,
            store,
            slots: Vec::new(),
            by_name: HashMap::new(),
        }
    }

    /// Loads plugin `name`.
    pub fn load(
        &mut self,
        name: &str,
        wasm: &[u8],
        options: PluginOptions,
    ) -> Result<SlotId, LoadError> {
        let shared = Arc::<PluginShared>::default();
        let plugin = self
            .runtime
            .load_shared(name, wasm, options.clone(), shared.clone())?;
        keep(self.store.as_deref(), name, plugin.digest(), wasm);
        let id = self.slots.len();
        self.slots.push(Slot {
            name: name.into(),
            options,
            shared,
            roles: Mutex::default(),
            versions: Mutex::new(vec![plugin]),
        });
        self.by_name.insert(name.into(), id);
        Ok(id)
    }

    /// The registry.
    pub fn build(self) -> Arc<Registry> {
        let plugins: Vec<Arc<Plugin>> = self
            .slots
            .iter()
            .map(|s| s.versions.lock()[0].clone())
            .collect();
        let live = plugins.iter().map(|p| AtomicU64::new(p.id())).collect();
        Arc::new(Registry {
            runtime: self.runtime,
            store: self.store,
            slots: self.slots,
            by_name: self.by_name,
            current: ArcSwap::from_pointee(Generation { number: 1, plugins }),
            live,
            swapping: Mutex::new(()),
            history: Mutex::default(),
        })
    }
}

/// Keeps a version's component in the store (for the other nodes), logging
/// a failure: the swap itself goes on.
fn keep(store: Option<&dyn SwapHistory>, name: &str, digest: &str, wasm: &[u8]) {
    if let Some(store) = store
        && let Err(e) = store.keep_version(digest, wasm)
    {
        tracing::error!(plugin = name, error = %e,
            "could not keep the plugin version in the store: other nodes cannot follow it");
    }
}

/// The switch's plugins and their live versions.
pub struct Registry {
    runtime: Runtime,
    store: Option<Arc<dyn SwapHistory>>,
    slots: Vec<Slot>,
    by_name: HashMap<String, SlotId>,
    pub(crate) current: ArcSwap<Generation>,
    /// The id of each slot's live version (a cheap read for instance pools).
    live: Vec<AtomicU64>,
    swapping: Mutex<()>,
    history: Mutex<Vec<SwapRecord>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("plugins", &self.by_name.keys().collect::<Vec<_>>())
            .field("generation", &self.current.load().number)
            .finish()
    }
}

impl Registry {
    /// The slot of plugin `name`.
    pub fn slot(&self, name: &str) -> Option<SlotId> {
        self.by_name.get(name).copied()
    }

    /// The id of the live version of the plugin in `slot`.
    pub(crate) fn live_id(&self, slot: SlotId) -> u64 {
        self.live[slot].load(Ordering::Acquire)
    }

    /// The live generation.
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// Pins the live generation to the transaction.
    pub fn pin(&self, ctx: &mut Context) {
        ctx.extensions
            .insert(PINNED_KEY, Pinned(self.current.load_full()));
    }

    /// A pipeline hook that pins every transaction on entry.
    pub fn pin_hook(self: &Arc<Self>) -> BeginHook {
        let registry = self.clone();
        Arc::new(move |ctx: &mut Context| registry.pin(ctx))
    }

    /// Declares that a pipeline uses the plugin in `slot` as `role`: checked
    /// now, and against every version swapped in later.
    pub fn require_role(&self, slot: SlotId, role: Role) -> Result<(), LoadError> {
        self.current.load().plugins[slot].check_role(role)?;
        let mut roles = self.slots[slot].roles.lock();
        if !roles.contains(&role) {
            roles.push(role);
        }
        Ok(())
    }

    /// Replaces plugin `name` with `wasm`: compiles it (on the calling
    /// thread — call this off the transaction path), checks its imports
    /// against the plugin's grants and its exports against every role
    /// pipelines use it in, instantiates it once, then makes it live for
    /// transactions that start from now on.
    pub fn swap(&self, name: &str, wasm: &[u8], actor: &str) -> Result<SwapOutcome, LoadError> {
        self.swap_as(name, wasm, actor, true)
    }

    /// Makes `wasm` live for plugin `name` because another node sharing
    /// the store swapped (or rolled back) to it: checked and published like
    /// [`Registry::swap`], recorded in this node's history only (the other
    /// node recorded it in the store).
    pub fn follow(&self, name: &str, wasm: &[u8], actor: &str) -> Result<SwapOutcome, LoadError> {
        self.swap_as(name, wasm, actor, false)
    }

    /// The live version's full SHA-256 of plugin `name`.
    pub fn live_digest(&self, name: &str) -> Option<String> {
        let id = self.slot(name)?;
        Some(self.current.load().plugins[id].digest().to_string())
    }

    fn swap_as(
        &self,
        name: &str,
        wasm: &[u8],
        actor: &str,
        persist: bool,
    ) -> Result<SwapOutcome, LoadError> {
        let _one_at_a_time = self.swapping.lock();
        let id = self
            .slot(name)
            .ok_or_else(|| LoadError::UnknownPlugin(name.into()))?;
        let slot = &self.slots[id];
        let new =
            self.runtime
                .load_shared(name, wasm, slot.options.clone(), slot.shared.clone())?;
        for role in slot.roles.lock().iter() {
            new.check_role(*role)?;
        }
        let old = self.current.load().plugins[id].clone();
        if old.digest() == new.digest() {
            return Ok(SwapOutcome {
                record: self.record(name, "swap", (&old, &old), actor, false, persist),
                generation: self.current.load().number,
                changed: false,
            });
        }
        if persist {
            keep(self.store.as_deref(), name, new.digest(), wasm);
        }
        {
            let mut versions = slot.versions.lock();
            versions.push(new.clone());
            if versions.len() > VERSIONS_KEPT {
                versions.remove(0);
            }
        }
        let generation = self.publish(id, new.clone());
        Ok(SwapOutcome {
            record: self.record(name, "swap", (&old, &new), actor, true, persist),
            generation,
            changed: true,
        })
    }

    /// Returns plugin `name` to the version live before the current one.
    pub fn rollback(&self, name: &str, actor: &str) -> Result<SwapOutcome, LoadError> {
        let _one_at_a_time = self.swapping.lock();
        let id = self
            .slot(name)
            .ok_or_else(|| LoadError::UnknownPlugin(name.into()))?;
        let slot = &self.slots[id];
        let (old, previous) = {
            let mut versions = slot.versions.lock();
            if versions.len() < 2 {
                return Err(LoadError::NoEarlierVersion(name.into()));
            }
            let old = versions.pop().expect("two or more versions");
            (old, versions.last().expect("one left").clone())
        };
        let generation = self.publish(id, previous.clone());
        Ok(SwapOutcome {
            record: self.record(name, "rollback", (&old, &previous), actor, true, true),
            generation,
            changed: true,
        })
    }

    fn publish(&self, id: SlotId, plugin: Arc<Plugin>) -> u64 {
        let current = self.current.load();
        let mut plugins = current.plugins.clone();
        self.live[id].store(plugin.id(), Ordering::Release);
        plugins[id] = plugin;
        let number = current.number + 1;
        self.current.store(Arc::new(Generation { number, plugins }));
        number
    }

    fn record(
        &self,
        name: &str,
        action: &str,
        (old, new): (&Plugin, &Plugin),
        actor: &str,
        changed: bool,
        persist: bool,
    ) -> SwapRecord {
        let record = SwapRecord {
            at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            plugin: name.into(),
            action: if changed {
                action.into()
            } else {
                format!("{action} (unchanged)")
            },
            old_hash: old.digest().into(),
            new_hash: new.digest().into(),
            actor: actor.into(),
        };
        tracing::info!(plugin = name, action = %record.action, old = old.version(), new = new.version(),
            actor, "plugin version changed");
        if let Some(store) = self.store.as_ref().filter(|_| persist)
            && let Err(e) = store.record_swap(&record)
        {
            tracing::error!(plugin = name, error = %e, "could not record the swap in the store");
        }
        let mut history = self.history.lock();
        history.push(record.clone());
        if history.len() > 1000 {
            history.remove(0);
        }
        record
    }

    /// What every plugin runs now, by name.
    pub fn list(&self) -> Vec<PluginStatus> {
        let current = self.current.load();
        let mut out: Vec<PluginStatus> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let live = current.plugins[i].clone();
                let previous = s
                    .versions
                    .lock()
                    .iter()
                    .rev()
                    .skip(1)
                    .map(|p| p.version().to_owned())
                    .collect();
                PluginStatus {
                    name: s.name.clone(),
                    version: live.version().into(),
                    digest: live.digest().into(),
                    previous,
                    roles: s.roles.lock().clone(),
                    options: s.options.clone(),
                    plugin: live,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The latest swaps and rollbacks, newest last (from the store when the
    /// switch has one, so they survive restarts).
    pub fn history(&self, limit: usize) -> Vec<SwapRecord> {
        if let Some(store) = &self.store {
            match store.swaps(limit) {
                Ok(s) => return s,
                Err(e) => tracing::error!(error = %e, "could not read swap history"),
            }
        }
        let h = self.history.lock();
        h[h.len().saturating_sub(limit)..].to_vec()
    }
}
