//! Why the projector could not start or a replay could not finish.

use std::time::Duration;

use chat_platform::connect::ConnectError;
use chat_platform::health::HealthError;
use chat_schemas::cql::InvalidKeyspace;

use crate::lease::LeaseError;
use crate::settings::InvalidSettings;
use crate::store::StoreError;

/// The projector could not start, or a replay could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    /// A `[projector]` setting is out of bounds.
    #[error(transparent)]
    Settings(#[from] InvalidSettings),
    /// The replay keyspace name is not a plain CQL name.
    #[error(transparent)]
    Keyspace(#[from] InvalidKeyspace),
    /// NATS or Cassandra could not be reached or prepared.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The subscription to awaited sequences could not be made.
    #[error("cannot subscribe to awaited sequences: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
    /// The health server could not start.
    #[error(transparent)]
    Health(#[from] HealthError),
    /// The lease bucket could not be created.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// The statements could not be prepared.
    #[error("cannot prepare the projector's statements: {0}")]
    Store(#[from] StoreError),
    /// The durable consumer could not be created.
    #[error("cannot create consumer {name} on stream {stream}: {message}")]
    Consumer {
        /// The durable name.
        name: String,
        /// The stream.
        stream: String,
        /// What JetStream reported.
        message: String,
    },
    /// Pulling a batch failed.
    #[error("cannot fetch from the log: {0}")]
    Fetch(String),
    /// The stream could not be read (replay).
    #[error("cannot read stream {stream}: {message}")]
    Stream {
        /// The stream.
        stream: String,
        /// What JetStream reported.
        message: String,
    },
    /// The stream stopped delivering before replay reached its last sequence.
    #[error("no event arrived for {waited:?} before reaching sequence {target}")]
    Stalled {
        /// How long replay waited.
        waited: Duration,
        /// The sequence replay was reading up to.
        target: u64,
    },
    /// Asked to stop before the replay finished; running it again completes it.
    #[error("interrupted before the replay finished")]
    Interrupted,
}
