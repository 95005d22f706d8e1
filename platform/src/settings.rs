//! Configuration: built-in defaults, then an optional file, then environment variables.
//!
//! The defaults (`config/default.toml`, compiled in) run against a local development stack, so a
//! service starts with no configuration at all. `CHAT_CONFIG` names a TOML file that overrides
//! them, and `CHAT_<SECTION>__<KEY>` environment variables override both.

use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use scylla::statement::Consistency;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// The compiled-in defaults.
const DEFAULTS: &str = include_str!("../../config/default.toml");

/// Configuration could not be read or does not fit the service's settings.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct SettingsError(#[from] config::ConfigError);

/// Loads the settings of a service from defaults, `CHAT_CONFIG` and the environment.
///
/// `service_defaults` is the service's own TOML defaults for its own section, layered over the
/// shared ones.
pub fn load<T: DeserializeOwned>(service_defaults: &str) -> Result<T, SettingsError> {
    let mut builder = Config::builder()
        .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
        .add_source(File::from_str(service_defaults, FileFormat::Toml));
    if let Ok(path) = std::env::var("CHAT_CONFIG") {
        builder = builder.add_source(File::with_name(&path).format(FileFormat::Toml));
    }
    let settings = builder
        .add_source(
            Environment::with_prefix("CHAT")
                .prefix_separator("_")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("cassandra.nodes")
                .with_list_parse_key("redis.nodes")
                .try_parsing(true),
        )
        .build()?;
    Ok(settings.try_deserialize()?)
}

/// A setting outside what a service can run with: its section, its key and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid [{section}] setting {key}: {reason}")]
pub struct InvalidSetting {
    /// The section, e.g. `receipts`.
    pub section: &'static str,
    /// The offending key.
    pub key: &'static str,
    /// What is allowed.
    pub reason: &'static str,
}

/// One check of a service's `validate`: `Ok` when `ok`, else the error naming `key`.
pub fn require(
    section: &'static str,
    ok: bool,
    key: &'static str,
    reason: &'static str,
) -> Result<(), InvalidSetting> {
    if ok {
        Ok(())
    } else {
        Err(InvalidSetting {
            section,
            key,
            reason,
        })
    }
}

/// How a service logs.
#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    /// `EnvFilter` directives such as `info,edge=debug`; `RUST_LOG` wins when set.
    pub filter: String,
    /// Output format.
    pub format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Where the event log lives.
#[derive(Debug, Clone, Deserialize)]
pub struct NatsSettings {
    /// NATS server URL, or several servers of one cluster separated by commas, so the client can
    /// connect and reconnect to whichever of them is up.
    pub url: String,
    /// JetStream stream that stores the log.
    pub stream: String,
    /// Prefix for every subject (empty in production).
    pub subject_prefix: String,
    /// How long one connection attempt waits for a server's handshake, at start and on every
    /// reconnect. The client picks the next server at random and may pick one that stalls (it
    /// accepts the TCP connection and never answers), so after losing a frozen server this is
    /// what a reconnect can lose on it: 5 s held writes that long in chaos runs.
    pub connect_timeout_ms: u64,
    /// After this long without a word from the server the client PINGs it, and it leaves the
    /// server for another after three unanswered PINGs. A server that stalls (frozen,
    /// partitioned) keeps its TCP connection open, so this is how long its clients wait: the
    /// client's default of 60 s held RECEIPTs for the whole of a 20 s freeze and more.
    pub ping_interval_ms: u64,
    /// How many servers keep a copy of the stream: 1 on a single server, 3 in a cluster so the
    /// log survives the loss of any one server.
    pub replicas: usize,
}

impl NatsSettings {
    /// Most replicas JetStream allows for a stream.
    pub const MAX_REPLICAS: usize = 5;

    /// The stream and subject names these settings describe, with the stream's replica count.
    pub fn event_log(&self) -> chat_schemas::EventLog {
        chat_schemas::EventLog::new(&self.stream, &self.subject_prefix).with_replicas(self.replicas)
    }

    /// The server URLs in [`NatsSettings::url`], trimmed, without empty entries.
    pub fn servers(&self) -> Vec<String> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Checks what the server would reject only later, or what could not work at all.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let check = |ok, key, reason| require("nats", ok, key, reason);
        check(
            !self.servers().is_empty(),
            "url",
            "at least one server URL, several separated by commas",
        )?;
        check(
            (100..=120_000).contains(&self.ping_interval_ms),
            "ping_interval_ms",
            "100-120000",
        )?;
        check(
            (1..=Self::MAX_REPLICAS).contains(&self.replicas),
            "replicas",
            "1 to 5 (JetStream's limit), at most the number of servers",
        )
    }

    /// [`NatsSettings::connect_timeout_ms`] as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// [`NatsSettings::ping_interval_ms`] as a duration.
    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms)
    }
}

/// Where presence and read state live.
#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    /// Redis URL of a single server (or primary).
    pub url: String,
    /// A Redis Cluster's nodes (`redis://host:port`, some or all: the rest is discovered);
    /// when it names any, `url` is not used (empty entries are ignored, so an empty
    /// `CHAT_REDIS__NODES` means a single Redis).
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Prefix for every key (empty in production).
    pub key_prefix: String,
    /// How long to wait for the server at start.
    pub connect_timeout_ms: u64,
}

impl RedisSettings {
    /// [`RedisSettings::connect_timeout_ms`] as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

/// Where the projections live.
#[derive(Debug, Clone, Deserialize)]
pub struct CassandraSettings {
    /// Contact points, `host:port`.
    pub nodes: Vec<String>,
    /// Keyspace of the projections.
    pub keyspace: String,
    /// Copies of each row in [`CassandraSettings::datacenter`] when the keyspace is created
    /// (`NetworkTopologyStrategy`): 1 on a single node, 3 so that quorum survives a lost node.
    pub replication_factor: u8,
    /// The datacenter the replicas live in, as the cluster's snitch names it (`SimpleSnitch`:
    /// `datacenter1`).
    pub datacenter: String,
    /// Consistency of every statement, by name, e.g. `local_quorum`; lightweight transactions
    /// use `LOCAL_SERIAL` for their Paxos phase.
    pub consistency: String,
    /// How long to wait for the cluster at start.
    pub connect_timeout_ms: u64,
    /// The most one statement waits, every attempt included (the driver's default is 30 s).
    pub request_timeout_ms: u64,
    /// After this long without an answer, an idempotent statement is sent to the next replica
    /// as well (up to [`SPECULATIVE_ATTEMPTS`] more), so that a frozen or overloaded node delays
    /// it by this much rather than by the request timeout; 0 turns it off.
    pub speculative_after_ms: u64,
}

/// The most extra attempts of one idempotent statement: with three replicas, every one of them.
pub const SPECULATIVE_ATTEMPTS: usize = 2;

/// The consistency names [`CassandraSettings::consistency`] accepts, and their levels. `any` is
/// left out: it can only write, and the services read with the same default.
const CONSISTENCIES: &[(&str, Consistency)] = &[
    ("one", Consistency::One),
    ("two", Consistency::Two),
    ("three", Consistency::Three),
    ("quorum", Consistency::Quorum),
    ("all", Consistency::All),
    ("local_quorum", Consistency::LocalQuorum),
    ("local_one", Consistency::LocalOne),
];

impl CassandraSettings {
    /// The level named by [`CassandraSettings::consistency`].
    pub fn consistency_level(&self) -> Result<Consistency, InvalidSetting> {
        let name = self.consistency.to_ascii_lowercase();
        CONSISTENCIES
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, level)| *level)
            .ok_or(InvalidSetting {
                section: "cassandra",
                key: "consistency",
                reason: "one of one, two, three, quorum, all, local_quorum, local_one",
            })
    }

    /// Checks what would otherwise fail later, or smuggle text into the keyspace's CQL.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let check = |ok, key, reason| require("cassandra", ok, key, reason);
        check(!self.nodes.is_empty(), "nodes", "at least one host:port")?;
        check(
            self.replication_factor >= 1,
            "replication_factor",
            "at least 1, at most the nodes of the datacenter",
        )?;
        let datacenter_ok = !self.datacenter.is_empty()
            && self.datacenter.len() <= 64
            && self
                .datacenter
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        check(
            datacenter_ok,
            "datacenter",
            "1-64 characters of [A-Za-z0-9_-]",
        )?;
        check(
            (100..=120_000).contains(&self.request_timeout_ms),
            "request_timeout_ms",
            "100-120000",
        )?;
        check(
            self.speculative_after_ms == 0
                || (10..self.request_timeout_ms).contains(&self.speculative_after_ms),
            "speculative_after_ms",
            "0 (off), or 10 up to below request_timeout_ms",
        )?;
        self.consistency_level().map(|_| ())
    }

    /// [`CassandraSettings::connect_timeout_ms`] as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// [`CassandraSettings::request_timeout_ms`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// [`CassandraSettings::speculative_after_ms`] as a delay; `None` when turned off.
    pub fn speculative_after(&self) -> Option<Duration> {
        (self.speculative_after_ms > 0).then(|| Duration::from_millis(self.speculative_after_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared sections as the compiled-in defaults give them.
    #[derive(Deserialize)]
    struct Shared {
        nats: NatsSettings,
        cassandra: CassandraSettings,
    }

    fn defaults() -> Shared {
        Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .build()
            .and_then(Config::try_deserialize)
            .unwrap_or_else(|e| panic!("defaults: {e}"))
    }

    #[test]
    fn the_defaults_are_valid() {
        let shared = defaults();
        assert_eq!(shared.nats.validate(), Ok(()));
        assert_eq!(shared.nats.replicas, 1);
        assert_eq!(shared.cassandra.validate(), Ok(()));
        assert_eq!(
            shared.cassandra.consistency_level(),
            Ok(Consistency::LocalQuorum)
        );
    }

    #[test]
    fn several_nats_servers_are_separated_by_commas() {
        let nats = NatsSettings {
            url: " nats://127.0.0.1:14221, nats://127.0.0.1:14222,,".into(),
            ..defaults().nats
        };
        assert_eq!(
            nats.servers(),
            vec!["nats://127.0.0.1:14221", "nats://127.0.0.1:14222"]
        );
        let none = NatsSettings {
            url: " , ".into(),
            ..defaults().nats
        };
        assert_eq!(none.validate().map_err(|e| e.key), Err("url"));
    }

    #[test]
    fn replicas_stay_within_what_jetstream_allows() {
        let with = |replicas| NatsSettings {
            replicas,
            ..defaults().nats
        };
        assert_eq!(with(3).validate(), Ok(()));
        assert_eq!(with(0).validate().map_err(|e| e.key), Err("replicas"));
        assert_eq!(with(6).validate().map_err(|e| e.key), Err("replicas"));
        assert_eq!(with(3).event_log().replicas(), 3);
    }

    #[test]
    fn a_stalled_nats_server_is_noticed_within_seconds() {
        let with = |ping_interval_ms| NatsSettings {
            ping_interval_ms,
            ..defaults().nats
        };
        assert_eq!(defaults().nats.ping_interval(), Duration::from_secs(1));
        assert_eq!(
            with(50).validate().map_err(|e| e.key),
            Err("ping_interval_ms")
        );
        assert_eq!(with(60_000).validate(), Ok(()));
    }

    #[test]
    fn cassandra_settings_are_checked() {
        let with = |f: fn(&mut CassandraSettings)| {
            let mut settings = defaults().cassandra;
            f(&mut settings);
            settings.validate().map_err(|e| e.key)
        };
        assert_eq!(with(|s| s.consistency = "LOCAL_ONE".into()), Ok(()));
        assert_eq!(
            with(|s| s.consistency = "serial".into()),
            Err("consistency")
        );
        assert_eq!(with(|s| s.consistency = "any".into()), Err("consistency"));
        assert_eq!(
            with(|s| s.replication_factor = 0),
            Err("replication_factor")
        );
        assert_eq!(with(|s| s.datacenter = "dc'1".into()), Err("datacenter"));
        assert_eq!(with(|s| s.nodes.clear()), Err("nodes"));
        assert_eq!(
            with(|s| s.request_timeout_ms = 50),
            Err("request_timeout_ms")
        );
        assert_eq!(with(|s| s.speculative_after_ms = 0), Ok(()));
        assert_eq!(
            with(|s| s.speculative_after_ms = 5),
            Err("speculative_after_ms")
        );
        assert_eq!(
            with(|s| s.speculative_after_ms = s.request_timeout_ms),
            Err("speculative_after_ms")
        );
    }

    #[test]
    fn idempotent_statements_are_retried_early_unless_turned_off() {
        let mut settings = defaults().cassandra;
        assert_eq!(
            settings.speculative_after(),
            Some(Duration::from_millis(300))
        );
        assert_eq!(settings.request_timeout(), Duration::from_secs(10));
        settings.speculative_after_ms = 0;
        assert_eq!(settings.speculative_after(), None);
    }
}
