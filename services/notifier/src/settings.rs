//! The notifier's settings: the shared sections plus `[notifier]`.

use std::path::PathBuf;
use std::time::Duration;

use chat_platform::health;
use chat_platform::settings::{
    self, CassandraSettings, LogSettings, NatsSettings, RedisSettings, SettingsError,
};
use serde::Deserialize;

use crate::fcm::RetryPolicy;

/// Everything the notifier reads from configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// How it logs.
    pub log: LogSettings,
    /// Where the event log is.
    pub nats: NatsSettings,
    /// Unread sets (who gets a push), badges, and what was already sent.
    pub redis: RedisSettings,
    /// Room names, device tokens and mutes.
    pub cassandra: CassandraSettings,
    /// FCM and the consumer.
    #[serde(default)]
    pub notifier: NotifierSettings,
}

impl Settings {
    /// Defaults, then `CHAT_CONFIG`, then `CHAT_*` environment variables.
    pub fn load() -> Result<Self, SettingsError> {
        settings::load("")
    }
}

/// The `[notifier]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct NotifierSettings {
    /// FCM's base URL: `https://fcm.googleapis.com` in production; the local emulator by
    /// default.
    pub fcm_base_url: String,
    /// The service account key (JSON) whose project receives the pushes; its `token_uri` is
    /// where access tokens come from.
    pub service_account_file: PathBuf,
    /// Durable consumer name.
    pub consumer: String,
    /// Most requests to FCM at once.
    pub concurrency: usize,
    /// Most events being worked on at once (also the consumer's `max_ack_pending`).
    pub events_in_flight: usize,
    /// Most attempts per push, the first included.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt (with jitter) up to `max_backoff_ms`.
    pub initial_backoff_ms: u64,
    /// Longest delay between attempts, unless FCM's `Retry-After` asks for more.
    pub max_backoff_ms: u64,
    /// Timeout of one request to FCM.
    pub request_timeout_ms: u64,
    /// How long one pull waits for the first event when the log is idle.
    pub fetch_wait_ms: u64,
    /// How long JetStream waits for an event's ack before redelivering (in-progress events
    /// are kept alive meanwhile).
    pub ack_wait_ms: u64,
    /// How long a CHAT waits for the receipts worker to have applied it (its unread set names
    /// who gets a push) before it is handed back for later.
    pub receipts_wait_ms: u64,
    /// How long the record of who already got an event's push is kept: the window in which a
    /// redelivered event sends no duplicate.
    pub sent_record_seconds: u64,
    /// Address of the `/healthz` and `/readyz` server, `host:port` (port 0 picks a free one);
    /// empty serves none.
    pub health_listen: String,
}

impl Default for NotifierSettings {
    fn default() -> Self {
        Self {
            fcm_base_url: "http://127.0.0.1:9099".to_owned(),
            service_account_file: PathBuf::from("infra/fcm-emulator/service-account.json"),
            consumer: "notifier".to_owned(),
            concurrency: 64,
            events_in_flight: 256,
            max_attempts: 5,
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            request_timeout_ms: 10_000,
            fetch_wait_ms: 200,
            ack_wait_ms: 30_000,
            receipts_wait_ms: 30_000,
            sent_record_seconds: 7 * 24 * 3600,
            health_listen: "127.0.0.1:9183".to_owned(),
        }
    }
}

/// A `[notifier]` value outside what the notifier can run with.
pub use chat_platform::settings::InvalidSetting as InvalidSettings;

impl NotifierSettings {
    /// Checks every value against the bounds the notifier relies on.
    pub fn validate(&self) -> Result<(), InvalidSettings> {
        let check = |ok, key, reason| settings::require("notifier", ok, key, reason);
        check(
            self.fcm_base_url.starts_with("http://") || self.fcm_base_url.starts_with("https://"),
            "fcm_base_url",
            "an http:// or https:// URL",
        )?;
        check(
            !self.consumer.is_empty()
                && self
                    .consumer
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "consumer",
            "[A-Za-z0-9_-]+",
        )?;
        check(
            (1..=1_024).contains(&self.concurrency),
            "concurrency",
            "1 to 1024",
        )?;
        check(
            (1..=10_000).contains(&self.events_in_flight),
            "events_in_flight",
            "1 to 10000",
        )?;
        check(
            (1..=20).contains(&self.max_attempts),
            "max_attempts",
            "1 to 20",
        )?;
        check(
            self.initial_backoff_ms >= 1 && self.initial_backoff_ms <= self.max_backoff_ms,
            "initial_backoff_ms",
            "at least 1 and at most max_backoff_ms",
        )?;
        check(
            (1_000..=600_000).contains(&self.ack_wait_ms),
            "ack_wait_ms",
            "1000 to 600000",
        )?;
        check(
            (1..=30_000).contains(&self.fetch_wait_ms),
            "fetch_wait_ms",
            "1 to 30000",
        )?;
        check(
            self.request_timeout_ms >= 1,
            "request_timeout_ms",
            "at least 1",
        )?;
        check(
            self.sent_record_seconds >= 60,
            "sent_record_seconds",
            "at least 60",
        )?;
        check(
            health::valid_listen(&self.health_listen),
            "health_listen",
            "empty or host:port",
        )
    }

    /// How sends are retried.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            initial: Duration::from_millis(self.initial_backoff_ms),
            cap: Duration::from_millis(self.max_backoff_ms),
        }
    }

    /// [`NotifierSettings::request_timeout_ms`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// [`NotifierSettings::fetch_wait_ms`] as a duration.
    pub fn fetch_wait(&self) -> Duration {
        Duration::from_millis(self.fetch_wait_ms)
    }

    /// [`NotifierSettings::ack_wait_ms`] as a duration.
    pub fn ack_wait(&self) -> Duration {
        Duration::from_millis(self.ack_wait_ms)
    }

    /// [`NotifierSettings::receipts_wait_ms`] as a duration.
    pub fn receipts_wait(&self) -> Duration {
        Duration::from_millis(self.receipts_wait_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(NotifierSettings::default().validate(), Ok(()));
        let bad = NotifierSettings {
            fcm_base_url: "fcm.googleapis.com".into(),
            ..NotifierSettings::default()
        };
        assert_eq!(bad.validate().map_err(|e| e.key), Err("fcm_base_url"));
    }
}
