//! Wiring: from a validated [`Config`] to a running switch.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use switchyard_engine::steps::{Close, LogStep};
use switchyard_engine::{Pipeline, PipelineBuilder, Step};
use switchyard_iso8583::Spec;
use switchyard_net::{
    Endpoint, EndpointOptions, Framing, Listener, ListenerOptions, Observer, QueryEndpoint,
    SendResponse, Simulator, SimulatorOptions,
};
use switchyard_runtime::{
    Registry, RegistryBuilder, Role, Runtime, RuntimeOptions, Settings, WasmFormatter,
    WasmParticipant,
};
use switchyard_store::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::Admin;
use crate::config::{Config, settings};

pub use switchyard_net::{Completed, Observer as TransactionObserver};

/// How to start a switch beyond what its config says.
#[derive(Clone, Default)]
pub struct StartOptions {
    /// Bind every listener and in-process simulator to 127.0.0.1:0 (tests,
    /// the demo): the `PORT` variable keeps the configured port.
    pub ephemeral_ports: bool,
    /// Told of every completed transaction.
    pub observer: Option<Observer>,
}

/// A running switch.
pub struct Switch {
    listeners: Vec<(String, u16, SocketAddr)>,
    simulators: Vec<(String, SocketAddr)>,
    registry: Arc<Registry>,
    store: Arc<Store>,
    admin: Option<Admin>,
    shutdown: CancellationToken,
    simulators_shutdown: CancellationToken,
    tracker: TaskTracker,
    grace: Duration,
    _runtime: Runtime,
}

impl Switch {
    /// Loads the plugins, builds pipelines and endpoints, binds the listeners
    /// and starts serving.
    pub async fn start(config: Config, options: StartOptions) -> anyhow::Result<Switch> {
        let data_dir = config.resolve(&config.switch.data_dir);
        let store = Arc::new(
            Store::open(
                &data_dir.join("switchyard.db"),
                &data_dir.join("keys").join("store.key"),
            )
            .with_context(|| format!("opening the store in {}", data_dir.display()))?,
        );
        let cache_dir = data_dir.join("cache");
        let runtime = Runtime::new(RuntimeOptions {
            cache_dir: Some(cache_dir.clone()),
            kv: Some(store.clone()),
            counters: Some(Arc::new(switchyard_store::Counters::new(
                store.secret().clone(),
            ))),
            ..RuntimeOptions::default()
        })
        .with_context(|| format!("starting the wasm runtime (cache {})", cache_dir.display()))?;

        let registry = {
            let runtime = runtime.clone();
            let config = config.clone();
            let store = store.clone();
            tokio::task::spawn_blocking(move || load_plugins(runtime, store, &config))
                .await
                .context("plugin loading panicked")??
        };

        let shutdown = CancellationToken::new();
        // Simulators stop after the listeners drained, so that in-flight
        // transactions still get their endpoint's reply.
        let simulators_shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();

        // Endpoints (and their simulators) before pipelines: query steps need them.
        let mut endpoints = BTreeMap::new();
        let mut simulators = Vec::new();
        for (name, e) in &config.endpoints {
            let framing = Framing::parse(&e.framing).expect("validated");
            let mut address = e.address.clone();
            if e.simulator {
                let bind: SocketAddr = if options.ephemeral_ports {
                    SocketAddr::from(([127, 0, 0, 1], 0))
                } else {
                    e.address.parse().expect("validated")
                };
                let sim = Simulator::bind(SimulatorOptions {
                    bind,
                    framing,
                    tpdu: true,
                    spec: Arc::new(Spec::iso87_ascii()),
                    max_frame: e.max_frame,
                    slow_delay: Duration::from_millis(250),
                })
                .await
                .with_context(|| format!("endpoints.{name}: binding the simulator on {bind}"))?;
                let actual = sim.local_addr()?;
                address = actual.to_string();
                simulators.push((name.clone(), actual));
                tokio::spawn(sim.serve(simulators_shutdown.clone()));
            }
            let slot = registry.slot(&e.formatter).expect("loaded");
            let formatter = WasmFormatter::new(
                registry.clone(),
                slot,
                Settings(settings(&[
                    &config.plugins[&e.formatter].config,
                    &e.formatter_config,
                ])),
            )
            .with_context(|| format!("endpoints.{name}.formatter"))?;
            let endpoint = Endpoint::new(
                EndpointOptions {
                    name: name.as_str().into(),
                    address,
                    timeout: Duration::from_millis(e.timeout_ms),
                    framing,
                    max_frame: e.max_frame,
                },
                Arc::new(formatter),
            );
            endpoints.insert(name.clone(), Arc::new(endpoint));
        }

        // Participants, shared by every pipeline.
        let mut steps: Vec<(String, Step)> = Vec::new();
        for (name, p) in &config.participants {
            let step = match (&p.plugin, p.step.as_deref()) {
                (Some(plugin_name), _) => {
                    let slot = registry.slot(plugin_name).expect("loaded");
                    let live = registry.current();
                    let role = if live.plugin(slot).check_role(Role::Selector).is_ok() {
                        Role::Selector
                    } else {
                        Role::Participant
                    };
                    let s = Settings(settings(&[&config.plugins[plugin_name].config, &p.config]));
                    let participant = WasmParticipant::new(registry.clone(), slot, role, s)
                        .with_context(|| format!("participants.{name}.plugin"))?;
                    Step::Sync(Arc::new(participant))
                }
                (None, Some("close")) => Step::Sync(Arc::new(Close)),
                (None, Some("send")) => Step::Sync(Arc::new(SendResponse)),
                (None, Some("log")) => Step::Sync(Arc::new(LogStep)),
                (None, Some("query-endpoint")) => {
                    let endpoint = p.endpoint.as_ref().expect("validated");
                    Step::Async(Arc::new(QueryEndpoint::new(endpoints[endpoint].clone())))
                }
                _ => bail!("participants.{name}: neither a plugin nor a known step"),
            };
            steps.push((name.clone(), step));
        }

        let mut pipelines = BTreeMap::new();
        for (name, p) in &config.pipelines {
            let mut builder = PipelineBuilder::new(name.as_str());
            builder.on_begin(registry.pin_hook());
            for (pname, step) in &steps {
                builder
                    .participant(pname, step.clone())
                    .map_err(|e| anyhow!("pipelines.{name}: {e}"))?;
            }
            builder.main(&p.participants);
            for (g, members) in &p.groups {
                builder.group(g, members);
            }
            let pipeline: Pipeline = builder.build().map_err(|errs| {
                anyhow!(
                    "pipelines.{name}: {}",
                    errs.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })?;
            pipelines.insert(name.clone(), Arc::new(pipeline));
        }

        // The admin API and the deploy directory ([admin]).
        let admin = if config.admin.enabled {
            Some(Admin::start(registry.clone(), &config, options.ephemeral_ports).await?)
        } else {
            None
        };

        let mut bound = Vec::new();
        for (i, l) in config.listeners.iter().enumerate() {
            let bind = if options.ephemeral_ports {
                SocketAddr::from(([127, 0, 0, 1], 0))
            } else {
                Config::listener_bind(l).map_err(|e| anyhow!("listener[{i}].bind: {e}"))?
            };
            let spec = config.listener_spec(l).expect("validated");
            let listener = Listener::bind(ListenerOptions {
                name: l.name.as_str().into(),
                tenant: l.tenant.as_str().into(),
                port: l.port,
                bind,
                framing: Framing::parse(&l.framing).expect("validated"),
                max_frame: l.max_frame,
                idle_timeout: Duration::from_millis(l.idle_timeout_ms),
                max_in_flight: l.max_in_flight,
                max_connections: l.max_connections,
                spec: Arc::new(spec),
                pipeline: pipelines[&l.pipeline].clone(),
                observer: options.observer.clone(),
            })
            .await
            .with_context(|| format!("listener {} (listener[{i}]): binding {bind}", l.name))?;
            bound.push(listener);
        }
        let mut listeners = Vec::new();
        for (listener, l) in bound.into_iter().zip(&config.listeners) {
            listeners.push((l.name.clone(), l.port, listener.local_addr()?));
            tracker.spawn(listener.serve(shutdown.clone(), tracker.clone()));
        }

        Ok(Switch {
            listeners,
            simulators,
            registry,
            store,
            admin,
            shutdown,
            simulators_shutdown,
            tracker,
            grace: Duration::from_millis(config.switch.shutdown_grace_ms),
            _runtime: runtime,
        })
    }

    /// Listeners as (name, configured port, bound address).
    pub fn listeners(&self) -> &[(String, u16, SocketAddr)] {
        &self.listeners
    }

    /// The bound address of the listener configured with `port`.
    pub fn addr_of_port(&self, port: u16) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|(_, p, _)| *p == port)
            .map(|(_, _, a)| *a)
    }

    /// In-process simulators as (endpoint name, bound address).
    pub fn simulators(&self) -> &[(String, SocketAddr)] {
        &self.simulators
    }

    /// The plugins, their live versions, swap and rollback.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The admin API and deploy directory, unless `[admin] enabled = false`.
    pub fn admin(&self) -> Option<&Admin> {
        self.admin.as_ref()
    }

    /// The bound address of the admin API.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(Admin::addr)
    }

    /// The switch's database.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// A token that stops the switch when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, lets in-flight transactions finish (up to the
    /// configured grace period) and returns.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        if let Some(admin) = &self.admin {
            admin.stop().await;
        }
        self.shutdown.cancel();
        self.tracker.close();
        let drained = tokio::time::timeout(self.grace, self.tracker.wait()).await;
        self.simulators_shutdown.cancel();
        if drained.is_err() {
            bail!(
                "in-flight transactions did not finish within {} ms",
                self.grace.as_millis()
            );
        }
        Ok(())
    }
}

fn load_plugins(
    runtime: Runtime,
    store: Arc<Store>,
    config: &Config,
) -> anyhow::Result<Arc<Registry>> {
    let mut builder = RegistryBuilder::new(runtime, Some(store));
    let mut problems = Vec::new();
    for (name, p) in &config.plugins {
        let loaded = match p.file.strip_prefix("builtin:") {
            Some(b) => {
                let bytes = switchyard_bundled_plugins::get(b).expect("validated");
                builder.load(name, bytes, p.options())
            }
            None => {
                let path = config.resolve(Path::new(&p.file));
                match std::fs::read(&path) {
                    Ok(bytes) => builder.load(name, &bytes, p.options()),
                    Err(e) => {
                        problems.push(format!(
                            "plugins.{name}: cannot read {}: {e}",
                            path.display()
                        ));
                        continue;
                    }
                }
            }
        };
        match loaded {
            Ok(_) => tracing::info!(plugin = %name, file = %p.file, "plugin loaded"),
            Err(e) => problems.push(format!("plugins.{name}: {e}")),
        }
    }
    if !problems.is_empty() {
        bail!("plugins failed to load:\n  - {}", problems.join("\n  - "));
    }
    Ok(builder.build())
}
