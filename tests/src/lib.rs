//! The integration test kit: a [`TestEnv`] per test, isolated on the shared real servers.
//!
//! NATS, Redis and Cassandra are started once by `scripts/test` and shared by every test. Each
//! `TestEnv` gets names nobody else uses — a JetStream stream and subject prefix, a Cassandra
//! keyspace with the full schema, a Redis key prefix — so tests run in parallel, and everything
//! is removed again when the environment is dropped, also when the test panicked.

mod app;
pub mod edges;
pub mod health;
mod process;
pub mod push;
pub mod python;
pub mod redis_cluster;
pub mod stomp;

use std::sync::Arc;

use async_nats::jetstream;
use chat_platform::connect;
use chat_platform::redis_connection::RedisConnection;
use chat_platform::settings::{self, CassandraSettings, NatsSettings, RedisSettings};
use chat_schemas::{encode, ChatEvent, Envelope, EventLog, UserId};
use scylla::client::session::Session;

pub use app::{send, TestApp};
pub use process::{binary, ServiceProcess};

/// Connections and names reserved for one test.
pub struct TestEnv {
    /// Short unique id of this environment, e.g. `t3f9a0c21`.
    pub id: String,
    /// NATS settings naming this test's stream and subject prefix.
    pub nats_settings: NatsSettings,
    /// Redis settings naming this test's key prefix.
    pub redis_settings: RedisSettings,
    /// Cassandra settings naming this test's keyspace.
    pub cassandra_settings: CassandraSettings,
    /// The test's stream and subjects.
    pub log: EventLog,
    /// A NATS connection.
    pub nats: async_nats::Client,
    /// JetStream on that connection; the test's stream already exists.
    pub jetstream: jetstream::Context,
    /// A Redis connection.
    pub redis: RedisConnection,
    /// A Cassandra session; the test's keyspace and tables already exist.
    pub cassandra: Arc<Session>,
}

impl TestEnv {
    /// Reserves fresh names, creates the stream and the keyspace, and connects to all three
    /// servers. Panics with the server's address when one is not running: start them with
    /// `scripts/test` (or `scripts/servers up`).
    pub async fn new() -> Self {
        let servers: Servers = settings::load("").unwrap_or_else(|e| panic!("test settings: {e}"));
        let id = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);

        let nats_settings = NatsSettings {
            stream: format!("CHAT_{}", id.to_uppercase()),
            subject_prefix: format!("{id}."),
            ..servers.nats
        };
        let redis_settings = RedisSettings {
            key_prefix: format!("{id}:"),
            ..servers.redis
        };
        let cassandra_settings = CassandraSettings {
            keyspace: id.clone(),
            ..servers.cassandra
        };

        let log = nats_settings.event_log();
        let (nats, jetstream) = connect::nats(&nats_settings).await.unwrap_or_else(fail);
        connect::event_stream(&jetstream, &log)
            .await
            .unwrap_or_else(fail);
        let redis = connect::redis(&redis_settings).await.unwrap_or_else(fail);
        let cassandra = connect::cassandra(&cassandra_settings)
            .await
            .unwrap_or_else(fail);
        connect::apply_schema(&cassandra, &id, &cassandra_settings)
            .await
            .unwrap_or_else(fail);

        Self {
            id,
            nats_settings,
            redis_settings,
            cassandra_settings,
            log,
            nats,
            jetstream,
            redis,
            cassandra,
        }
    }

    /// The same environment with its Redis state on `redis` (e.g. a Redis Cluster) instead of
    /// the shared server, under the same key prefix.
    pub async fn on_redis(mut self, redis: RedisSettings) -> Self {
        self.redis_settings = RedisSettings {
            key_prefix: self.redis_settings.key_prefix.clone(),
            ..redis
        };
        self.redis = connect::redis(&self.redis_settings)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        self
    }

    /// Stores `envelope` on its room's subject straight in the log, without an edge and under
    /// no deduplication id of its own (as another writer would, or an edge's append once out of
    /// JetStream's window); its stream sequence.
    pub async fn store_in_log(&self, envelope: &Envelope) -> u64 {
        self.jetstream
            .publish(
                self.log.room_subject(&envelope.room_id),
                encode(envelope).expect("encodes").into(),
            )
            .await
            .expect("publish")
            .await
            .expect("stored")
            .sequence
    }

    /// The Redis key `name` under this test's prefix.
    pub fn redis_key(&self, name: &str) -> String {
        format!("{}{name}", self.redis_settings.key_prefix)
    }

    /// Environment variables that point a service binary at this test's names.
    pub fn service_env(&self) -> Vec<(String, String)> {
        let mut vars = vec![
            ("CHAT_NATS__URL".into(), self.nats_settings.url.clone()),
            (
                "CHAT_NATS__STREAM".into(),
                self.nats_settings.stream.clone(),
            ),
            (
                "CHAT_NATS__SUBJECT_PREFIX".into(),
                self.nats_settings.subject_prefix.clone(),
            ),
            ("CHAT_REDIS__URL".into(), self.redis_settings.url.clone()),
            (
                "CHAT_REDIS__KEY_PREFIX".into(),
                self.redis_settings.key_prefix.clone(),
            ),
            (
                "CHAT_CASSANDRA__NODES".into(),
                self.cassandra_settings.nodes.join(","),
            ),
            (
                "CHAT_CASSANDRA__KEYSPACE".into(),
                self.cassandra_settings.keyspace.clone(),
            ),
        ];
        if !self.redis_settings.nodes.is_empty() {
            vars.push((
                "CHAT_REDIS__NODES".into(),
                self.redis_settings.nodes.join(","),
            ));
        }
        vars
    }
}

impl Drop for TestEnv {
    /// Deletes the stream, the keyspace and the Redis keys of this test.
    ///
    /// Runs on a thread of its own with fresh connections: the test's runtime may be single
    /// threaded and is blocked while `drop` runs.
    fn drop(&mut self) {
        let nats = self.nats_settings.clone();
        let redis = self.redis_settings.clone();
        let cassandra = self.cassandra_settings.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("cleanup runtime: {e}"));
            runtime.block_on(remove_everything(nats, redis, cassandra));
        });
        if cleanup.join().is_err() {
            eprintln!("test environment {} was not fully cleaned up", self.id);
        }
    }
}

async fn remove_everything(nats: NatsSettings, redis: RedisSettings, cassandra: CassandraSettings) {
    if let Ok((_, jetstream)) = connect::nats(&nats).await {
        if let Err(e) = jetstream.delete_stream(&nats.stream).await {
            eprintln!("cleanup: delete stream {}: {e}", nats.stream);
        }
        // The projector's lease bucket; a test without a projector has none.
        let _ = jetstream
            .delete_key_value(nats.event_log().lease_bucket())
            .await;
    }
    if let Ok(mut conn) = connect::redis(&redis).await {
        let pattern = format!("{}*", redis.key_prefix);
        let keys: Vec<String> = match conn.keys_matching(&pattern).await {
            Ok(keys) => keys,
            Err(e) => {
                eprintln!("cleanup: list redis keys {pattern}: {e}");
                Vec::new()
            }
        };
        for chunk in keys.chunks(500) {
            let deleted: redis::RedisResult<i64> =
                redis::cmd("DEL").arg(chunk).query_async(&mut conn).await;
            if let Err(e) = deleted {
                eprintln!("cleanup: delete redis keys: {e}");
            }
        }
    }
    if let Ok(session) = connect::cassandra(&cassandra).await {
        let statement = format!("DROP KEYSPACE IF EXISTS {}", cassandra.keyspace);
        if let Err(e) = session.query_unpaged(statement, ()).await {
            eprintln!("cleanup: drop keyspace {}: {e}", cassandra.keyspace);
        }
    }
}

/// The user `name`, for a test that writes events itself.
pub fn user(name: &str) -> UserId {
    UserId::parse(name).expect("valid user id")
}

/// A plain CHAT of `content` (no clientMessageId, reply or mention), as a test writes it
/// straight into the log with [`TestEnv::store_in_log`] when no edge should.
pub fn chat(content: &str) -> ChatEvent {
    ChatEvent::Chat {
        content: content.into(),
        client_message_id: None,
        reply_to: None,
        mentions: Vec::new(),
    }
}

fn fail<T>(error: connect::ConnectError) -> T {
    panic!("{error} (are the servers running? `scripts/servers up` starts them)")
}

/// The server addresses, from the same defaults and environment the services use.
#[derive(serde::Deserialize)]
struct Servers {
    nats: NatsSettings,
    redis: RedisSettings,
    cassandra: CassandraSettings,
}
