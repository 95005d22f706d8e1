//! The receipts worker's settings: the shared sections plus `[receipts]`.

use std::time::Duration;

use chat_platform::health;
use chat_platform::settings::{self, LogSettings, NatsSettings, RedisSettings, SettingsError};
use serde::Deserialize;

/// Everything the receipts worker reads from configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// How it logs.
    pub log: LogSettings,
    /// Where the event log is.
    pub nats: NatsSettings,
    /// Where the read state is.
    pub redis: RedisSettings,
    /// How it consumes the log.
    #[serde(default)]
    pub receipts: ReceiptsSettings,
}

impl Settings {
    /// Defaults, then `CHAT_CONFIG`, then `CHAT_*` environment variables.
    pub fn load() -> Result<Self, SettingsError> {
        settings::load("")
    }
}

/// The `[receipts]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ReceiptsSettings {
    /// How many partitions share the rooms; every worker of a deployment must agree.
    pub partitions: u32,
    /// Which partition this worker applies (0-based); one process holds it at a time.
    pub partition: u32,
    /// Most events fetched and applied as one pipelined batch.
    pub batch_size: usize,
    /// How long one pull waits for the first event when the log is idle.
    pub fetch_wait_ms: u64,
    /// How long a batch waits after its first event for more while the log is busy (events
    /// wait behind its first, or its first came within this long of the previous batch):
    /// fewer, larger Redis round trips under load for up to this much more live latency. 0
    /// takes only what already arrived.
    pub linger_ms: u64,
    /// How long JetStream waits for an ack before redelivering.
    pub ack_wait_ms: u64,
    /// How often edges' heartbeats are checked; an edge whose heartbeat expired is dead and
    /// its users leave its rooms (OUT).
    pub reap_interval_ms: u64,
    /// How long a partition lease lasts without renewal (renewed every third of it); a standby
    /// takes over after it. It bounds the live outage after a worker crash, and a worker whose
    /// renewals fail for this long stops applying (its writes are fenced anyway).
    pub lease_ms: u64,
    /// Address of the `/healthz` and `/readyz` server, `host:port` (port 0 picks a free one);
    /// empty serves none.
    pub health_listen: String,
    /// How often a standby tries to take the lease: the rest of the take-over delay.
    pub standby_poll_ms: u64,
    /// Test hook, inert at 0: after applying a batch that holds this stream sequence, the
    /// process aborts before publishing, as a crash at that point would. Only for the fault
    /// tests; never set it in a deployment.
    pub test_crash_after_apply: u64,
    /// Adds the `Chat-Hop-Times` header to room views (when each event was stored, read,
    /// applied and published), for the benchmark's per-hop timing. Off in deployments: it
    /// costs a clock read per stage and a header per view.
    pub hop_timing: bool,
    /// Publishes a batch of CHATs' views from the rooms held in memory while Redis applies
    /// them, instead of after Redis answers: a Redis round trip less on the live path, each
    /// told outcome checked against Redis's answer (docs/receipts.md, "Views from memory").
    pub publish_from_memory: bool,
}

impl Default for ReceiptsSettings {
    fn default() -> Self {
        Self {
            partitions: 1,
            partition: 0,
            batch_size: 256,
            fetch_wait_ms: 200,
            linger_ms: 0,
            ack_wait_ms: 10_000,
            reap_interval_ms: 5_000,
            lease_ms: 3_000,
            health_listen: "127.0.0.1:9182".to_owned(),
            standby_poll_ms: 250,
            test_crash_after_apply: 0,
            hop_timing: false,
            publish_from_memory: true,
        }
    }
}

/// A `[receipts]` value outside what the receipts can run with.
pub use chat_platform::settings::InvalidSetting as InvalidSettings;

impl ReceiptsSettings {
    /// Checks every value against the bounds the worker relies on.
    pub fn validate(&self) -> Result<(), InvalidSettings> {
        let check = |ok, key, reason| settings::require("receipts", ok, key, reason);
        check(
            (1..=1_024).contains(&self.partitions),
            "partitions",
            "1 to 1024",
        )?;
        check(
            self.partition < self.partitions,
            "partition",
            "below partitions",
        )?;
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
            (1_000..=600_000).contains(&self.ack_wait_ms),
            "ack_wait_ms",
            "1000 to 600000",
        )?;
        check(
            (100..=600_000).contains(&self.reap_interval_ms),
            "reap_interval_ms",
            "100 to 600000",
        )?;
        check(
            (1_000..=600_000).contains(&self.lease_ms),
            "lease_ms",
            "1000 to 600000",
        )?;
        check(
            (50..=60_000).contains(&self.standby_poll_ms),
            "standby_poll_ms",
            "50 to 60000",
        )?;
        check(
            health::valid_listen(&self.health_listen),
            "health_listen",
            "empty or host:port",
        )
    }

    /// The durable consumer of this worker's partition, e.g. `receipts-0-of-1`.
    pub fn consumer(&self) -> String {
        consumer_name(self.partition, self.partitions)
    }

    /// [`ReceiptsSettings::linger_ms`] as a duration.
    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.linger_ms)
    }

    /// [`ReceiptsSettings::fetch_wait_ms`] as a duration.
    pub fn fetch_wait(&self) -> Duration {
        Duration::from_millis(self.fetch_wait_ms)
    }

    /// [`ReceiptsSettings::ack_wait_ms`] as a duration.
    pub fn ack_wait(&self) -> Duration {
        Duration::from_millis(self.ack_wait_ms)
    }

    /// [`ReceiptsSettings::reap_interval_ms`] as a duration.
    pub fn reap_interval(&self) -> Duration {
        Duration::from_millis(self.reap_interval_ms)
    }

    /// [`ReceiptsSettings::lease_ms`] as a duration.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    /// [`ReceiptsSettings::standby_poll_ms`] as a duration.
    pub fn standby_poll(&self) -> Duration {
        Duration::from_millis(self.standby_poll_ms)
    }
}

/// The consumer name of `partition` out of `partitions`.
pub fn consumer_name(partition: u32, partitions: u32) -> String {
    format!("receipts-{partition}-of-{partitions}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_partitions_are_bounded() {
        let d = ReceiptsSettings::default();
        assert_eq!(d.validate(), Ok(()));
        assert_eq!(d.consumer(), "receipts-0-of-1");
        let invalid = ReceiptsSettings {
            partition: 2,
            partitions: 2,
            ..d
        };
        assert_eq!(invalid.validate().map_err(|e| e.key), Err("partition"));
    }
}
