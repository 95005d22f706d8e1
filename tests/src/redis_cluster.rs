//! A private Redis Cluster for a test: its own servers on free ports, slots spread evenly over
//! the primaries, gone when dropped. Made with plain cluster commands (`CLUSTER ADDSLOTSRANGE`,
//! `CLUSTER MEET`), so it needs only `redis-server`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chat_platform::settings::RedisSettings;

use crate::health::PrivateServer;

/// Hash slots of a Redis Cluster.
const SLOTS: u16 = 16_384;

/// A test cluster: primaries, each with one replica (as deployed: the receipts worker waits for
/// a replica to confirm each batch).
pub struct RedisCluster {
    nodes: Vec<PrivateServer>,
    dir: PathBuf,
}

impl RedisCluster {
    /// Starts `primaries` servers and as many replicas and joins them into one cluster covering
    /// every slot; panics when it is not `cluster_state:ok` with every replica in sync within
    /// 20 s.
    pub async fn start(primaries: u16) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "chat-redis-cluster-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let nodes: Vec<PrivateServer> = (0..primaries * 2)
            .map(|_| PrivateServer::redis_cluster_node(&dir))
            .collect();
        let cluster = Self { nodes, dir };
        let per_node = SLOTS / primaries;
        for (i, node) in (0_u16..).zip(&cluster.nodes[..usize::from(primaries)]) {
            let first = i * per_node;
            let last = if i + 1 == primaries {
                SLOTS - 1
            } else {
                first + per_node - 1
            };
            let mut conn = connection(node.port()).await;
            let _: () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(first)
                .arg(last)
                .query_async(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("ADDSLOTSRANGE: {e}"));
        }
        let mut first_node = connection(cluster.nodes[0].port()).await;
        for node in &cluster.nodes[1..] {
            let _: () = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(node.port())
                .arg(node.cluster_bus_port().expect("a cluster node"))
                .query_async(&mut first_node)
                .await
                .unwrap_or_else(|e| panic!("MEET: {e}"));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let primary_nodes = &cluster.nodes[..usize::from(primaries)];
        let replica_nodes = &cluster.nodes[usize::from(primaries)..];
        for (primary, replica) in primary_nodes.iter().zip(replica_nodes) {
            let id: String = redis::cmd("CLUSTER")
                .arg("MYID")
                .query_async(&mut connection(primary.port()).await)
                .await
                .unwrap_or_else(|e| panic!("MYID: {e}"));
            let mut conn = connection(replica.port()).await;
            loop {
                // The replica must have heard of its primary through the cluster bus first.
                let replicated: redis::RedisResult<()> = redis::cmd("CLUSTER")
                    .arg("REPLICATE")
                    .arg(&id)
                    .query_async(&mut conn)
                    .await;
                match replicated {
                    Ok(()) => break,
                    Err(e) => assert!(Instant::now() < deadline, "REPLICATE: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        for node in replica_nodes {
            answers_with(
                node.port(),
                &["INFO", "replication"],
                "master_link_status:up",
                deadline,
            )
            .await;
        }
        for node in &cluster.nodes {
            answers_with(
                node.port(),
                &["CLUSTER", "INFO"],
                "cluster_state:ok",
                deadline,
            )
            .await;
        }
        cluster
    }

    /// Settings that point a service at this cluster.
    pub fn settings(&self) -> RedisSettings {
        RedisSettings {
            url: String::new(),
            nodes: self.nodes.iter().map(PrivateServer::redis_url).collect(),
            key_prefix: String::new(),
            connect_timeout_ms: 5_000,
        }
    }
}

impl Drop for RedisCluster {
    /// The servers stop with their [`PrivateServer`]s; their cluster state goes too.
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A plain connection to one node, for the cluster commands.
async fn connection(port: u16) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap_or_else(|e| panic!("{e}"))
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("node {port}: {e}"))
}

/// Repeats `command` on the node at `port` until its answer contains `wanted`; panics with the
/// last answer at `deadline`.
async fn answers_with(port: u16, command: &[&str], wanted: &str, deadline: Instant) {
    let mut conn = connection(port).await;
    loop {
        let answer: String = redis::cmd(command[0])
            .arg(&command[1..])
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{command:?}: {e}"));
        if answer.contains(wanted) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{command:?} never said {wanted}: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
