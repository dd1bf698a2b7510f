//! Shared helpers of the end-to-end and interop tests: start the real switch
//! on free ports, talk to it over real TCP.

pub mod fake_endpoint;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard::client::{Connection, RequestSpec};
use switchyard::config::{Config, ParticipantConfig, PluginConfig};
use switchyard::switch::Completed;
use switchyard::{StartOptions, Switch};
use switchyard_iso8583::Message;

pub use switchyard::demo::{BAD_LUHN_PAN, TEST_PAN};

/// How long a test waits for one response (the endpoint timeout is 1 s).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The default config with its state in `data_dir` and the precompiled
/// plugin cache shared by every test ([`cache_dir`]).
pub fn default_config(data_dir: &Path) -> Config {
    let mut c = Config::default_config();
    c.switch.data_dir = data_dir.to_owned();
    c.switch.cache_dir = cache_dir();
    c
}

/// The precompiled plugin cache every test shares.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-state/cache")
}

/// The `test-tag-a` or `test-tag-b` component (`version` 'A' or 'B'): one
/// participant in two versions, appending `AA` or `BB` to DE44.
pub fn tag_wasm(version: char) -> PathBuf {
    switchyard_bundled_plugins::plugin_path(&format!("test-tag-{}", version.to_ascii_lowercase()))
}

/// The default config (state under `data_dir`) with plugin `tag` (version
/// A) as participants `tag-1` and `tag-2` before `by-mti`; the deploy
/// directory is `deploy` (or disabled). The hot-swap tests and bench use it.
pub fn tag_config(data_dir: &Path, deploy: Option<&Path>) -> Config {
    let mut c = default_config(data_dir);
    let plugin: PluginConfig =
        toml::from_str(&format!("file = {:?}", tag_wasm('A').display().to_string())).unwrap();
    c.plugins.insert("tag".into(), plugin);
    for name in ["tag-1", "tag-2"] {
        c.participants.insert(
            name.into(),
            ParticipantConfig {
                plugin: Some("tag".into()),
                step: None,
                endpoint: None,
                config: toml::Table::new(),
            },
        );
    }
    c.pipelines.get_mut("acquirer").unwrap().participants =
        ["validate", "tag-1", "tag-2", "by-mti"]
            .map(String::from)
            .to_vec();
    c.admin.deploy_dir = deploy.map(Path::to_owned).unwrap_or_default();
    c
}

/// Adds the `test-faulty` plugin as participant `faulty` in front of
/// `local-auth` on port 5001, misbehaving per `mode` when DE4 ends in 13.
pub fn with_faulty_plugin(mut c: Config, mode: &str) -> Config {
    let path = switchyard_bundled_plugins::plugin_path("test-faulty");
    let plugin: PluginConfig = toml::from_str(&format!(
        "file = {:?}\nmemory_mib = 16\ndeadline_ms = 50\nconfig = {{ mode = {:?}, trigger_suffix = \"13\" }}",
        path.display().to_string(),
        mode
    ))
    .unwrap();
    c.plugins.insert("test-faulty".into(), plugin);
    c.participants.insert(
        "faulty".into(),
        ParticipantConfig {
            plugin: Some("test-faulty".into()),
            step: None,
            endpoint: None,
            config: toml::Table::new(),
        },
    );
    let by_port = c.participants.get_mut("by-port").unwrap();
    by_port
        .config
        .insert("case 5001".into(), "faulty local-auth close send".into());
    c
}

/// Adds the `test-capabilities` plugin (counters and kv granted) as
/// participant `loyalty` in front of `local-auth` on port 5001: it answers
/// `n=<count>;p=<points>` in DE44, and gives the points back when the
/// transaction is reversed.
pub fn with_loyalty_plugin(mut c: Config) -> Config {
    let path = switchyard_bundled_plugins::plugin_path("test-capabilities");
    c.plugins.insert(
        "loyalty".into(),
        toml::from_str(&format!(
            "file = {:?}\ngrants = [\"transaction\", \"config\", \"log\", \"clock\", \"counters\", \"kv\"]",
            path.display().to_string()
        ))
        .unwrap(),
    );
    c.participants.insert(
        "loyalty".into(),
        toml::from_str("plugin = \"loyalty\"").unwrap(),
    );
    c.participants
        .get_mut("by-port")
        .unwrap()
        .config
        .insert("case 5001".into(), "loyalty local-auth close send".into());
    c
}

/// A switch running on free ports, with the traces of its transactions.
pub struct TestSwitch {
    pub switch: Switch,
    pub traces: Arc<Mutex<Vec<Completed>>>,
}

impl TestSwitch {
    /// Starts `config` on free ports.
    pub async fn start(config: Config) -> TestSwitch {
        let traces: Arc<Mutex<Vec<_>>> = Arc::default();
        let sink = traces.clone();
        let switch = Switch::start(
            config,
            StartOptions {
                ephemeral_ports: true,
                observer: Some(Arc::new(move |c| sink.lock().unwrap().push(c))),
                ..StartOptions::default()
            },
        )
        .await
        .expect("the switch starts");
        TestSwitch { switch, traces }
    }

    /// The address of the listener configured on `port`.
    pub fn addr(&self, port: u16) -> SocketAddr {
        self.switch.addr_of_port(port).expect("listener for port")
    }

    /// Opens a connection to the listener configured on `port`.
    pub async fn connect(&self, port: u16) -> Connection {
        Connection::connect(self.addr(port)).await.expect("connect")
    }

    /// Sends one request on a new connection and returns the response.
    pub async fn exchange(&self, port: u16, request: &RequestSpec) -> Message {
        let mut conn = self.connect(port).await;
        conn.exchange(&request.build().unwrap(), RESPONSE_TIMEOUT)
            .await
            .expect("a response")
    }
}

/// A fresh data directory for one switch (one switch per data directory:
/// it holds the directory's lock), removed at the next test run. Several
/// calls give several directories.
pub fn shared_data_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    static CLEAN: std::sync::Once = std::sync::Once::new();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-state");
    CLEAN.call_once(|| {
        // State of earlier runs (other processes) goes.
        let mine = format!("run-{}-", std::process::id());
        for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("run-") && !name.starts_with(&mine) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    });
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = root.join(format!("run-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
