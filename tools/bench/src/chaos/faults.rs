//! The faults of a chaos run and how to find their victim: each kills (`kill -9`) or freezes
//! (`SIGSTOP`, later `SIGCONT`) one node of the local cluster through `scripts/cluster`, so the
//! run and a person at the shell use the same names, pid files and start commands.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::Value;
use tokio::process::Command;

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` the NATS server leading the stream.
    NatsKill,
    /// `kill -9` one Cassandra node.
    CassandraKill,
    /// `kill -9` one Redis master.
    RedisMasterKill,
    /// `kill -9` one edge: its clients move to another.
    EdgeKill,
    /// `kill -9` the active projector.
    ProjectorKill,
    /// `kill -9` the active receipts worker of partition 0.
    ReceiptsKill,
    /// `kill -9` one notifier.
    NotifierKill,
    /// SIGSTOP, then SIGCONT, the NATS server leading the stream.
    NatsFreeze,
    /// SIGSTOP, then SIGCONT, one Cassandra node.
    CassandraFreeze,
    /// SIGSTOP, then SIGCONT, the active receipts worker of partition 0: frozen past its
    /// lease, it wakes up behind the standby that took over (with a batch in hand, when the
    /// signal caught it between a fetch and its ack).
    ReceiptsFreeze,
}

impl Fault {
    /// Every fault, in the default order.
    pub const ALL: [Self; 10] = [
        Self::NatsKill,
        Self::CassandraKill,
        Self::RedisMasterKill,
        Self::EdgeKill,
        Self::ProjectorKill,
        Self::ReceiptsKill,
        Self::NotifierKill,
        Self::NatsFreeze,
        Self::CassandraFreeze,
        Self::ReceiptsFreeze,
    ];

    /// The name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::NatsKill => "nats-kill",
            Self::CassandraKill => "cassandra-kill",
            Self::RedisMasterKill => "redis-master-kill",
            Self::EdgeKill => "edge-kill",
            Self::ProjectorKill => "projector-kill",
            Self::ReceiptsKill => "receipts-kill",
            Self::NotifierKill => "notifier-kill",
            Self::NatsFreeze => "nats-freeze",
            Self::CassandraFreeze => "cassandra-freeze",
            Self::ReceiptsFreeze => "receipts-freeze",
        }
    }

    /// Whether the fault freezes (SIGSTOP) rather than kills.
    pub fn freezes(self) -> bool {
        matches!(
            self,
            Self::NatsFreeze | Self::CassandraFreeze | Self::ReceiptsFreeze
        )
    }

    /// The node to hit, found from the cluster's current state.
    pub async fn victim(self, http: &reqwest::Client) -> anyhow::Result<String> {
        match self {
            Self::NatsKill | Self::NatsFreeze => Ok(stream_leader(http)
                .await
                .unwrap_or_else(|| "nats-1".to_owned())),
            Self::CassandraKill => Ok("cassandra-3".to_owned()),
            Self::CassandraFreeze => Ok("cassandra-2".to_owned()),
            Self::RedisMasterKill => redis_master().await,
            Self::EdgeKill => Ok("edge-2".to_owned()),
            Self::ProjectorKill => {
                active(http, &[("projector-1", 19181), ("projector-2", 19182)]).await
            }
            Self::ReceiptsKill | Self::ReceiptsFreeze => {
                active(http, &[("receipts-0-1", 19201), ("receipts-0-2", 19202)]).await
            }
            Self::NotifierKill => Ok("notifier-1".to_owned()),
        }
    }
}

impl FromStr for Fault {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|fault| fault.name() == s)
            .ok_or_else(|| anyhow!("unknown fault {s:?}"))
    }
}

/// The NATS server that leads the stream `CHAT`, from any server's monitoring endpoint.
async fn stream_leader(http: &reqwest::Client) -> Option<String> {
    for port in [18221, 18222, 18223] {
        let url = format!("http://127.0.0.1:{port}/jsz?streams=true");
        let Ok(response) = http.get(&url).send().await else {
            continue;
        };
        let Ok(body) = response.json::<Value>().await else {
            continue;
        };
        let streams = body["account_details"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|account| account["stream_detail"].as_array().into_iter().flatten());
        for stream in streams {
            if stream["name"] == "CHAT" {
                if let Some(leader) = stream["cluster"]["leader"].as_str() {
                    return Some(leader.to_owned());
                }
            }
        }
    }
    None
}

/// The first of redis-1..6 that says it is a master.
async fn redis_master() -> anyhow::Result<String> {
    for i in 1..=6 {
        let output = Command::new("redis-cli")
            .args(["-p", &(17000 + i).to_string(), "role"])
            .output()
            .await
            .context("redis-cli")?;
        if String::from_utf8_lossy(&output.stdout).lines().next() == Some("master") {
            return Ok(format!("redis-{i}"));
        }
    }
    bail!("no Redis node of the cluster says it is a master")
}

/// The node among `nodes` (name, health port) whose `/readyz` says `"role":"active"`.
async fn active(http: &reqwest::Client, nodes: &[(&str, u16)]) -> anyhow::Result<String> {
    for (name, port) in nodes {
        let url = format!("http://127.0.0.1:{port}/readyz");
        let Ok(response) = http.get(&url).send().await else {
            continue;
        };
        if let Ok(body) = response.json::<Value>().await {
            if body["role"] == "active" {
                return Ok((*name).to_owned());
            }
        }
    }
    bail!("none of {nodes:?} is active")
}

/// `scripts/cluster kill NAME SIGNAL`.
pub async fn signal(cluster: &Path, node: &str, signal: &str) -> anyhow::Result<()> {
    run(cluster, &["kill", node, signal]).await
}

/// `scripts/cluster start NAME`: returns once the node is ready again.
pub async fn start(cluster: &Path, node: &str) -> anyhow::Result<()> {
    run(cluster, &["start", node]).await
}

/// Runs the cluster script with `args`; fails with its output when it fails.
async fn run(cluster: &Path, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new(cluster)
        .args(args)
        .output()
        .await
        .with_context(|| format!("cannot run {}", cluster.display()))?;
    if !output.status.success() {
        bail!(
            "{} {}: {}{}",
            cluster.display(),
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Whether every edge's `/readyz` says `"status":"ready"`.
pub async fn edges_ready(http: &reqwest::Client, edges: &[String]) -> bool {
    for base in edges {
        let ready = match http.get(format!("{base}/readyz")).send().await {
            Ok(response) => response
                .json::<Value>()
                .await
                .is_ok_and(|body| body["status"] == "ready"),
            Err(_) => false,
        };
        if !ready {
            return false;
        }
    }
    true
}

/// The time from a kill to the node's restart (or from SIGSTOP to SIGCONT).
pub fn outage(fault: Fault, down: Duration, freeze: Duration) -> Duration {
    if fault.freezes() {
        freeze
    } else {
        down
    }
}
