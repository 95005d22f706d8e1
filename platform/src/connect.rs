//! Connecting to the servers the services stand on, with a timeout and an error that names the
//! server and its address, so a service that cannot start says exactly why.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use chat_schemas::{cql, EventLog};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::PrepareError;
use scylla::policies::speculative_execution::{
    SimpleSpeculativeExecutionPolicy, SpeculativeExecutionPolicy,
};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::SerialConsistency;

use crate::backoff::Backoff;
use crate::redis_connection::{ClusterHandle, RedisConnection};
use crate::settings::{
    CassandraSettings, InvalidSetting, NatsSettings, RedisSettings, SPECULATIVE_ATTEMPTS,
};

/// A server could not be reached or prepared.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A setting of the connection cannot work, so no attempt was made.
    #[error(transparent)]
    Setting(#[from] InvalidSetting),
    /// NATS did not answer.
    #[error("cannot reach NATS at {url}: {source}")]
    Nats {
        /// The configured URL.
        url: String,
        /// What the client reported.
        source: async_nats::ConnectError,
    },
    /// The JetStream stream could not be created or read.
    #[error("cannot prepare JetStream stream {stream}: {message}")]
    Stream {
        /// The stream name.
        stream: String,
        /// What JetStream reported.
        message: String,
    },
    /// Redis did not answer.
    #[error("cannot reach Redis at {url}: {source}")]
    Redis {
        /// The configured URL.
        url: String,
        /// What the client reported.
        source: redis::RedisError,
    },
    /// Cassandra did not answer.
    #[error("cannot reach Cassandra at {nodes:?}: {message}")]
    Cassandra {
        /// The configured contact points.
        nodes: Vec<String>,
        /// What the driver reported.
        message: String,
    },
    /// The CQL schema could not be applied.
    #[error("cannot apply the CQL schema to keyspace {keyspace}: {message}")]
    Schema {
        /// The keyspace being created.
        keyspace: String,
        /// What Cassandra reported.
        message: String,
    },
}

/// Connects to NATS and returns the client and its JetStream context.
///
/// With several servers in `url`, the client connects to any one that answers and, when it
/// loses that one, reconnects to another of them (or one the cluster announced meanwhile). A
/// server that stops answering without closing the connection counts as lost after three
/// [`NatsSettings::ping_interval_ms`] without a PONG.
pub async fn nats(
    settings: &NatsSettings,
) -> Result<(async_nats::Client, jetstream::Context), ConnectError> {
    settings.validate()?;
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(settings.connect_timeout())
        .ping_interval(settings.ping_interval())
        .name(env!("CARGO_PKG_NAME"))
        .connect(settings.servers())
        .await
        .map_err(|source| ConnectError::Nats {
            url: settings.url.clone(),
            source,
        })?;
    let context = jetstream::new(client.clone());
    Ok((client, context))
}

/// Creates the log's stream when it is missing and returns it.
///
/// An existing stream is kept as is, except its replica count: when that differs from the
/// log's, the stream is updated in place (JetStream copies it to more servers, or drops
/// copies), never deleted and created again, since it is the source of truth.
pub async fn event_stream(
    context: &jetstream::Context,
    log: &EventLog,
) -> Result<jetstream::stream::Stream, ConnectError> {
    let error = |e: &dyn std::fmt::Display| ConnectError::Stream {
        stream: log.stream_name().to_owned(),
        message: e.to_string(),
    };
    let mut stream = context
        .get_or_create_stream(log.stream_config())
        .await
        .map_err(|e| error(&e))?;
    let current = stream.cached_info().config.clone();
    if current.num_replicas != log.replicas() {
        tracing::info!(
            stream = log.stream_name(),
            from = current.num_replicas,
            to = log.replicas(),
            "changing the stream's replicas"
        );
        let config = jetstream::stream::Config {
            num_replicas: log.replicas(),
            ..current
        };
        context.update_stream(config).await.map_err(|e| error(&e))?;
        stream = context
            .get_stream(log.stream_name())
            .await
            .map_err(|e| error(&e))?;
    }
    Ok(stream)
}

/// Connects to Redis — to the cluster of `[redis] nodes` when there are any, else to `url` —
/// with a connection that reconnects (and, on a cluster, follows failovers) by itself.
pub async fn redis(settings: &RedisSettings) -> Result<RedisConnection, ConnectError> {
    let nodes: Vec<&str> = settings
        .nodes
        .iter()
        .map(|node| node.trim())
        .filter(|node| !node.is_empty())
        .collect();
    if nodes.is_empty() {
        return Ok(RedisConnection::Single(redis_single(settings).await?));
    }
    let error = |source| ConnectError::Redis {
        url: nodes.join(","),
        source,
    };
    let client = ClusterClient::builder(nodes.iter().copied())
        .connection_timeout(settings.connect_timeout())
        .response_timeout(settings.connect_timeout())
        .build()
        .map_err(error)?;
    let connection = client.get_async_connection().await.map_err(error)?;
    let mut connection = RedisConnection::Cluster(ClusterHandle::new(client, connection));
    redis::cmd("PING")
        .query_async::<String>(&mut connection)
        .await
        .map_err(error)?;
    Ok(connection)
}

/// Connects to the single Redis at `url`.
async fn redis_single(settings: &RedisSettings) -> Result<ConnectionManager, ConnectError> {
    let error = |source| ConnectError::Redis {
        url: settings.url.clone(),
        source,
    };
    let client = redis::Client::open(settings.url.as_str()).map_err(error)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout()))
        .set_response_timeout(Some(settings.connect_timeout()))
        .set_number_of_retries(1);
    let mut manager = ConnectionManager::new_with_config(client, config)
        .await
        .map_err(error)?;
    redis::cmd("PING")
        .query_async::<String>(&mut manager)
        .await
        .map_err(error)?;
    Ok(manager)
}

/// Opens a Cassandra session (not bound to a keyspace: statements name their keyspace).
///
/// Every statement runs at [`CassandraSettings::consistency`] unless it sets its own, and the
/// Paxos phase of lightweight transactions at `LOCAL_SERIAL`: with a replication factor of 3,
/// `local_quorum` reads and writes keep working, and see each other, with one node down. A
/// node that is down is noticed; one that stalls (frozen, partitioned, swapping) keeps its
/// connections open and answers nothing, so a statement marked idempotent is also sent to the
/// next replica after [`CassandraSettings::speculative_after_ms`], and none waits longer than
/// [`CassandraSettings::request_timeout_ms`].
pub async fn cassandra(settings: &CassandraSettings) -> Result<Arc<Session>, ConnectError> {
    settings.validate()?;
    let speculative = settings.speculative_after().map(|retry_interval| {
        Arc::new(SimpleSpeculativeExecutionPolicy {
            max_retry_count: SPECULATIVE_ATTEMPTS,
            retry_interval,
        }) as Arc<dyn SpeculativeExecutionPolicy>
    });
    let profile = ExecutionProfile::builder()
        .consistency(settings.consistency_level()?)
        .serial_consistency(Some(SerialConsistency::LocalSerial))
        .request_timeout(Some(settings.request_timeout()))
        .speculative_execution_policy(speculative)
        .build();
    let session = SessionBuilder::new()
        .known_nodes(&settings.nodes)
        .connection_timeout(settings.connect_timeout())
        .default_execution_profile_handle(profile.into_handle())
        .build()
        .await
        .map_err(|e| ConnectError::Cassandra {
            nodes: settings.nodes.clone(),
            message: e.to_string(),
        })?;
    Ok(Arc::new(session))
}

/// Prepares `statements` all at once, in their order.
///
/// The driver prepares each statement on every node and waits for all of them, with no
/// timeout of its own, so one slow node (just restarted, replaying its commit log, overloaded)
/// holds up every preparation: one after the other, a service's start took minutes. At once, it
/// takes as long as the slowest node answers one.
pub async fn prepare_all<const N: usize>(
    session: &Session,
    statements: [String; N],
) -> Result<[PreparedStatement; N], PrepareError> {
    let prepared =
        futures::future::try_join_all(statements.into_iter().map(|cql| session.prepare(cql)))
            .await?;
    Ok(prepared
        .try_into()
        .unwrap_or_else(|_| unreachable!("try_join_all keeps one result per statement")))
}

/// How long applying the schema is retried: a ring with a node just restarted or overloaded can
/// time out on schema changes for a while, and a service that exits then does not come back by
/// itself (the chaos run's restarted projector did).
const SCHEMA_PATIENCE: Duration = Duration::from_secs(120);

/// Creates `keyspace` (replicated as `settings` say) and the tables of the projections when
/// missing. Every statement is idempotent (`IF NOT EXISTS`); each is retried with backoff for
/// [`SCHEMA_PATIENCE`].
pub async fn apply_schema(
    session: &Session,
    keyspace: &str,
    settings: &CassandraSettings,
) -> Result<(), ConnectError> {
    settings.validate()?;
    let error = |message: String| ConnectError::Schema {
        keyspace: keyspace.to_owned(),
        message,
    };
    let statements = cql::schema(keyspace, &settings.datacenter, settings.replication_factor)
        .map_err(|e| error(e.to_string()))?;
    for statement in statements {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
        let began = Instant::now();
        loop {
            match session.query_unpaged(statement.as_str(), ()).await {
                Ok(_) => break,
                Err(e) if began.elapsed() < SCHEMA_PATIENCE => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot apply the CQL schema yet");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(error(e.to_string())),
            }
        }
    }
    Ok(())
}
