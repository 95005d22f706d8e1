//! The edge's settings: the shared sections plus `[edge]`.

use chat_platform::settings::{self, CassandraSettings, LogSettings, NatsSettings, SettingsError};
use serde::Deserialize;

/// Defaults of the `[edge]` section.
const DEFAULTS: &str = r#"
[edge]
listen = "127.0.0.1:8080"
"#;

/// Everything the edge reads from configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub log: LogSettings,
    pub nats: NatsSettings,
    pub cassandra: CassandraSettings,
    pub edge: EdgeSettings,
}

/// The `[edge]` section.
#[derive(Debug, Clone, Deserialize)]
pub struct EdgeSettings {
    /// Address the HTTP and WebSocket server binds, `host:port` (port 0 picks a free one).
    pub listen: String,
}

impl Settings {
    /// Defaults, then `CHAT_CONFIG`, then `CHAT_*` environment variables.
    pub fn load() -> Result<Self, SettingsError> {
        settings::load(DEFAULTS)
    }
}
