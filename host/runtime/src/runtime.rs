//! The wasmtime engine, its epoch ticker, the linker and the precompiled
//! artifact cache.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

use crate::bindings;
use crate::error::LoadError;
use crate::host::HostState;
use crate::plugin::{Limits, Plugin};

/// How often the epoch advances: the resolution of per-call deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Settings of the runtime as a whole.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Where precompiled plugins are cached; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// Largest wasm stack of any call (bytes); deeper recursion traps.
    pub max_wasm_stack: usize,
}

impl Default for RuntimeOptions {
    fn default() -> RuntimeOptions {
        RuntimeOptions {
            cache_dir: None,
            max_wasm_stack: 512 * 1024,
        }
    }
}

/// The WebAssembly runtime every plugin of the switch shares.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<HostState>,
    cache_dir: Option<PathBuf>,
    compat: u64,
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
    /// Creates the engine, links the host capabilities and starts the epoch
    /// ticker thread (stopped when the last clone is dropped).
    pub fn new(options: RuntimeOptions) -> Result<Runtime, LoadError> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(options.max_wasm_stack)
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = Engine::new(&config).map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        bindings::Host_::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;

        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let compat = hasher.finish();

        if let Some(dir) = &options.cache_dir {
            fs::create_dir_all(dir).map_err(|e| LoadError::Cache {
                path: dir.clone(),
                reason: e.to_string(),
            })?;
        }

        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("wasm-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| LoadError::Engine(format!("epoch ticker: {e}")))?
        };

        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                linker,
                cache_dir: options.cache_dir,
                compat,
                stop,
                ticker: Some(ticker),
            }),
        })
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.inner.linker
    }

    /// Loads a plugin: compiles it (or takes it from the cache), checks its
    /// imports and exports and prepares instantiation. Call this off the
    /// transaction path: compiling takes tens of milliseconds.
    pub fn load(&self, name: &str, wasm: &[u8], limits: Limits) -> Result<Arc<Plugin>, LoadError> {
        let digest = hex::encode(Sha256::digest(wasm));
        let component = self.compile(name, &digest, wasm)?;
        Plugin::new(self, name, digest, component, limits).map(Arc::new)
    }

    /// Loads a plugin from a file.
    pub fn load_file(
        &self,
        name: &str,
        path: &Path,
        limits: Limits,
    ) -> Result<Arc<Plugin>, LoadError> {
        let wasm = fs::read(path).map_err(|e| LoadError::Read {
            plugin: name.into(),
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        self.load(name, &wasm, limits)
    }

    fn compile(&self, name: &str, digest: &str, wasm: &[u8]) -> Result<Component, LoadError> {
        let compile = || {
            Component::new(self.engine(), wasm).map_err(|e| LoadError::Compile {
                plugin: name.into(),
                reason: format!("{e:#}"),
            })
        };
        let Some(dir) = &self.inner.cache_dir else {
            return compile();
        };
        let path = dir.join(format!("{digest}-{:016x}.cwasm", self.inner.compat));
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
            let loaded = unsafe { Component::deserialize(self.engine(), &bytes) };
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
                let written = fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, &path));
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
