//! Health checks in tests: polling `/readyz` until it says what is expected, workers with their
//! health server on a free port, and private Redis and NATS servers a test may kill and restart
//! without disturbing the shared ones.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::process::free_port;
use crate::{ServiceProcess, TestEnv};

/// How long any state change may take to show in `/readyz`.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A server process of this test only; killed when dropped.
pub struct PrivateServer {
    child: Option<Child>,
    port: u16,
    /// A Redis Cluster node's cluster bus port.
    cluster_bus: Option<u16>,
    command: Vec<String>,
    store: Option<PathBuf>,
}

impl PrivateServer {
    /// A Redis with no persistence on a free port.
    pub fn redis() -> Self {
        let port = free_port();
        let args = [
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .map(str::to_owned);
        Self::start(port, "redis-server".into(), &args, None)
    }

    /// A NATS server with JetStream on a free port, storing in a fresh directory.
    pub fn nats() -> Self {
        let port = free_port();
        let store = std::env::temp_dir().join(format!("nats-{}", uuid::Uuid::new_v4()));
        let binary = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.local/bin/nats-server");
        let args = [
            "-js".to_owned(),
            "-a".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            port.to_string(),
            "-sd".to_owned(),
            store.display().to_string(),
        ];
        Self::start(port, binary.display().to_string(), &args, Some(store))
    }

    fn start(port: u16, program: String, args: &[String], store: Option<PathBuf>) -> Self {
        let mut command = vec![program];
        command.extend_from_slice(args);
        let mut server = Self {
            child: None,
            port,
            cluster_bus: None,
            command,
            store,
        };
        server.restart();
        server
    }

    /// Starts the server (again, on the same port and store) and waits until it accepts
    /// connections.
    pub fn restart(&mut self) {
        let child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.command[0]));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} never listened on {}",
                self.command[0],
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server at once, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `redis://` URL of this server.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A Redis Cluster node with no persistence on a free port, its cluster state under `dir`;
    /// it serves keys once [`crate::redis_cluster::RedisCluster`] gave it slots. Its cluster bus
    /// gets a free port of its own: Redis' default, the port + 10,000, may lie in the kernel's
    /// ephemeral range, where an outgoing connection can hold it and the node exits.
    pub fn redis_cluster_node(dir: &std::path::Path) -> Self {
        let port = free_port();
        let bus = loop {
            let bus = free_port();
            if bus != port {
                break bus;
            }
        };
        let args = [
            "--port".to_owned(),
            port.to_string(),
            "--cluster-port".to_owned(),
            bus.to_string(),
            "--save".to_owned(),
            String::new(),
            "--appendonly".to_owned(),
            "no".to_owned(),
            "--cluster-enabled".to_owned(),
            "yes".to_owned(),
            "--cluster-node-timeout".to_owned(),
            "2000".to_owned(),
            "--cluster-config-file".to_owned(),
            dir.join(format!("nodes-{port}.conf")).display().to_string(),
            "--dir".to_owned(),
            dir.display().to_string(),
        ];
        let mut node = Self::start(port, "redis-server".into(), &args, None);
        node.cluster_bus = Some(bus);
        node
    }

    /// The cluster bus port of a Redis Cluster node, `None` for other servers.
    pub fn cluster_bus_port(&self) -> Option<u16> {
        self.cluster_bus
    }

    /// The port this server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `nats://` URL of this server.
    pub fn nats_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateServer {
    /// Kills the server and removes its store.
    fn drop(&mut self) {
        self.kill();
        if let Some(store) = &self.store {
            let _ = std::fs::remove_dir_all(store);
        }
    }
}

/// `GET url`: the status and JSON body, or `None` when nothing answers.
pub async fn get(url: &str) -> Option<(u16, Value)> {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Some((status, body))
}

/// Polls `url` for up to [`DEADLINE`] until `wanted` holds for its answer; returns that body and
/// how long it took.
pub async fn wait_until(
    url: &str,
    what: &str,
    wanted: impl Fn(u16, &Value) -> bool,
) -> (Value, Duration) {
    wait_until_within(url, what, DEADLINE, wanted).await
}

/// Polls `url` for up to `within` until `wanted` holds for its answer; returns that body and how
/// long it took.
pub async fn wait_until_within(
    url: &str,
    what: &str,
    within: Duration,
    wanted: impl Fn(u16, &Value) -> bool,
) -> (Value, Duration) {
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < within {
        if let Some((status, body)) = get(url).await {
            if wanted(status, &body) {
                return (body, started.elapsed());
            }
            last = Some((status, body));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url}: not {what} within {within:?}; last answer {last:?}");
}

/// `/readyz` answered 200 with `"status":"ready"`.
pub fn ready(status: u16, body: &Value) -> bool {
    status == 200 && body["status"] == "ready"
}

/// `/readyz` answered 503, `"status":"unavailable"`, and `check` is down.
pub fn down(check: &'static str) -> impl Fn(u16, &Value) -> bool {
    move |status, body| {
        status == 503
            && body["status"] == "unavailable"
            && body["checks"][check]
                .as_str()
                .is_some_and(|state| state.starts_with("down: "))
    }
}

/// A worker binary with its health server on a free port; returns it and its base URL.
pub fn worker(name: &str, env: &TestEnv, extra: &[(&str, &str)]) -> (ServiceProcess, String) {
    let port = free_port();
    let key = format!("CHAT_{}__HEALTH_LISTEN", name.to_uppercase());
    let listen = format!("127.0.0.1:{port}");
    let mut vars: Vec<(&str, &str)> = extra.to_vec();
    vars.push((&key, &listen));
    let process = ServiceProcess::start(name, env, &vars);
    (process, format!("http://{listen}"))
}
