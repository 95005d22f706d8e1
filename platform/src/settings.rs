//! Configuration: built-in defaults, then an optional file, then environment variables.
//!
//! The defaults (`config/default.toml`, compiled in) run against a local development stack, so a
//! service starts with no configuration at all. `CHAT_CONFIG` names a TOML file that overrides
//! them, and `CHAT_<SECTION>__<KEY>` environment variables override both.

use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
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
    /// NATS server URL.
    pub url: String,
    /// JetStream stream that stores the log.
    pub stream: String,
    /// Prefix for every subject (empty in production).
    pub subject_prefix: String,
    /// How long to wait for the server at start.
    pub connect_timeout_ms: u64,
}

impl NatsSettings {
    /// The stream and subject names these settings describe.
    pub fn event_log(&self) -> chat_schemas::EventLog {
        chat_schemas::EventLog::new(&self.stream, &self.subject_prefix)
    }

    /// [`NatsSettings::connect_timeout_ms`] as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

/// Where presence and read state live.
#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    /// Redis URL.
    pub url: String,
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
    /// Replication factor used when the keyspace is created.
    pub replication_factor: u8,
    /// How long to wait for the cluster at start.
    pub connect_timeout_ms: u64,
}

impl CassandraSettings {
    /// [`CassandraSettings::connect_timeout_ms`] as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}
