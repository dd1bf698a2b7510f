//! The wasmtime engines, their epoch ticker, linking of granted capabilities,
//! and the precompiled artifact cache.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use switchyard_engine::ports::{CounterStore, KvStore};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasSelf, Linker, LinkerInstance, ResourceType};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings;
use crate::deadline::Ticks;
use crate::error::LoadError;
use crate::host::HostState;
use crate::options::{Capability, InstancePolicy, PluginOptions};
use crate::plugin::{Plugin, PluginShared};

/// How often the epoch advances: the resolution of per-call deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Settings of the runtime as a whole.
#[derive(Clone)]
pub struct RuntimeOptions {
    /// Where precompiled plugins are cached; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// The store behind the `kv` capability; `None`: `kv` calls fail.
    pub kv: Option<Arc<dyn KvStore>>,
    /// The counters behind the `counters` capability; `None`: `counters`
    /// calls fail.
    pub counters: Option<Arc<dyn CounterStore>>,
    /// Instances the pooling allocator of `fresh` plugins holds at once.
    pub pool_instances: u32,
}

impl std::fmt::Debug for RuntimeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeOptions")
            .field("cache_dir", &self.cache_dir)
            .field("kv", &self.kv.is_some())
            .field("counters", &self.counters.is_some())
            .field("pool_instances", &self.pool_instances)
            .finish()
    }
}

impl Default for RuntimeOptions {
    fn default() -> RuntimeOptions {
        RuntimeOptions {
            cache_dir: None,
            kv: None,
            counters: None,
            pool_instances: 256,
        }
    }
}

/// The host capabilities that keep state.
pub(crate) struct Capabilities {
    pub(crate) kv: Option<Arc<dyn KvStore>>,
    pub(crate) counters: Option<Arc<dyn CounterStore>>,
}

/// Engine settings that change compiled code or instance allocation; plugins
/// that agree on them share an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Profile {
    stack_bytes: usize,
    fuel: bool,
    /// `Some(memory cap)`: pooling allocator for `fresh` instances.
    pooled: Option<usize>,
}

struct EngineEntry {
    engine: Engine,
    compat: u64,
}

/// The WebAssembly runtime every plugin of the switch shares.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engines: Mutex<HashMap<Profile, Arc<EngineEntry>>>,
    ticking: Arc<Mutex<Vec<Engine>>>,
    cache_dir: Option<PathBuf>,
    capabilities: Arc<Capabilities>,
    pool_instances: u32,
    ticks: Arc<Ticks>,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("cache_dir", &self.inner.cache_dir)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Sets up the runtime and starts the epoch ticker thread (stopped when
    /// the last clone is dropped).
    pub fn new(options: RuntimeOptions) -> Result<Runtime, LoadError> {
        if let Some(dir) = &options.cache_dir {
            private_dir(dir).map_err(|e| LoadError::Cache {
                path: dir.clone(),
                reason: e.to_string(),
            })?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let ticking: Arc<Mutex<Vec<Engine>>> = Arc::default();
        let ticks = Arc::new(Ticks::new());
        let ticker = {
            let stop = stop.clone();
            let ticking = ticking.clone();
            let ticks = ticks.clone();
            std::thread::Builder::new()
                .name("wasm-epoch".into())
                .spawn(move || tick(&stop, &ticking, &ticks))
                .map_err(|e| LoadError::Engine(format!("epoch ticker: {e}")))?
        };
        Ok(Runtime {
            inner: Arc::new(Inner {
                engines: Mutex::default(),
                ticking,
                cache_dir: options.cache_dir,
                capabilities: Arc::new(Capabilities {
                    kv: options.kv,
                    counters: options.counters,
                }),
                pool_instances: options.pool_instances.max(1),
                ticks,
                stop,
                ticker: Some(ticker),
            }),
        })
    }

    pub(crate) fn capabilities(&self) -> &Arc<Capabilities> {
        &self.inner.capabilities
    }

    /// The tick counter that per-call deadlines are measured on.
    pub(crate) fn ticks(&self) -> &Arc<Ticks> {
        &self.inner.ticks
    }

    fn engine_for(&self, options: &PluginOptions) -> Result<Arc<EngineEntry>, LoadError> {
        let profile = Profile {
            stack_bytes: options.limits.stack_bytes,
            fuel: options.limits.fuel.is_some(),
            pooled: matches!(options.policy, InstancePolicy::Fresh)
                .then_some(options.limits.memory_bytes),
        };
        let mut engines = self.inner.engines.lock();
        if let Some(e) = engines.get(&profile) {
            return Ok(e.clone());
        }
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(profile.fuel)
            .max_wasm_stack(profile.stack_bytes)
            // Compiling happens on the calling thread only: at start-up, or on
            // the low-priority swap thread, never on the transaction cores.
            .parallel_compilation(false)
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        if let Some(memory) = profile.pooled {
            let slot = (memory as u64).next_power_of_two().max(1 << 20);
            let n = self.inner.pool_instances;
            let mut pool = PoolingAllocationConfig::default();
            pool.total_component_instances(n)
                .total_core_instances(n * 8)
                .total_memories(n * 2)
                .total_tables(n * 8)
                .max_memory_size(slot as usize)
                .table_elements(10_000);
            config
                .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
                .memory_reservation(slot)
                .memory_guard_size(64 << 10)
                .memory_init_cow(true);
        }
        let engine = Engine::new(&config).map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let entry = Arc::new(EngineEntry {
            engine: engine.clone(),
            compat: hasher.finish(),
        });
        self.inner.ticking.lock().push(engine);
        engines.insert(profile, entry.clone());
        Ok(entry)
    }

    /// Loads a plugin: compiles it (or takes it from the cache), checks its
    /// imports against its grants, links the granted capabilities, checks it
    /// exports something and instantiates it once. Call this off the
    /// transaction path: compiling takes tens of milliseconds.
    pub fn load(
        &self,
        name: &str,
        wasm: &[u8],
        options: PluginOptions,
    ) -> Result<Arc<Plugin>, LoadError> {
        self.load_shared(name, wasm, options, Arc::default())
    }

    /// [`Runtime::load`] for a new version of a plugin whose metrics it
    /// continues.
    pub(crate) fn load_shared(
        &self,
        name: &str,
        wasm: &[u8],
        options: PluginOptions,
        shared: Arc<PluginShared>,
    ) -> Result<Arc<Plugin>, LoadError> {
        let digest = hex::encode(Sha256::digest(wasm));
        let entry = self.engine_for(&options)?;
        let component = self.compile(&entry, name, &digest, wasm)?;
        let linker = self.link(&entry.engine, name, &component, &options)?;
        Plugin::new(self, name, digest, &component, &linker, options, shared).map(Arc::new)
    }

    /// Loads a plugin from a file.
    pub fn load_file(
        &self,
        name: &str,
        path: &Path,
        options: PluginOptions,
    ) -> Result<Arc<Plugin>, LoadError> {
        let wasm = fs::read(path).map_err(|e| LoadError::Read {
            plugin: name.into(),
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        self.load(name, &wasm, options)
    }

    /// A linker with exactly the capabilities granted, after checking every
    /// import of the component: contract interfaces must be known, of a
    /// version this host offers, and granted; WASI imports (which a std guest
    /// carries) trap if called; anything else is refused.
    fn link(
        &self,
        engine: &Engine,
        name: &str,
        component: &Component,
        options: &PluginOptions,
    ) -> Result<Linker<HostState>, LoadError> {
        let mut problems = Vec::new();
        for (import, _) in component.component_type().imports(engine) {
            if import.starts_with("wasi:") {
                continue;
            }
            match parse_import(import) {
                Some((bindings::PACKAGE, iface, major, minor)) => {
                    let Some(cap) = Capability::parse(iface) else {
                        problems.push(format!("{import}: the contract has no interface {iface:?}"));
                        continue;
                    };
                    if major != 1 || minor > bindings::NEWEST_MINOR {
                        problems.push(format!(
                            "{import}: this host offers {}/{iface} 1.{}..=1.{}",
                            bindings::PACKAGE,
                            cap.since_minor(),
                            bindings::NEWEST_MINOR
                        ));
                    } else if !options.grants(cap) {
                        problems.push(format!(
                            "{import}: capability {:?} is not granted to it (add it to the plugin's grants)",
                            cap.name()
                        ));
                    }
                }
                _ => problems.push(format!("{import}: not an interface this host offers")),
            }
        }
        if !problems.is_empty() {
            return Err(LoadError::Imports {
                plugin: name.into(),
                problems,
            });
        }
        let mut linker = Linker::new(engine);
        let link_err = |e: wasmtime::Error| LoadError::Link {
            plugin: name.into(),
            reason: format!("{e:#}"),
        };
        use bindings::switchyard::participant as p;
        for cap in &options.grants {
            let r = match cap {
                Capability::Transaction => p::transaction::add_to_linker::<
                    HostState,
                    HasSelf<HostState>,
                >(&mut linker, |s| s),
                Capability::Config => {
                    p::config::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
                }
                Capability::Log => {
                    p::log::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
                }
                Capability::Clock => {
                    p::clock::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
                }
                Capability::Counters => {
                    p::counters::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
                }
                Capability::Kv => {
                    p::kv::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
                }
            };
            r.map_err(link_err)?;
        }
        // Not `define_unknown_imports_as_traps`: it matches names exactly,
        // so it would shadow the semver-compatible definitions a 1.0.0
        // plugin's imports resolve to with traps.
        for (import, item) in component.component_type().imports(engine) {
            if import.starts_with("wasi:") {
                stub(&mut linker.root(), import, item.ty, None, engine).map_err(link_err)?;
            }
        }
        Ok(linker)
    }

    fn compile(
        &self,
        entry: &EngineEntry,
        name: &str,
        digest: &str,
        wasm: &[u8],
    ) -> Result<Component, LoadError> {
        if let Some(reason) = not_a_component(wasm) {
            return Err(LoadError::Compile {
                plugin: name.into(),
                reason,
            });
        }
        let compile = || {
            Component::new(&entry.engine, wasm).map_err(|e| LoadError::Compile {
                plugin: name.into(),
                // wasmtime's reasons may span lines (debug dumps): one line.
                reason: format!("{e:#}")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            })
        };
        let Some(dir) = &self.inner.cache_dir else {
            return compile();
        };
        let path = dir.join(format!("{digest}-{:016x}.cwasm", entry.compat));
        // Read into memory rather than mapping the file: a file changed in
        // place while mapped would fault the process.
        if let Ok(bytes) = fs::read(&path) {
            // SAFETY: `deserialize` trusts its input to be an artifact that
            // wasmtime itself produced. These bytes come from the switch's own
            // cache directory, written only by `Component::serialize` of an
            // engine with the same compatibility hash (it is in the file
            // name), via an atomic rename; wasmtime still checks the header
            // and refuses an artifact from another version or configuration.
            #[allow(unsafe_code)]
            let loaded = unsafe { Component::deserialize(&entry.engine, &bytes) };
            match loaded {
                Ok(c) => {
                    tracing::debug!(plugin = name, path = %path.display(), "plugin loaded from the precompiled cache");
                    return Ok(c);
                }
                Err(e) => {
                    tracing::warn!(plugin = name, path = %path.display(), error = %e, "unusable precompiled artifact; recompiling");
                    let _ = fs::remove_file(&path);
                }
            }
        }
        let started = std::time::Instant::now();
        let component = compile()?;
        tracing::info!(
            plugin = name,
            ms = started.elapsed().as_millis() as u64,
            "plugin compiled"
        );
        match component.serialize() {
            Ok(bytes) => {
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                let written = private_write(&tmp, &bytes).and_then(|()| fs::rename(&tmp, &path));
                if let Err(e) = written {
                    let _ = fs::remove_file(&tmp);
                    tracing::warn!(plugin = name, path = %path.display(), error = %e, "could not cache the precompiled plugin");
                }
            }
            Err(e) => {
                tracing::warn!(plugin = name, error = %e, "could not serialize the compiled plugin")
            }
        }
        Ok(component)
    }
}

/// Creates the cache directory (and its parents) and makes it 0700, and
/// every file in it 0600 (a cache an older version wrote 0644): compiled
/// plugins are code the switch runs, for its user only.
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        for entry in fs::read_dir(dir)?.map_while(Result::ok) {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
                fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    Ok(())
}

/// Writes a new cache file, mode 0600 whatever the umask.
fn private_write(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        // An older file of this name (a crashed write) kept its mode.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)
}

/// The epoch ticker: every [`EPOCH_TICK`], advances the epoch of every
/// engine (which makes running calls check their deadline) and sets the
/// tick counter to the ticks elapsed since it started. The counter follows
/// wall time even when the thread wakes late (a loaded machine): a deadline
/// is then not stretched by the ticker's lateness.
fn tick(stop: &AtomicBool, ticking: &Mutex<Vec<Engine>>, ticks: &Ticks) {
    let mut done: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let next = ticks.instant_of(done.saturating_add(1));
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        // Every tick due by now (more than one when this thread woke late).
        done = ticks.due().max(done + 1);
        ticks.set(done);
        for engine in ticking.lock().iter() {
            engine.increment_epoch();
        }
    }
}

/// A plugin called a WASI function: it has none. A Rust std guest does this
/// while panicking (to print the message), so it counts as a trap.
#[derive(Debug)]
pub(crate) struct WasiCalled(pub(crate) String);

impl std::fmt::Display for WasiCalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "called {}, which plugins are not given (a Rust guest does this when it panics)",
            self.0
        )
    }
}

impl std::error::Error for WasiCalled {}

/// Defines `item` (and, for an instance, everything in it) as functions that
/// trap when called: plugins get no filesystem, network, environment or
/// clock access except through the host capabilities.
fn stub(
    linker: &mut LinkerInstance<'_, HostState>,
    name: &str,
    item: ComponentItem,
    parent: Option<&str>,
    engine: &Engine,
) -> wasmtime::Result<()> {
    match item {
        ComponentItem::ComponentFunc(_) => {
            let qualified = match parent {
                Some(p) => format!("{p}#{name}"),
                None => name.to_owned(),
            };
            linker.func_new(name, move |_, _, _, _| {
                Err(wasmtime::Error::new(WasiCalled(qualified.clone())))
            })?;
        }
        ComponentItem::ComponentInstance(instance) => {
            let mut inner = linker.instance(name)?;
            for (export, item) in instance.exports(engine) {
                stub(&mut inner, export, item.ty, Some(name), engine)?;
            }
        }
        ComponentItem::Resource(_) => {
            linker.resource(name, ResourceType::host::<()>(), |_, _| Ok(()))?;
        }
        _ => {}
    }
    Ok(())
}

/// `ns:pkg/iface@major.minor.patch` → (`ns:pkg`, `iface`, major, minor).
fn parse_import(name: &str) -> Option<(&str, &str, u32, u32)> {
    let (path, version) = name.split_once('@')?;
    let (package, iface) = path.split_once('/')?;
    let mut v = version.split('.');
    let major = v.next()?.parse().ok()?;
    let minor = v.next()?.parse().ok()?;
    Some((package, iface, major, minor))
}

/// Why `wasm` is plainly not a component, from its header: not WebAssembly
/// at all, or a core module (built for another target). `None`: it may be
/// one (wasmtime decides).
fn not_a_component(wasm: &[u8]) -> Option<String> {
    const MAGIC: &[u8] = b"\0asm";
    const CORE_MODULE: [u8; 4] = [1, 0, 0, 0];
    if wasm.len() < 8 || &wasm[..4] != MAGIC {
        return Some(format!(
            "the file is not WebAssembly ({} bytes without the \\0asm header); give the .wasm \
             component a build wrote, e.g. target/wasm32-wasip2/release/NAME.wasm",
            wasm.len()
        ));
    }
    (wasm[4..8] == CORE_MODULE).then(|| {
        "the file is a core WebAssembly module, not a component: build the plugin for \
         wasm32-wasip2 (cargo build --release --target wasm32-wasip2), or wrap the module \
         with `wasm-tools component new`"
            .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_names() {
        assert_eq!(
            parse_import("switchyard:participant/kv@1.1.0"),
            Some(("switchyard:participant", "kv", 1, 1))
        );
        assert_eq!(parse_import("switchyard:participant/kv"), None);
        assert_eq!(parse_import("x:y/z@1"), None);
    }
}
