//! Rebuilding the projections from the log into a fresh keyspace: every event from sequence 1 up
//! to the stream's last sequence at start, through the same planner and writes as the live
//! projector, so the result equals the live tables.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use chat_platform::connect;
use chat_schemas::cql;
use futures::StreamExt;
use tokio::time::Instant;

use crate::apply::{Applier, LogEvent};
use crate::error::ProjectorError;
use crate::retry::{Retry, Shutdown};
use crate::settings::Settings;
use crate::store::Store;
use chat_platform::backoff::Backoff;

/// How long replay waits for the next event before declaring the stream stalled.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayReport {
    /// Events read from the log (skipped ones included).
    pub events: u64,
    /// The last sequence applied: the stream's last sequence when replay started.
    pub last_seq: u64,
    /// How long reading and applying took.
    pub elapsed: Duration,
}

impl ReplayReport {
    /// Replay throughput.
    pub fn events_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.events as f64 / seconds
        } else {
            0.0
        }
    }
}

/// Replays the whole log into `keyspace` (created with the schema when missing) and records the
/// projector's progress there; events appended after the start are left for the live projector.
///
/// Uses an ordered ephemeral consumer: nothing is acked, and the live projector's durable
/// consumer and progress announcements are untouched. Replaying into a keyspace that already
/// holds a replay is harmless: every write is idempotent, so an interrupted replay (`shutdown`
/// completing, which also ends retries while Cassandra fails) can simply be run again.
pub async fn replay(
    settings: &Settings,
    keyspace: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<ReplayReport, ProjectorError> {
    let config = &settings.projector;
    config.validate()?;
    cql::validate_keyspace(keyspace)?;
    let log = settings.nats.event_log();
    let (_client, jetstream) = connect::nats(&settings.nats).await?;
    let stream_error = |e: &dyn std::fmt::Display| ProjectorError::Stream {
        stream: log.stream_name().to_owned(),
        message: e.to_string(),
    };
    let stream = jetstream
        .get_stream(log.stream_name())
        .await
        .map_err(|e| stream_error(&e))?;
    let state = stream.get_info().await.map_err(|e| stream_error(&e))?.state;

    let session = connect::cassandra(&settings.cassandra).await?;
    connect::apply_schema(&session, keyspace, &settings.cassandra).await?;
    let store = Store::prepare(session, keyspace).await?;
    let mut applier = Applier::new(store, config);
    let started = Instant::now();
    let mut report = ReplayReport {
        events: 0,
        last_seq: 0,
        elapsed: Duration::ZERO,
    };
    if state.messages == 0 {
        return Ok(report);
    }
    let target = state.last_sequence;
    tracing::info!(keyspace, target, "replaying the log");

    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: log.all_rooms(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| stream_error(&e))?;
    let mut messages = consumer.messages().await.map_err(|e| stream_error(&e))?;
    let mut shutdown = Shutdown::new(shutdown);
    let mut done = false;
    while !done {
        if shutdown.requested() {
            return Err(ProjectorError::Interrupted);
        }
        let mut events = Vec::with_capacity(config.batch_size);
        let mut batch_last = None;
        let mut read = 0_usize;
        while read < config.batch_size {
            let wait = if read == 0 {
                STALL_TIMEOUT
            } else {
                config.fetch_wait()
            };
            let message = match tokio::time::timeout(wait, messages.next()).await {
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(error))) => return Err(stream_error(&error)),
                Ok(None) => return Err(stream_error(&"the ordered consumer ended")),
                Err(_) if read == 0 => {
                    return Err(ProjectorError::Stalled {
                        waited: STALL_TIMEOUT,
                        target,
                    })
                }
                Err(_) => break,
            };
            let seq = message
                .info()
                .map_err(|e| stream_error(&e))?
                .stream_sequence;
            if seq > target {
                done = true;
                break;
            }
            read += 1;
            batch_last = Some(seq);
            events.extend(LogEvent::decode(seq, &message.payload));
            if seq == target {
                done = true;
                break;
            }
        }
        let Some(last) = batch_last else {
            continue;
        };
        let last_seq = i64::try_from(last).map_err(|e| stream_error(&e))?;
        let mut retry = Retry::new(Backoff::default(), &mut shutdown, None);
        if applier.apply(&events, last_seq, &mut retry).await.is_err() {
            return Err(ProjectorError::Interrupted);
        }
        report.events += read as u64;
        report.last_seq = last;
    }
    report.elapsed = started.elapsed();
    tracing::info!(
        keyspace,
        events = report.events,
        last_seq = report.last_seq,
        "replay finished"
    );
    Ok(report)
}
