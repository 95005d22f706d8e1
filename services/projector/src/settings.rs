//! The projector's settings: the shared sections plus `[projector]`.
//!
//! Every `[projector]` key has a default ([`ProjectorSettings::default`]), so the section may be
//! left out; `CHAT_PROJECTOR__<KEY>` environment variables override single keys.

use std::time::Duration;

use chat_platform::health;
use chat_platform::settings::{self, CassandraSettings, LogSettings, NatsSettings, SettingsError};
use serde::Deserialize;

/// Everything the projector reads from configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// How it logs.
    pub log: LogSettings,
    /// Where the event log is.
    pub nats: NatsSettings,
    /// Where the projections are.
    pub cassandra: CassandraSettings,
    /// How it consumes and applies the log.
    #[serde(default)]
    pub projector: ProjectorSettings,
}

impl Settings {
    /// Defaults, then `CHAT_CONFIG`, then `CHAT_*` environment variables.
    pub fn load() -> Result<Self, SettingsError> {
        settings::load("")
    }
}

/// The `[projector]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ProjectorSettings {
    /// Durable consumer name, `projector_progress` key and progress subject token: one name per
    /// projection, with one running instance each.
    pub name: String,
    /// Most events fetched and applied as one batch; also the consumer's `max_ack_pending`, so
    /// redeliveries after a crash come back in order.
    pub batch_size: usize,
    /// How long one pull waits for the first event when the log is idle; bounds shutdown delay.
    pub fetch_wait_ms: u64,
    /// How long a batch waits after its first event for more while the log is busy (events
    /// wait behind its first, or its first came within this long of the previous batch):
    /// fewer Cassandra requests, far enough apart for its request threads to stop spinning. A
    /// lone write never waits, nor one an edge awaits for read-your-writes (it ends the
    /// linger); others reach history up to this much later. 0 takes only what already arrived.
    pub linger_ms: u64,
    /// Most Cassandra requests in flight at once: groups of writes, and the reads of a batch.
    pub max_in_flight: usize,
    /// Length of a history time bucket (`messages` partition), in seconds.
    pub bucket_seconds: u64,
    /// How long JetStream waits for an ack before redelivering.
    pub ack_wait_ms: u64,
    /// Most rooms whose state is cached between batches; the cache is emptied beyond it.
    pub cache_rooms: usize,
    /// How long the active process's lease lasts without renewal (renewed every third of it):
    /// a standby takes over at most about this long after the active process died.
    pub lease_ms: u64,
    /// How often a standby tries to take the lease: the rest of the take-over delay.
    pub standby_poll_ms: u64,
    /// Address of the `/healthz` and `/readyz` server, `host:port` (port 0 picks a free one);
    /// empty serves none.
    pub health_listen: String,
}

impl Default for ProjectorSettings {
    fn default() -> Self {
        Self {
            name: "projector".to_owned(),
            batch_size: 256,
            fetch_wait_ms: 100,
            linger_ms: 50,
            max_in_flight: 64,
            bucket_seconds: 86_400,
            ack_wait_ms: 10_000,
            cache_rooms: 100_000,
            lease_ms: 3_000,
            standby_poll_ms: 250,
            health_listen: "127.0.0.1:9181".to_owned(),
        }
    }
}

/// A `[projector]` value outside what the projector can run with.
pub use chat_platform::settings::InvalidSetting as InvalidSettings;

impl ProjectorSettings {
    /// Checks every value against the bounds the projector relies on.
    pub fn validate(&self) -> Result<(), InvalidSettings> {
        let check = |ok, key, reason| settings::require("projector", ok, key, reason);
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        check(name_ok, "name", "1-64 characters of [A-Za-z0-9_-]")?;
        check(
            (1..=10_000).contains(&self.batch_size),
            "batch_size",
            "1 to 10000",
        )?;
        check(
            (1..=30_000).contains(&self.fetch_wait_ms),
            "fetch_wait_ms",
            "1 to 30000",
        )?;
        check(self.linger_ms <= 1_000, "linger_ms", "0 to 1000")?;
        check(
            (1..=4_096).contains(&self.max_in_flight),
            "max_in_flight",
            "1 to 4096",
        )?;
        check(self.bucket_seconds >= 1, "bucket_seconds", "at least 1")?;
        check(
            (1_000..=600_000).contains(&self.ack_wait_ms),
            "ack_wait_ms",
            "1000 to 600000",
        )?;
        check(self.cache_rooms >= 1, "cache_rooms", "at least 1")?;
        check(
            (1_000..=60_000).contains(&self.lease_ms),
            "lease_ms",
            "1000 to 60000",
        )?;
        check(
            (50..=60_000).contains(&self.standby_poll_ms) && self.standby_poll_ms < self.lease_ms,
            "standby_poll_ms",
            "50 to 60000, and below lease_ms",
        )?;
        check(
            health::valid_listen(&self.health_listen),
            "health_listen",
            "empty or host:port",
        )
    }

    /// [`ProjectorSettings::linger_ms`] as a duration.
    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.linger_ms)
    }

    /// [`ProjectorSettings::fetch_wait_ms`] as a duration.
    pub fn fetch_wait(&self) -> Duration {
        Duration::from_millis(self.fetch_wait_ms)
    }

    /// [`ProjectorSettings::ack_wait_ms`] as a duration.
    pub fn ack_wait(&self) -> Duration {
        Duration::from_millis(self.ack_wait_ms)
    }

    /// [`ProjectorSettings::lease_ms`] as a duration.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    /// [`ProjectorSettings::standby_poll_ms`] as a duration.
    pub fn standby_poll(&self) -> Duration {
        Duration::from_millis(self.standby_poll_ms)
    }

    /// [`ProjectorSettings::bucket_seconds`] in milliseconds, the unit of event times.
    pub fn bucket_millis(&self) -> i64 {
        i64::try_from(self.bucket_seconds.saturating_mul(1_000)).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(ProjectorSettings::default().validate(), Ok(()));
    }

    #[test]
    fn out_of_bounds_values_name_their_key() {
        let invalid = |s: ProjectorSettings| s.validate().map_err(|e| e.key);
        let d = ProjectorSettings::default;
        assert_eq!(
            invalid(ProjectorSettings {
                linger_ms: 1_001,
                ..d()
            }),
            Err("linger_ms")
        );
        assert_eq!(
            invalid(ProjectorSettings {
                name: "a.b".into(),
                ..d()
            }),
            Err("name")
        );
        assert_eq!(
            invalid(ProjectorSettings {
                batch_size: 0,
                ..d()
            }),
            Err("batch_size")
        );
        assert_eq!(
            invalid(ProjectorSettings {
                max_in_flight: 0,
                ..d()
            }),
            Err("max_in_flight")
        );
        assert_eq!(
            invalid(ProjectorSettings {
                bucket_seconds: 0,
                ..d()
            }),
            Err("bucket_seconds")
        );
        assert_eq!(
            invalid(ProjectorSettings {
                ack_wait_ms: 10,
                ..d()
            }),
            Err("ack_wait_ms")
        );
        assert_eq!(
            invalid(ProjectorSettings {
                lease_ms: 500,
                ..d()
            }),
            Err("lease_ms")
        );
        assert_eq!(
            invalid(ProjectorSettings {
                lease_ms: 1_000,
                standby_poll_ms: 1_000,
                ..d()
            }),
            Err("standby_poll_ms")
        );
    }
}
