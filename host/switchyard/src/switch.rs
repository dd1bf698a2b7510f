//! Wiring: from a validated [`Config`], resolved into its [`Plan`], to a
//! running switch (or, for `switchyard check`, to loaded plugins and built
//! pipelines that serve nothing: [`check`]), one function
//! per part: the data directory and its store (recovery first), the
//! runtime and its plugins, endpoints (and their simulators), participants
//! and pipelines, the admin API, listeners, the store-and-forward
//! forwarders, and the background work (retention, re-encryption).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use switchyard_engine::ports::{LOCAL_ENDPOINT, SafQueue, SwapHistory, Tranlog};
use switchyard_engine::saf::{Deliver, ListenerPipeline, LocalReversals};
use switchyard_engine::steps::{Close, LogStep};
use switchyard_engine::{Lifecycle, Pipeline, PipelineBuilder, Step};
use switchyard_iso8583::Spec;
use switchyard_net::{
    Endpoint, EndpointDelivery, EndpointOptions, Forwarder, ForwarderOptions, Framing, Links,
    Listener, ListenerOptions, ListenerStats, Observer, QueryEndpoint, SendResponse, Simulator,
    SimulatorOptions,
};
use switchyard_runtime::{
    Registry, RegistryBuilder, Role, Runtime, RuntimeOptions, Settings, WasmFormatter,
    WasmParticipant,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::Admin;
use crate::config::Config;
use crate::config::SimulatorFormat;
use crate::operate::Ops;
use crate::plan::{EndpointPlan, HostStep, Plan, PluginSource, SimulatorPlan, Step as PlanStep};
use crate::state::{DataDirLock, Store, open_store, ops_of};
use switchyard_net::Backoff;
use switchyard_net::mainframe::{MainframeOptions, MainframeSimulator};

pub use switchyard_net::{Completed, Observer as TransactionObserver};

/// How often tranlog rows past their retention are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// Rows re-encrypted per step of a key rotation.
const REENCRYPT_BATCH: usize = 500;

/// How to start a switch beyond what its config says.
#[derive(Clone, Default)]
pub struct StartOptions {
    /// Bind every listener and in-process simulator to 127.0.0.1:0 (tests,
    /// the demo): the `PORT` variable keeps the configured port.
    pub ephemeral_ports: bool,
    /// Told of every completed transaction.
    pub observer: Option<Observer>,
    /// Run requests straight through their pipelines, unrecorded: no
    /// tranlog, no repeats, no reversals. For the side-by-side benchmark
    /// of the tranlog's cost only; never a way to run a switch.
    #[doc(hidden)]
    pub without_tranlog: bool,
    /// Plugin steps replaced by native code: the bench harness that runs
    /// the real switch with the native twins of the bundled plugins, to
    /// measure what the sandbox costs end to end. Never a way to run a
    /// switch (a native step has no sandbox, no deadline, no hot swap).
    #[doc(hidden)]
    pub native_steps: Option<NativeSteps>,
}

/// Makes the native twin of a bundled plugin's step: called with the
/// bundled plugin's name (`builtin:NAME`) and the step's settings; `None`
/// keeps the WASM plugin.
#[doc(hidden)]
pub type NativeSteps = Arc<
    dyn Fn(&str, &[(String, String)]) -> Option<Arc<dyn switchyard_engine::Participant>>
        + Send
        + Sync,
>;

/// The switch's tasks, by the order they stop in.
#[derive(Default)]
struct Tasks {
    /// Listeners, connections, transactions.
    serving: (CancellationToken, TaskTracker),
    /// Store-and-forward forwarders.
    forwarding: (CancellationToken, TaskTracker),
    /// Retention and re-encryption.
    background: (CancellationToken, TaskTracker),
    /// Endpoint links.
    links: Links,
    /// In-process endpoint simulators: last, so in-flight transactions and
    /// forwarders still get their endpoint's reply.
    simulators: (CancellationToken, TaskTracker),
}

/// A running switch.
pub struct Switch {
    listeners: Vec<(String, u16, SocketAddr)>,
    simulators: Vec<(String, SocketAddr)>,
    registry: Arc<Registry>,
    store: Store,
    ops: Option<Ops>,
    /// Cancelled when another node took this node's id over.
    fenced: CancellationToken,
    admin: Option<Admin>,
    tasks: Tasks,
    /// Every listener's and endpoint's TLS (SIGHUP, `POST /tls/reload`).
    tls: crate::tls_config::TlsReloader,
    grace: Duration,
    _runtime: Runtime,
    _lock: DataDirLock,
}

/// The endpoints of a switch and the wakers of their forwarders.
struct Endpoints {
    by_name: BTreeMap<String, Arc<Endpoint>>,
    simulators: Vec<(String, SocketAddr)>,
}

impl Switch {
    /// Opens the data directory and its store (recovering what a crash
    /// left), loads the plugins, builds pipelines and endpoints, binds the
    /// listeners and starts serving and forwarding.
    pub async fn start(config: Config, options: StartOptions) -> anyhow::Result<Switch> {
        let plan = Plan::from_config(&config).map_err(|e| anyhow!("{e}"))?;
        let lock = DataDirLock::acquire(&plan.data_dir)?;
        let store = open_store(&config)?;
        recover(&store).await?;
        let runtime = start_runtime(&plan, &store)?;
        let history: Arc<dyn SwapHistory> = store.history.clone();
        let registry = load_checked_plugins(runtime.clone(), Some(history), &plan).await?;
        let tasks = Tasks::default();
        if let Some(pg) = store.postgres() {
            let last = crate::follow::catch_up(pg, &registry)
                .await
                .context("catching up with the plugin swaps of the other nodes")?;
            let (token, tracker) = &tasks.background;
            crate::follow::start(pg.clone(), registry.clone(), last, token.clone(), tracker);
        }
        let wakers = forwarder_wakers(&plan);
        let lifecycle = (!options.without_tranlog).then(|| {
            let owed =
                crate::owed::hook(store.tranlog.clone(), waker_of(&wakers), &tasks.background);
            Arc::new(
                Lifecycle::new(store.tranlog.clone(), waker_of(&wakers)).with_owed_reversals(owed),
            )
        });
        let tls = crate::tls_config::TlsReloader::load(&plan, options.ephemeral_ports)?;
        let endpoints = start_endpoints(&plan, &options, &registry, &store, &tasks, &tls).await?;
        let query = |endpoint: &str| {
            let e = endpoints.by_name.get(endpoint)?.clone();
            Some(Step::Async(Arc::new(QueryEndpoint::new(
                e,
                lifecycle.clone(),
            ))))
        };
        let steps = build_steps(&plan, &registry, &query, options.native_steps.as_ref())?;
        let pipelines = build_pipelines(&plan, &registry, &steps)?;
        let ops = lifecycle.is_some().then(|| Ops {
            wake: Some(waker_of(&wakers)),
            ..ops_of(&store)
        });
        let metrics = Arc::new(switchyard_metrics::Metrics::new());
        for (name, e) in &endpoints.by_name {
            e.attach_metrics(metrics.endpoint(name));
        }
        let stats: Vec<(String, Arc<ListenerStats>)> = plan
            .listeners
            .iter()
            .map(|l| {
                let counters = ListenerStats::with_metrics(metrics.listener(&l.name));
                (l.name.clone(), Arc::new(counters))
            })
            .collect();
        let admin = match &plan.admin {
            Some(admin) => {
                let parts = switchyard_admin::Parts {
                    registry: registry.clone(),
                    ops: ops.clone(),
                    endpoints: endpoints.by_name.values().cloned().collect(),
                    listeners: stats.clone(),
                    tls_reload: tls_reload(&tls),
                    metrics: metrics.clone(),
                    db: crate::state::operator_db(&config, &store)?,
                };
                Some(Admin::start(admin_plan(admin, options.ephemeral_ports), parts).await?)
            }
            None => None,
        };
        let serving = Serving {
            pipelines: &pipelines,
            lifecycle: lifecycle.as_ref(),
            tls: &tls,
            stats: &stats,
        };
        let listeners = start_listeners(&plan, &options, serving, &tasks).await?;
        if lifecycle.is_some() {
            start_forwarders(
                &plan, &store, &endpoints, &pipelines, &wakers, &tasks, &metrics,
            );
            start_background(&plan, &store, &tasks);
        }
        let fenced = CancellationToken::new();
        if let Some(pg) = store.postgres() {
            start_heartbeat(pg, waker_of(&wakers), fenced.clone(), &tasks);
        }
        Ok(Switch {
            listeners,
            simulators: endpoints.simulators,
            registry,
            store,
            ops,
            fenced,
            admin,
            tasks,
            tls,
            grace: plan.shutdown_grace,
            _runtime: runtime,
            _lock: lock,
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

    /// Every listener's and endpoint's TLS, to reload.
    pub fn tls(&self) -> &crate::tls_config::TlsReloader {
        &self.tls
    }

    /// The bound address of the admin API.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(Admin::addr)
    }

    /// The switch's database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Cancelled when another node took this node's id over (PostgreSQL:
    /// it stalled past its lease); the switch must then stop.
    pub fn fenced(&self) -> CancellationToken {
        self.fenced.clone()
    }

    /// The operator tools (tranlog, store-and-forward queue, keys), unless
    /// it runs without a tranlog.
    pub fn ops(&self) -> Option<&Ops> {
        self.ops.as_ref()
    }

    /// A token that stops the switch when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.tasks.serving.0.clone()
    }

    /// Stops accepting, lets in-flight transactions finish (up to the
    /// configured grace period), lets the forwarders finish the attempts
    /// they have in flight (the rest waits in the queue for the next start),
    /// then closes the store.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        if let Some(admin) = &self.admin {
            admin.stop().await;
        }
        let drained = stop(&self.tasks.serving, self.grace).await;
        stop(&self.tasks.forwarding, self.grace).await;
        stop(&self.tasks.background, self.grace).await;
        self.tasks.links.shutdown.cancel();
        self.tasks.links.tasks.close();
        let _ = tokio::time::timeout(self.grace, self.tasks.links.tasks.wait()).await;
        stop(&self.tasks.simulators, self.grace).await;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.close())
            .await
            .context("closing the store panicked")?;
        if !drained {
            bail!(
                "in-flight transactions did not finish within {} ms",
                self.grace.as_millis()
            );
        }
        Ok(())
    }
}

/// `switchyard check`: loads every plugin of `plan` (compiled in memory: no
/// cache is written), has them check their settings and a selector's
/// targets, loads the TLS certificates and keys, builds the endpoints'
/// formatters, the participants and the pipelines. Binds nothing, connects nowhere, opens no store and writes
/// nothing. The loaded plugins, for a report.
pub async fn check(plan: &Plan) -> anyhow::Result<Arc<Registry>> {
    let runtime = Runtime::new(RuntimeOptions::default()).context("starting the wasm runtime")?;
    let registry = load_checked_plugins(runtime, None, plan).await?;
    // Certificates and keys are read (and proven to load), nothing more.
    crate::tls_config::TlsReloader::load(plan, false)?;
    for (name, ep) in &plan.endpoints {
        endpoint_formatter(&registry, name, ep)?;
    }
    // A query-endpoint participant stands in as a log step: no link is made.
    let steps = build_steps(
        plan,
        &registry,
        &|_| Some(Step::Sync(Arc::new(LogStep))),
        None,
    )?;
    build_pipelines(plan, &registry, &steps)?;
    Ok(registry)
}

/// Cancels a group of tasks and waits for them, at most `grace`; whether
/// they all finished.
async fn stop((token, tracker): &(CancellationToken, TaskTracker), grace: Duration) -> bool {
    token.cancel();
    tracker.close();
    tokio::time::timeout(grace, tracker.wait()).await.is_ok()
}

/// Queues the reversals a crash left owed and releases the leases it left.
async fn recover(store: &Store) -> anyhow::Result<()> {
    let r = store
        .tranlog
        .recover()
        .await
        .context("recovering the tranlog after the last stop")?;
    if r.reversals_queued > 0 || r.interrupted > 0 {
        tracing::warn!(
            reversals_queued = r.reversals_queued,
            interrupted = r.interrupted,
            leases_released = r.leases_released,
            "recovered after an unclean stop: transactions possibly sent and not answered are reversed"
        );
    }
    Ok(())
}

fn start_runtime(plan: &Plan, store: &Store) -> anyhow::Result<Runtime> {
    let cache_dir = plan.cache_dir.clone();
    Runtime::new(RuntimeOptions {
        cache_dir: Some(cache_dir.clone()),
        kv: Some(store.kv.clone()),
        // The store's counters: durable, exact under concurrency (across
        // nodes on PostgreSQL).
        counters: Some(store.counters.clone()),
        ..RuntimeOptions::default()
    })
    .with_context(|| format!("starting the wasm runtime (cache {})", cache_dir.display()))
}

/// One waker per endpoint forwarder (and the local one).
fn forwarder_wakers(plan: &Plan) -> HashMap<String, Arc<Notify>> {
    plan.endpoints
        .keys()
        .map(String::as_str)
        .chain([LOCAL_ENDPOINT])
        .map(|e| (e.to_owned(), Arc::new(Notify::new())))
        .collect()
}

/// The life cycle's waker: wakes an endpoint's forwarder, or all of them
/// for `""`.
fn waker_of(wakers: &HashMap<String, Arc<Notify>>) -> switchyard_engine::lifecycle::SafWaker {
    let wakers = wakers.clone();
    Arc::new(move |endpoint: &str| {
        for (name, w) in &wakers {
            if endpoint.is_empty() || name == endpoint {
                w.notify_one();
            }
        }
    })
}

async fn start_endpoints(
    plan: &Plan,
    options: &StartOptions,
    registry: &Arc<Registry>,
    store: &Store,
    tasks: &Tasks,
    tls: &crate::tls_config::TlsReloader,
) -> anyhow::Result<Endpoints> {
    let mut by_name = BTreeMap::new();
    let mut simulators = Vec::new();
    for (name, ep) in &plan.endpoints {
        let e = &ep.config;
        let framing = ep.framing;
        let mut address = ep.address.clone();
        if let Some(sim) = &ep.simulator {
            let actual = start_simulator(name, e, sim, framing, options, tasks).await?;
            address = actual.to_string();
            simulators.push((name.clone(), actual));
        }
        let formatter = endpoint_formatter(registry, name, ep)?;
        let tranlog: Arc<dyn Tranlog> = store.tranlog.clone();
        let endpoint = Endpoint::new(
            EndpointOptions {
                name: name.as_str().into(),
                address,
                timeout: ep.timeout,
                framing,
                max_frame: e.max_frame,
                tls: tls.for_endpoint(name),
                echo_interval: (e.echo_ms > 0).then(|| Duration::from_millis(e.echo_ms)),
                reconnect: Backoff {
                    initial: Duration::from_millis(e.reconnect_ms),
                    max: Duration::from_millis(e.reconnect_max_ms),
                },
            },
            Arc::new(formatter),
            (!options.without_tranlog).then_some(tranlog),
            tasks.links.clone(),
        );
        by_name.insert(name.clone(), Arc::new(endpoint));
    }
    Ok(Endpoints {
        by_name,
        simulators,
    })
}

/// The formatter of endpoint `name` (it must also export
/// `store-and-forward`, for reversals and advices).
fn endpoint_formatter(
    registry: &Arc<Registry>,
    name: &str,
    ep: &EndpointPlan,
) -> anyhow::Result<WasmFormatter> {
    let slot = registry.slot(&ep.formatter).ok_or_else(|| {
        anyhow!(
            "endpoints.{name}.formatter: plugin {} is not loaded",
            ep.formatter
        )
    })?;
    let settings = Settings(ep.formatter_settings.clone());
    WasmFormatter::for_endpoint(registry.clone(), slot, settings)
        .with_context(|| format!("endpoints.{name}.formatter"))
}

async fn start_simulator(
    name: &str,
    e: &crate::config::EndpointConfig,
    sim: &SimulatorPlan,
    framing: Framing,
    options: &StartOptions,
    tasks: &Tasks,
) -> anyhow::Result<SocketAddr> {
    let bind: SocketAddr = if options.ephemeral_ports {
        SocketAddr::from(([127, 0, 0, 1], 0))
    } else {
        sim.bind
    };
    let rules = Arc::new(switchyard_net::simulator::Rules::contract(
        Duration::from_millis(250),
    ));
    let bound = |e: std::io::Error| {
        anyhow!(e).context(format!("endpoints.{name}: binding the simulator on {bind}"))
    };
    let shutdown = tasks.simulators.0.clone();
    let actual = match sim.format {
        SimulatorFormat::Iso8583 => {
            let sim = Simulator::bind(SimulatorOptions {
                bind,
                framing,
                tpdu: true,
                spec: Arc::new(Spec::iso87_ascii()),
                max_frame: e.max_frame,
                rules,
            })
            .await
            .map_err(bound)?;
            let actual = sim.local_addr()?;
            tasks.simulators.1.spawn(sim.serve(shutdown));
            actual
        }
        SimulatorFormat::Mainframe => {
            let sim = MainframeSimulator::bind(MainframeOptions {
                bind,
                framing,
                max_frame: e.max_frame,
                rules,
            })
            .await
            .map_err(bound)?;
            let actual = sim.local_addr()?;
            tasks.simulators.1.spawn(sim.serve(shutdown));
            actual
        }
    };
    Ok(actual)
}

/// Participants, shared by every pipeline; `query` makes the step of a
/// `query-endpoint` participant from its endpoint's name; `native` (the
/// bench harness only) replaces bundled plugins by their native twins.
fn build_steps(
    plan: &Plan,
    registry: &Arc<Registry>,
    query: &dyn Fn(&str) -> Option<Step>,
    native: Option<&NativeSteps>,
) -> anyhow::Result<Vec<(String, Step)>> {
    let mut steps = Vec::new();
    for (name, p) in &plan.participants {
        if let Some(twin) = native_twin(plan, p, native) {
            steps.push((name.clone(), Step::Sync(twin)));
            continue;
        }
        let step = match p {
            PlanStep::Plugin { plugin, settings } => {
                let slot = registry.slot(plugin).ok_or_else(|| {
                    anyhow!("participants.{name}.plugin: plugin {plugin} is not loaded")
                })?;
                let live = registry.current();
                let role = if live.plugin(slot).check_role(Role::Selector).is_ok() {
                    Role::Selector
                } else {
                    Role::Participant
                };
                let s = Settings(settings.clone());
                let participant = WasmParticipant::new(registry.clone(), slot, role, s)
                    .with_context(|| format!("participants.{name}.plugin"))?;
                Step::Sync(Arc::new(participant))
            }
            PlanStep::Host(HostStep::Close) => Step::Sync(Arc::new(Close)),
            PlanStep::Host(HostStep::Send) => Step::Sync(Arc::new(SendResponse)),
            PlanStep::Host(HostStep::Log) => Step::Sync(Arc::new(LogStep)),
            PlanStep::Host(HostStep::QueryEndpoint { endpoint }) => {
                query(endpoint).ok_or_else(|| {
                    anyhow!("participants.{name}.endpoint: {endpoint} is not started")
                })?
            }
        };
        steps.push((name.clone(), step));
    }
    Ok(steps)
}

/// The native twin of a bundled plugin's step, when the harness has one.
fn native_twin(
    plan: &Plan,
    step: &PlanStep,
    native: Option<&NativeSteps>,
) -> Option<Arc<dyn switchyard_engine::Participant>> {
    let (native, PlanStep::Plugin { plugin, settings }) = (native?, step) else {
        return None;
    };
    match &plan.plugins.get(plugin)?.source {
        PluginSource::Bundled(bundled) => native(bundled, settings),
        PluginSource::File(_) => None,
    }
}

fn build_pipelines(
    plan: &Plan,
    registry: &Arc<Registry>,
    steps: &[(String, Step)],
) -> anyhow::Result<BTreeMap<String, Arc<Pipeline>>> {
    let mut pipelines = BTreeMap::new();
    for (name, p) in &plan.pipelines {
        let mut builder = PipelineBuilder::new(name.as_str());
        builder.on_begin(registry.pin_hook());
        for (pname, step) in steps {
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
    Ok(pipelines)
}

/// What the listeners serve with, beyond the plan.
struct Serving<'a> {
    pipelines: &'a BTreeMap<String, Arc<Pipeline>>,
    lifecycle: Option<&'a Arc<Lifecycle>>,
    tls: &'a crate::tls_config::TlsReloader,
    /// Each listener's write counters (the admin `/metrics`), in plan order.
    stats: &'a [(String, Arc<ListenerStats>)],
}

async fn start_listeners(
    plan: &Plan,
    options: &StartOptions,
    serving: Serving<'_>,
    tasks: &Tasks,
) -> anyhow::Result<Vec<(String, u16, SocketAddr)>> {
    let Serving {
        pipelines,
        lifecycle,
        tls,
        stats,
    } = serving;
    let mut bound = Vec::new();
    for (lp, (_, stats)) in plan.listeners.iter().zip(stats) {
        let (l, at) = (&lp.config, &lp.at);
        let bind = if options.ephemeral_ports {
            SocketAddr::from(([127, 0, 0, 1], 0))
        } else {
            lp.bind
        };
        let pipeline = pipelines
            .get(&lp.pipeline)
            .ok_or_else(|| anyhow!("{at}.pipeline: {} is not built", lp.pipeline))?;
        let listener = Listener::bind(ListenerOptions {
            name: l.name.as_str().into(),
            tenant: l.tenant.as_str().into(),
            port: l.port,
            bind,
            framing: lp.framing,
            max_frame: l.max_frame,
            idle_timeout: lp.idle_timeout,
            first_frame_timeout: Duration::from_millis(l.first_frame_ms),
            max_connections_per_peer: l.max_connections_per_peer,
            max_in_flight: l.max_in_flight,
            max_connections: l.max_connections,
            spec: lp.spec.clone(),
            pipeline: pipeline.clone(),
            observer: options.observer.clone(),
            lifecycle: lifecycle.cloned(),
            tls: tls.for_listener(&l.name),
            log: plan.log,
            stats: stats.clone(),
        })
        .await
        .with_context(|| format!("listener {} ({at}): binding {bind}", l.name))?;
        bound.push(listener);
    }
    let (token, tracker) = &tasks.serving;
    let mut listeners = Vec::new();
    for (listener, l) in bound.into_iter().zip(&plan.listeners) {
        listeners.push((l.name.clone(), l.port, listener.local_addr()?));
        tracker.spawn(listener.serve(token.clone(), tracker.clone()));
    }
    Ok(listeners)
}

/// One forwarder per endpoint, and one for local reversals.
fn start_forwarders(
    plan: &Plan,
    store: &Store,
    endpoints: &Endpoints,
    pipelines: &BTreeMap<String, Arc<Pipeline>>,
    wakers: &HashMap<String, Arc<Notify>>,
    tasks: &Tasks,
    metrics: &switchyard_metrics::Metrics,
) {
    let options = |endpoint: &str| ForwarderOptions {
        endpoint: endpoint.to_owned(),
        owner: plan.node_id.clone(),
        concurrency: plan.saf.concurrency,
        lease: plan.saf.lease,
        poll: Duration::from_secs(1),
    };
    let tranlog: Arc<dyn Tranlog> = store.tranlog.clone();
    let queue: Arc<dyn SafQueue> = store.saf.clone();
    let (token, tracker) = &tasks.forwarding;
    let waker = |name: &str| wakers.get(name).cloned().unwrap_or_default();
    for (name, endpoint) in &endpoints.by_name {
        let acks = plan
            .endpoints
            .get(name)
            .map(|e| e.ack_codes.clone())
            .unwrap_or_default();
        let deliver: Arc<dyn Deliver> = Arc::new(EndpointDelivery::new(
            endpoint.clone(),
            tranlog.clone(),
            acks,
        ));
        let f = Forwarder::new(queue.clone(), deliver, options(name), waker(name))
            .with_metrics(metrics.forwarder(name));
        tracker.spawn(f.run(token.clone()));
    }
    let listeners = plan
        .listeners
        .iter()
        .filter_map(|l| {
            let lp = ListenerPipeline {
                port: l.port,
                pipeline: pipelines.get(&l.pipeline)?.clone(),
            };
            Some((l.name.clone(), lp))
        })
        .collect();
    let local: Arc<dyn Deliver> = Arc::new(LocalReversals::new(tranlog, listeners));
    let f = Forwarder::new(queue, local, options(LOCAL_ENDPOINT), waker(LOCAL_ENDPOINT))
        .with_metrics(metrics.forwarder(LOCAL_ENDPOINT));
    tracker.spawn(f.run(token.clone()));
}

/// Retention (hourly purge of rows past `[tranlog] retention_days`) and
/// the re-encryption of rows under retired keys while traffic runs.
fn start_background(plan: &Plan, store: &Store, tasks: &Tasks) {
    let (token, tracker) = &tasks.background;
    let retention = plan.tranlog.retention;
    let (s, t) = (store.clone(), token.clone());
    tracker.spawn(async move {
        loop {
            purge(&s, retention).await;
            tokio::select! {
                _ = t.cancelled() => return,
                _ = tokio::time::sleep(PURGE_EVERY) => {}
            }
        }
    });
    let (s, t) = (store.clone(), token.clone());
    tracker.spawn(async move {
        loop {
            let pause = match s.keyring.reencrypt(REENCRYPT_BATCH).await {
                Ok(0) => Duration::from_secs(5),
                Ok(n) => {
                    tracing::debug!(rows = n, "re-encrypted under the active data key");
                    Duration::from_millis(50)
                }
                Err(e) => {
                    tracing::error!(error = %e, "re-encryption after a key rotation failed; retrying");
                    Duration::from_secs(30)
                }
            };
            tokio::select! {
                _ = t.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    });
}

/// PostgreSQL: this node's heartbeat (every lease / 5), the reload of keys
/// another node changed, and the takeover of dead nodes (their reversals
/// queued, the forwarders woken to send them). When another node took this
/// node's id over, `fenced` is cancelled and the switch stops.
fn start_heartbeat(
    store: &Arc<switchyard_store::PgStore>,
    wake: switchyard_engine::lifecycle::SafWaker,
    fenced: CancellationToken,
    tasks: &Tasks,
) {
    let (token, tracker) = &tasks.background;
    let (store, token) = (store.clone(), token.clone());
    tracker.spawn(async move {
        let every = store.heartbeat_every();
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            match store.beat().await {
                Ok(switchyard_store::Beat::Alive(taken)) => {
                    if taken.iter().any(|(_, r)| r.reversals_queued > 0) {
                        wake("");
                    }
                }
                Ok(switchyard_store::Beat::Fenced(why)) => {
                    tracing::error!(node = %store.node(), reason = %why,
                        "this node's id was taken over: stopping");
                    fenced.cancel();
                    return;
                }
                Err(e) => tracing::error!(node = %store.node(), error = %e,
                    "heartbeat failed (the database may be unreachable); retrying"),
            }
        }
    });
}

async fn purge(store: &Store, retention: Duration) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let cutoff = now - retention.as_millis() as i64;
    let mut total = 0;
    loop {
        match store.tranlog.purge(cutoff, 10_000).await {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => {
                tracing::error!(error = %e, "tranlog retention purge failed");
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!(rows = total, "tranlog rows past their retention purged");
    }
    purge_counters(store).await;
}

/// Velocity counter rows whose window has passed (adds purge some too; this
/// covers a switch that sees no adds), in bounded batches.
async fn purge_counters(store: &Store) {
    const BATCH: usize = 1024;
    let mut total = 0;
    for _ in 0..1000 {
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.purge_counters(BATCH)).await {
            Ok(Ok(n)) => {
                total += n;
                if n < BATCH as u64 {
                    break;
                }
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "purging expired velocity counters failed");
                break;
            }
            Err(e) => {
                tracing::error!(error = %e, "the counter purge panicked");
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!(rows = total, "expired velocity counter rows purged");
    }
}

/// Loads every plugin of `plan` and has them check the plan
/// ([`crate::plugin_settings`]): every problem at once, load failures
/// included.
async fn load_checked_plugins(
    runtime: Runtime,
    history: Option<Arc<dyn SwapHistory>>,
    plan: &Plan,
) -> anyhow::Result<Arc<Registry>> {
    let plan = plan.clone();
    tokio::task::spawn_blocking(move || {
        let (registry, mut problems) = load_plugins(runtime, history, &plan);
        problems.extend(crate::plugin_settings::problems(&plan, &registry));
        if !problems.is_empty() {
            bail!(
                "{} problem(s) found loading the plugins:\n  - {}",
                problems.len(),
                problems.join("\n  - ")
            );
        }
        Ok(registry)
    })
    .await
    .context("plugin loading panicked")?
}

/// The plugins that load, and a problem for each that does not.
fn load_plugins(
    runtime: Runtime,
    history: Option<Arc<dyn SwapHistory>>,
    plan: &Plan,
) -> (Arc<Registry>, Vec<String>) {
    let mut builder = RegistryBuilder::new(runtime, history);
    let mut problems = Vec::new();
    for (name, p) in &plan.plugins {
        let at = format!("plugins.{}.file", crate::plan::toml_key(name));
        let bytes = match &p.source {
            PluginSource::Bundled(b) => match switchyard_bundled_plugins::get(b) {
                Some(bytes) => std::borrow::Cow::Borrowed(bytes),
                None => {
                    problems.push(format!("{at}: no bundled plugin {b:?}"));
                    continue;
                }
            },
            PluginSource::File(path) => match std::fs::read(path) {
                Ok(bytes) => std::borrow::Cow::Owned(bytes),
                Err(e) => {
                    problems.push(format!("{at}: cannot read {}: {e}", path.display()));
                    continue;
                }
            },
        };
        match builder.load(name, &bytes, p.options.clone()) {
            Ok(_) => tracing::info!(plugin = %name, file = %p.source, "plugin loaded"),
            Err(e) => problems.push(format!("{at}: {e}")),
        }
    }
    (builder.build(), problems)
}

/// The admin plan, on a free loopback port when `ephemeral`.
fn admin_plan(plan: &switchyard_admin::AdminPlan, ephemeral: bool) -> switchyard_admin::AdminPlan {
    let mut plan = plan.clone();
    if ephemeral {
        plan.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    }
    plan
}

/// `POST /api/tls/reload` over every listener's and endpoint's TLS.
fn tls_reload(tls: &crate::tls_config::TlsReloader) -> switchyard_admin::state::TlsReload {
    let tls = tls.clone();
    Arc::new(move || {
        let reloaded = tls.reload();
        let ok = reloaded.iter().all(|r| r.ok);
        (ok, serde_json::to_value(&reloaded).unwrap_or_default())
    })
}
