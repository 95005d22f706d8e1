//! The running projector: a durable pull consumer on every room subject, applied batch by batch,
//! each batch acked and announced only once Cassandra has all of it.

use std::future::Future;
use std::sync::Arc;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::message::Acker;
use async_nats::jetstream::stream::Stream;
use async_nats::jetstream::AckKind;
use chat_platform::connect;
use chat_platform::health::{self, Activity, HealthServer, Probe, Report};
use chat_schemas::EventLog;
use futures::StreamExt;
use scylla::client::session::Session;
use tokio::time::Instant;

use crate::apply::{Applier, LogEvent};
use crate::error::ProjectorError;
use crate::retry::{Keepalive, Retry, Shutdown};
use crate::settings::{ProjectorSettings, Settings};
use crate::store::Store;
use chat_platform::backoff::Backoff;

/// Runs the projector until `shutdown` completes: applies the log from where the durable consumer
/// left off, and after each batch records `projector_progress`, acks, and publishes the applied
/// sequence on the progress subject.
///
/// Creates the stream, the keyspace and the consumer when missing; a keyspace behind the
/// consumer (new, rebuilt, restored) is caught up from the log first. Returns an error only when
/// it cannot start; once running it retries every failure, and on shutdown finishes the current
/// batch (or, while Cassandra is failing, hands it back unapplied for the next run).
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ProjectorError> {
    let config = &settings.projector;
    config.validate()?;
    let log = settings.nats.event_log();
    let (client, jetstream) = connect::nats(&settings.nats).await?;
    let stream = connect::event_stream(&jetstream, &log).await?;
    let session = connect::cassandra(&settings.cassandra).await?;
    let keyspace = &settings.cassandra.keyspace;
    connect::apply_schema(&session, keyspace, &settings.cassandra).await?;
    let store = Store::prepare(session.clone(), keyspace).await?;
    let consumer = durable_consumer(&stream, &store, config, &log).await?;

    let activity = Arc::new(Activity::default());
    let probe = readiness(
        client.clone(),
        jetstream,
        log.stream_name().to_owned(),
        session,
        activity.clone(),
    );
    let _health = HealthServer::start(&config.health_listen, Arc::new(probe)).await?;
    let mut applier = Applier::new(store, config);
    let mut shutdown = Shutdown::new({
        let activity = activity.clone();
        async move {
            shutdown.await;
            activity.stopping();
        }
    });
    let progress_subject = log.progress_subject(&config.name);
    let mut fetch_backoff = Backoff::default();
    tracing::info!(
        name = %config.name,
        stream = log.stream_name(),
        keyspace = %keyspace,
        batch_size = config.batch_size,
        "projector running"
    );
    while !shutdown.requested() {
        let batch = match fetch(&consumer, config).await {
            Ok(batch) => {
                fetch_backoff.reset();
                batch
            }
            Err(error) => {
                activity.failed(&error);
                let delay = fetch_backoff.next_delay();
                let retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                tracing::warn!(%error, retry_in_ms, "cannot fetch from the log");
                if shutdown.sleep_until(Instant::now() + delay).await.is_err() {
                    break;
                }
                continue;
            }
        };
        let Some(last) = batch.ackers.last() else {
            activity.progressed();
            continue;
        };
        if let Some(last_seq) = batch.last_seq {
            let keepalive = Keepalive::new(&batch.ackers, config.ack_wait(), batch.fetched);
            let mut retry = Retry::new(Backoff::default(), &mut shutdown, Some(keepalive));
            if applier
                .apply(&batch.events, last_seq, &mut retry)
                .await
                .is_err()
            {
                // Handing the batch back now spares the next run the ack wait.
                for acker in &batch.ackers {
                    if let Err(error) = acker.ack_with(AckKind::Nak(None)).await {
                        tracing::debug!(%error, "cannot hand back an unapplied event");
                    }
                }
                tracing::warn!(
                    last_seq,
                    "stopping with a batch unapplied; it will be redelivered"
                );
                break;
            }
        }
        if let Err(error) = last.double_ack().await {
            tracing::warn!(%error, "ack failed; the batch will be redelivered and applied again");
        }
        if let Some(last_seq) = batch.last_seq {
            let announced = client
                .publish(progress_subject.clone(), last_seq.to_string().into())
                .await;
            if let Err(error) = announced {
                tracing::warn!(%error, last_seq, "cannot announce progress");
            }
        }
        activity.progressed();
    }
    tracing::info!(name = %config.name, "projector stopped");
    Ok(())
}

/// The projector's readiness: it needs NATS (JetStream answering for its stream) to read the
/// log, Cassandra to write the projections, and its loop going round (a batch stuck in retries
/// shows here after [`health::STALLED_AFTER`]).
fn readiness(
    client: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
    stream: String,
    session: Arc<Session>,
    activity: Arc<Activity>,
) -> Probe {
    Probe::new(move || {
        let (client, jetstream, stream) = (client.clone(), jetstream.clone(), stream.clone());
        let (session, activity) = (session.clone(), activity.clone());
        async move {
            let (nats, cassandra) = tokio::join!(
                health::nats(&client, &jetstream, &stream),
                health::cassandra(&session),
            );
            let mut report = Report::default();
            report
                .require("serving", activity.serving())
                .require("nats", nats)
                .require("cassandra", cassandra)
                .require("consumer", activity.check());
            report
        }
    })
}

/// Creates or updates the durable consumer so that the keyspace misses no event.
///
/// Normally the keyspace's `projector_progress` is at or past the consumer's ack floor (progress
/// is written before the ack) and the consumer goes on where it was. A keyspace behind the ack
/// floor is not the one the consumer fed — new, rebuilt by replay, restored or wiped — and the
/// consumer is recreated to deliver from just after the keyspace's progress; events applied
/// twice change nothing.
async fn durable_consumer(
    stream: &Stream,
    store: &Store,
    config: &ProjectorSettings,
    log: &EventLog,
) -> Result<PullConsumer, ProjectorError> {
    let error = |message: String| ProjectorError::Consumer {
        name: config.name.clone(),
        stream: log.stream_name().to_owned(),
        message,
    };
    let applied = store.applied_seq(&config.name).await?;
    let mut wanted = consumer_config(config, log);
    match stream.consumer_info(&config.name).await {
        Ok(info) if applied < info.ack_floor.stream_sequence => {
            tracing::warn!(
                applied,
                acked = info.ack_floor.stream_sequence,
                "the keyspace is behind the consumer; reading the log again from after {applied}"
            );
            stream
                .delete_consumer(&config.name)
                .await
                .map_err(|e| error(e.to_string()))?;
            wanted.deliver_policy = resume_after(applied);
        }
        // An existing consumer's start cannot change; everything else is updated.
        Ok(info) => wanted.deliver_policy = info.config.deliver_policy,
        Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {
            wanted.deliver_policy = resume_after(applied);
        }
        Err(e) => return Err(error(e.to_string())),
    }
    stream
        .create_consumer(wanted)
        .await
        .map_err(|e| error(e.to_string()))
}

/// Where a new consumer starts for a keyspace that has applied the log up to `applied`.
fn resume_after(applied: u64) -> DeliverPolicy {
    match applied {
        0 => DeliverPolicy::All,
        applied => DeliverPolicy::ByStartSequence {
            start_sequence: applied + 1,
        },
    }
}

/// The durable consumer: every room subject, acked cumulatively, with no more unacked events
/// than one batch so that redeliveries come back in log order.
fn consumer_config(config: &ProjectorSettings, log: &EventLog) -> pull::Config {
    pull::Config {
        durable_name: Some(config.name.clone()),
        description: Some("Applies the chat log to the Cassandra projections".to_owned()),
        filter_subject: log.all_rooms(),
        ack_policy: AckPolicy::All,
        ack_wait: config.ack_wait(),
        max_ack_pending: i64::try_from(config.batch_size).unwrap_or(i64::MAX),
        ..Default::default()
    }
}

/// One fetched batch, decoded, with what is needed to ack it.
struct Batch {
    events: Vec<LogEvent>,
    ackers: Vec<Acker>,
    last_seq: Option<i64>,
    fetched: Instant,
}

/// Pulls up to one batch: waits up to `fetch_wait` for the first event, then takes what is
/// already there.
async fn fetch(
    consumer: &PullConsumer,
    config: &ProjectorSettings,
) -> Result<Batch, ProjectorError> {
    let mut messages = consumer
        .fetch()
        .max_messages(config.batch_size)
        .expires(config.fetch_wait())
        .messages()
        .await
        .map_err(|e| ProjectorError::Fetch(e.to_string()))?;
    let mut batch = Batch {
        events: Vec::new(),
        ackers: Vec::new(),
        last_seq: None,
        fetched: Instant::now(),
    };
    while let Some(message) = messages.next().await {
        let message = match message {
            Ok(message) => message,
            // E.g. the consumer is at its ack limit: back off rather than ask again at once.
            Err(error) if batch.ackers.is_empty() => {
                return Err(ProjectorError::Fetch(error.to_string()))
            }
            Err(error) => {
                tracing::debug!(%error, "fetch ended early");
                break;
            }
        };
        let seq = match message.info() {
            Ok(info) => info.stream_sequence,
            Err(error) => {
                let subject = message.subject.to_string();
                tracing::warn!(%error, subject, "message without JetStream metadata skipped");
                batch.ackers.push(message.split().1);
                continue;
            }
        };
        let (message, acker) = message.split();
        batch.ackers.push(acker);
        batch.last_seq = i64::try_from(seq).ok().or(batch.last_seq);
        batch.events.extend(LogEvent::decode(seq, &message.payload));
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_consumer_starts_just_after_the_keyspace_progress() {
        assert_eq!(resume_after(0), DeliverPolicy::All);
        assert_eq!(
            resume_after(41),
            DeliverPolicy::ByStartSequence { start_sequence: 42 }
        );
    }

    #[test]
    fn the_consumer_holds_at_most_one_batch_unacked() {
        let settings = ProjectorSettings {
            batch_size: 32,
            ..ProjectorSettings::default()
        };
        let config = consumer_config(&settings, &EventLog::new("S", "p."));
        assert_eq!(config.durable_name.as_deref(), Some("projector"));
        assert_eq!(config.filter_subject, "p.chat.room.*");
        assert_eq!(config.ack_policy, AckPolicy::All);
        assert_eq!(config.max_ack_pending, 32);
        assert_eq!(config.ack_wait, std::time::Duration::from_secs(10));
    }
}
