//! The edge's settings: the shared sections, the token keys and `[edge]`.

use std::time::Duration;

use chat_platform::settings::{
    self, CassandraSettings, LogSettings, NatsSettings, RedisSettings, SettingsError,
};
use serde::Deserialize;

/// Defaults of the edge's own keys.
const DEFAULTS: &str = r#"
# HS256 secret for access tokens (CHAT_JWT_SECRET). This default is for local development only.
jwt_secret = "dev-only-secret-change-me"

[edge]
listen = "127.0.0.1:8080"
max_room_size = 10000
max_content_chars = 4000
max_body_bytes = 65536
read_your_writes_timeout_ms = 5000
read_catch_up_ms = 2000
append_retry_ms = 15000
append_attempt_timeout_ms = 1000
membership_rooms = 100000
projector = "projector"
direct_room_namespace = "3b0f7a4e-9c1d-4e55-8d8e-2f6a1c9b7d10"
max_frame_bytes = 65536
max_subscriptions = 64
send_rate_per_second = 20
send_burst = 40
outbound_queue = 1024
heart_beat_ms = 10000
presence_heartbeat_ms = 5000
presence_ttl_ms = 15000
max_push_tokens_per_user = 10
dev_login = false
web = true
web_dir = "web/dist"
"#;

/// Everything the edge reads from configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Logging.
    pub log: LogSettings,
    /// The event log.
    pub nats: NatsSettings,
    /// The projections.
    pub cassandra: CassandraSettings,
    /// Unread counts and this edge's presence heartbeat.
    pub redis: RedisSettings,
    /// HS256 secret of access tokens (`CHAT_JWT_SECRET`).
    pub jwt_secret: String,
    /// PEM file of an RS256 public key (`CHAT_JWT_PUBLIC_KEY_FILE`); when set, tokens must be
    /// RS256 tokens signed by its private key, and HS256 tokens are refused.
    #[serde(default)]
    pub jwt_public_key_file: Option<String>,
    /// The `[edge]` section.
    pub edge: EdgeSettings,
}

/// The `[edge]` section.
#[derive(Debug, Clone, Deserialize)]
pub struct EdgeSettings {
    /// Address the HTTP and WebSocket server binds, `host:port` (port 0 picks a free one).
    pub listen: String,
    /// Most members a room may have.
    pub max_room_size: usize,
    /// Longest message content, in characters.
    pub max_content_chars: usize,
    /// Largest HTTP request body, in bytes.
    pub max_body_bytes: usize,
    /// How long a write waits for the projector before answering 503 `NOT_YET_VISIBLE`.
    pub read_your_writes_timeout_ms: u64,
    /// How long a read of history or of rooms waits for the projector to apply what the log
    /// held when the read came, before it answers with what the projection holds (stale, but
    /// an answer, while the projector is down).
    pub read_catch_up_ms: u64,
    /// How long an append that failed for a reason that may pass (a NATS restart) is tried
    /// again, with the same deduplication id, before the write answers `UNAVAILABLE`.
    pub append_retry_ms: u64,
    /// How long one attempt of an append waits for JetStream's ack before it is tried again.
    /// A publish routed to a stream leader that stalls (frozen, cut off) gets no answer at all,
    /// so this, not the retry time, sets how soon the edge reaches the newly elected leader.
    /// Values below 100 count as 100.
    pub append_attempt_timeout_ms: u64,
    /// Most rooms whose members the edge holds in memory (least recently used make way).
    pub membership_rooms: usize,
    /// Name of the projector whose progress writes wait for.
    pub projector: String,
    /// UUID namespace from which 1:1 room ids are derived; keep it secret in production so
    /// room ids cannot be computed from a pair of user ids.
    pub direct_room_namespace: uuid::Uuid,
    /// Largest STOMP frame a client may send, in bytes.
    pub max_frame_bytes: usize,
    /// Most subscriptions one connection may hold.
    pub max_subscriptions: usize,
    /// SEND frames per second one connection may sustain.
    pub send_rate_per_second: u32,
    /// SEND frames one connection may burst above the rate.
    pub send_burst: u32,
    /// Frames queued for one connection before it counts as too slow and is disconnected.
    pub outbound_queue: usize,
    /// Heart-beat interval the edge offers and asks for, in milliseconds (0: none).
    pub heart_beat_ms: u64,
    /// How often the edge renews its presence heartbeat in Redis.
    pub presence_heartbeat_ms: u64,
    /// How long the heartbeat lives without renewal: after it, receipts workers treat the edge
    /// as dead and its users as gone from their rooms.
    pub presence_ttl_ms: u64,
    /// Most push tokens one user may have; registering one more replaces their least recently
    /// registered token. Values below 1 count as 1.
    pub max_push_tokens_per_user: usize,
    /// Whether `POST /api/dev/login` hands out a token for any user id: for local development
    /// only (`scripts/up` turns it on), since it lets anyone act as anyone. Needs HS256 tokens.
    pub dev_login: bool,
    /// Whether the edge serves the web client from [`EdgeSettings::web_dir`] at `/`.
    pub web: bool,
    /// Directory of the built web client (`web/dist`, made by `npm run build` in `web/`),
    /// relative to the working directory unless absolute.
    pub web_dir: String,
}

impl EdgeSettings {
    /// [`EdgeSettings::presence_heartbeat_ms`] as a duration.
    pub fn presence_heartbeat(&self) -> Duration {
        Duration::from_millis(self.presence_heartbeat_ms)
    }

    /// [`EdgeSettings::presence_ttl_ms`] as a duration.
    pub fn presence_ttl(&self) -> Duration {
        Duration::from_millis(self.presence_ttl_ms)
    }

    /// [`EdgeSettings::append_retry_ms`] as a duration.
    pub fn append_retry(&self) -> Duration {
        Duration::from_millis(self.append_retry_ms)
    }

    /// [`EdgeSettings::append_attempt_timeout_ms`] as a duration.
    pub fn append_attempt_timeout(&self) -> Duration {
        Duration::from_millis(self.append_attempt_timeout_ms.max(100))
    }

    /// [`EdgeSettings::read_your_writes_timeout_ms`] as a duration.
    pub fn read_your_writes_timeout(&self) -> Duration {
        Duration::from_millis(self.read_your_writes_timeout_ms)
    }

    /// [`EdgeSettings::read_catch_up_ms`] as a duration.
    pub fn read_catch_up(&self) -> Duration {
        Duration::from_millis(self.read_catch_up_ms)
    }
}

impl Settings {
    /// Defaults, then `CHAT_CONFIG`, then `CHAT_*` environment variables.
    pub fn load() -> Result<Self, SettingsError> {
        settings::load(DEFAULTS)
    }
}
