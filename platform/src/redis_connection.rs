//! One Redis connection type for a single server and for a Redis Cluster, so services do not
//! care which one they were given (`[redis] nodes`).
//!
//! Both route single commands and scripts by their keys. A pipeline is different: a cluster
//! runs one only when every command of it is in one hash slot, so [`RedisConnection::pipeline`]
//! takes each command with the key that places it, and on a cluster sends one pipeline per
//! slot, concurrently, answering in the order given.
//!
//! A cluster connection that keeps timing out is replaced by a new one ([`ClusterHandle`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::try_join_all;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo, Slot};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// A connection to a single Redis or to a Redis Cluster; cheap to clone.
#[derive(Clone)]
pub enum RedisConnection {
    /// One server (or a primary), reconnecting by itself.
    Single(ConnectionManager),
    /// A cluster: commands go to the node that holds their slot, following failovers.
    Cluster(ClusterHandle),
}

/// Least time between two replacements of a cluster connection.
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// A Redis Cluster connection, made afresh when a request times out (at most every
/// [`RENEW_EVERY`]). redis-rs's cluster connection can stay stuck after a primary's failover,
/// every request timing out for good (seen in the chaos run: a notifier timed out for 11 minutes
/// after `redis-master-kill`, while one started after the failover worked at once); a new
/// connection maps the cluster again from its nodes.
#[derive(Clone)]
pub struct ClusterHandle(Arc<ClusterShared>);

/// What the clones of a [`ClusterHandle`] share.
struct ClusterShared {
    /// Makes new connections, from every configured node.
    client: ClusterClient,
    /// The connection in use, and when it was made.
    current: Mutex<(ClusterConnection, Instant)>,
}

impl ClusterHandle {
    /// Uses `connection`, made by `client`.
    pub(crate) fn new(client: ClusterClient, connection: ClusterConnection) -> Self {
        Self(Arc::new(ClusterShared {
            client,
            current: Mutex::new((connection, Instant::now())),
        }))
    }

    /// The connection in use (a cheap clone of it).
    fn connection(&self) -> ClusterConnection {
        let current = self
            .0
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        current.0.clone()
    }

    /// Replaces the connection when `result` timed out; the request itself is not repeated
    /// (its caller retries as for any Redis error).
    async fn after<T>(&self, result: &RedisResult<T>) {
        if result.as_ref().is_err_and(redis::RedisError::is_timeout) {
            self.renew().await;
        }
    }

    /// Replaces the connection unless it is younger than [`RENEW_EVERY`].
    async fn renew(&self) {
        {
            let mut current = self
                .0
                .current
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if current.1.elapsed() < RENEW_EVERY {
                return;
            }
            // Claimed: concurrent timeouts do not connect again meanwhile.
            current.1 = Instant::now();
        }
        tracing::warn!("Redis Cluster requests time out; connecting to the cluster afresh");
        match self.0.client.get_async_connection().await {
            Ok(connection) => {
                let mut current = self
                    .0
                    .current
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                *current = (connection, Instant::now());
            }
            Err(error) => tracing::warn!(%error, "cannot connect to the Redis Cluster afresh"),
        }
    }
}

impl RedisConnection {
    /// Whether commands of different slots may land on different servers.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Runs `commands`, each given with the key that places it, and returns their replies in
    /// order. One round trip on a single server; on a cluster one per slot, concurrently, so
    /// only commands of one slot keep their relative order.
    pub async fn pipeline(&self, commands: Vec<(String, Cmd)>) -> RedisResult<Vec<Value>> {
        match self {
            Self::Single(connection) => {
                let mut pipe = redis::pipe();
                for (_, command) in commands {
                    pipe.add_command(command);
                }
                pipe.query_async(&mut connection.clone()).await
            }
            Self::Cluster(cluster) => {
                let connection = cluster.connection();
                let mut slots: HashMap<Slot, (Pipeline, Vec<usize>)> = HashMap::new();
                let count = commands.len();
                for (i, (key, command)) in commands.into_iter().enumerate() {
                    let (pipe, places) = slots
                        .entry(Slot::for_key(key.as_bytes()))
                        .or_insert_with(|| (redis::pipe(), Vec::new()));
                    pipe.add_command(command);
                    places.push(i);
                }
                let answers = try_join_all(slots.into_values().map(|(pipe, places)| {
                    let mut connection = connection.clone();
                    async move {
                        let replies: Vec<Value> = pipe.query_async(&mut connection).await?;
                        Ok::<_, redis::RedisError>(places.into_iter().zip(replies))
                    }
                }))
                .await;
                cluster.after(&answers).await;
                let answers = answers?;
                let mut ordered = vec![Value::Nil; count];
                for (place, reply) in answers.into_iter().flatten() {
                    ordered[place] = reply;
                }
                Ok(ordered)
            }
        }
    }
}

impl RedisConnection {
    /// On a cluster, waits until a replica of every primary has the writes this connection
    /// sent so far, for at most `timeout_ms`, and says how many replicas the slowest primary
    /// reached (0: a failover of that primary could lose them). Replication is asynchronous,
    /// so this is what makes a write survive a failover. A single server has nothing to wait
    /// for and answers 1.
    pub async fn replicated(&self, timeout_ms: u64) -> RedisResult<i64> {
        match self {
            Self::Single(_) => Ok(1),
            Self::Cluster(cluster) => {
                let replicas = redis::cmd("WAIT")
                    .arg(1)
                    .arg(timeout_ms)
                    .query_async(&mut cluster.connection())
                    .await;
                // `WAIT` goes to every node the connection takes for a primary, and a stale
                // map (a killed primary back as a replica, which refuses `WAIT`) fails it for
                // good, with no redirect to correct it (seen in a chaos run): map afresh.
                if replicas.is_err() {
                    cluster.renew().await;
                }
                replicas
            }
        }
    }

    /// Every key matching `pattern` (a `SCAN` pattern), on every primary of a cluster. For
    /// maintenance (a rebuild), not for the request path: it walks the whole keyspace.
    pub async fn keys_matching(&self, pattern: &str) -> RedisResult<Vec<String>> {
        match self {
            Self::Single(connection) => {
                scan(&mut connection.clone(), pattern, |conn, cmd| {
                    Box::pin(async move { cmd.query_async(conn).await })
                })
                .await
            }
            Self::Cluster(cluster) => {
                let mut connection = cluster.connection();
                let nodes: String = redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut connection)
                    .await?;
                let mut keys = Vec::new();
                for (host, port) in primaries(&nodes) {
                    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: host.clone(),
                        port,
                    });
                    keys.extend(
                        scan(&mut connection, pattern, |conn, cmd| {
                            let routing = routing.clone();
                            Box::pin(async move {
                                let reply = conn.route_command(cmd, routing).await?;
                                redis::from_redis_value(reply).map_err(redis::RedisError::from)
                            })
                        })
                        .await?,
                    );
                }
                Ok(keys)
            }
        }
    }
}

/// One `SCAN` page: the next cursor and the keys found.
type ScanPage = (u64, Vec<String>);

/// Walks `SCAN` to the end through `send`, which runs one page's command.
async fn scan<C>(
    connection: &mut C,
    pattern: &str,
    send: impl for<'c> Fn(&'c mut C, Cmd) -> RedisFuture<'c, ScanPage>,
) -> RedisResult<Vec<String>> {
    let mut keys = Vec::new();
    let mut cursor = 0_u64;
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1_000);
        let (next, found) = send(connection, cmd).await?;
        keys.extend(found);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// The primaries' addresses in a `CLUSTER NODES` answer (`id host:port@bus flags ...`).
fn primaries(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address = fields.nth(1)?;
            let flags = fields.next()?;
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                return None;
            }
            let (host, port) = address.split('@').next()?.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect()
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(cluster) => Box::pin(async move {
                let result = cluster.connection().req_packed_command(cmd).await;
                cluster.after(&result).await;
                result
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(cmd, offset, count),
            Self::Cluster(cluster) => Box::pin(async move {
                let result = cluster
                    .connection()
                    .req_packed_commands(cmd, offset, count)
                    .await;
                cluster.after(&result).await;
                result
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(cluster) => cluster.connection().get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::primaries;

    #[test]
    fn primaries_are_read_from_cluster_nodes() {
        let nodes = "a1 127.0.0.1:17001@27001 myself,master - 0 0 1 connected 0-5460\n\
                     b2 127.0.0.1:17004@27004 slave a1 0 0 1 connected\n\
                     c3 127.0.0.1:17002@27002 master - 0 0 2 connected 5461-10922\n\
                     d4 127.0.0.1:17003@27003 master,fail - 0 0 3 disconnected\n";
        assert_eq!(
            primaries(nodes),
            [
                ("127.0.0.1".to_owned(), 17001),
                ("127.0.0.1".to_owned(), 17002)
            ]
        );
    }
}
