//! The running projector: one process per name applies the log at a time, holding the name's
//! lease ([`crate::lease`]); any other waits as a standby and takes over when the lease is
//! released or expires. The active process pulls from a durable consumer on every room subject
//! and applies batch by batch, each batch acked and announced only once Cassandra has all of it.

use std::future::Future;
use std::sync::Arc;

use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::message::Acker;
use async_nats::jetstream::stream::Stream;
use async_nats::jetstream::AckKind;
use chat_platform::connect;
use chat_platform::health::{self, Activity, HealthServer, Probe, Report, Role};
use chat_platform::log_order::{continuity, resume_after};
use chat_platform::pull::Pull;
use chat_schemas::EventLog;
use futures::StreamExt;
use scylla::client::session::Session;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::apply::{Applier, LogEvent};
use crate::error::ProjectorError;
use crate::lease::{self, Lease};
use crate::retry::{Keepalive, Retry, Shutdown};
use crate::settings::{ProjectorSettings, Settings};
use crate::store::Store;
use chat_platform::backoff::Backoff;
use chat_platform::watermark;

/// Runs the projector until `shutdown` completes: waits as a standby while another process
/// holds the name's lease; once it holds it, applies the log from the keyspace's progress, and
/// after each batch records `projector_progress`, acks, and publishes the applied sequence on
/// the progress subject.
///
/// Creates the stream, the lease bucket, the keyspace and the consumer when missing. Returns an
/// error only when it cannot start; once running it retries every failure. On shutdown it
/// finishes the current batch (or, while Cassandra is failing, hands it back unapplied) and
/// releases the lease, so a standby takes over at once. A process that loses its lease stops
/// applying before its next batch and stands by again.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ProjectorError> {
    let config = &settings.projector;
    config.validate()?;
    let log = settings.nats.event_log();
    let (client, jetstream) = connect::nats(&settings.nats).await?;
    let stream = connect::event_stream(&jetstream, &log).await?;
    let mut leases = lease::bucket(&jetstream, &log, config.lease()).await?;
    let session = connect::cassandra(&settings.cassandra).await?;
    let keyspace = &settings.cassandra.keyspace;
    connect::apply_schema(&session, keyspace, &settings.cassandra).await?;
    let store = Store::prepare(session.clone(), keyspace).await?;
    let awaited = awaited_sequences(&client, &log, &config.name).await?;

    let stop = CancellationToken::new();
    let activity = Arc::new(Activity::default());
    let role = Arc::new(Role::default());
    tokio::spawn({
        let (stop, activity) = (stop.clone(), activity.clone());
        async move {
            shutdown.await;
            activity.stopping();
            stop.cancel();
        }
    });
    let probe = readiness(
        client.clone(),
        jetstream.clone(),
        log.stream_name().to_owned(),
        session,
        activity.clone(),
        role.clone(),
    );
    let _health = HealthServer::start(&config.health_listen, Arc::new(probe)).await?;
    let holder = format!("{} pid {}", uuid::Uuid::new_v4(), std::process::id());
    let mut term = Term {
        progress_subject: log.progress_subject(&config.name),
        awaited,
        client,
        stream,
        log: log.clone(),
        config: config.clone(),
        applier: Applier::new(store, config),
        activity,
    };
    let mut setup_backoff = Backoff::default();
    tracing::info!(
        name = %config.name,
        stream = term.log.stream_name(),
        keyspace = %keyspace,
        batch_size = config.batch_size,
        %holder,
        "projector running"
    );
    loop {
        role.step_down();
        let Some(lease) = acquire(
            &mut leases,
            (&jetstream, &log),
            &holder,
            config,
            &role,
            &stop,
        )
        .await
        else {
            break;
        };
        role.active();
        term.activity.progressed();
        match term.run(&lease, &stop).await {
            End::Stopped => {
                lease.release().await;
                break;
            }
            End::Lost => {
                setup_backoff.reset();
                tracing::error!(name = %config.name, "lost the projector lease; standing by");
            }
            End::Yielded => {
                lease.release().await;
                role.step_down();
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(setup_backoff.next_delay()) => {}
                }
            }
        }
    }
    tracing::info!(name = %config.name, "projector stopped");
    Ok(())
}

/// Waits as a standby until the name's lease is free, trying every `standby_poll_ms` (also
/// through a NATS outage); `None` when shut down first. The bucket lives in memory, so a NATS
/// restart loses it: after a failed try it is created again in `at`.
async fn acquire(
    leases: &mut async_nats::jetstream::kv::Store,
    at: (&async_nats::jetstream::Context, &chat_schemas::EventLog),
    holder: &str,
    config: &ProjectorSettings,
    role: &Role,
    stop: &CancellationToken,
) -> Option<Lease> {
    let mut announced = false;
    while !stop.is_cancelled() {
        match Lease::try_acquire(leases, &config.name, holder, config.lease()).await {
            Ok(Some(lease)) => return Some(lease),
            Ok(None) => {
                role.standby();
                if !announced {
                    tracing::info!(name = %config.name, "another projector is active; standing by");
                    announced = true;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot reach the lease; retrying");
                // Bounded like the try itself: during a leader election this gets no answer.
                let again = lease::bucket(at.0, at.1, config.lease());
                match tokio::time::timeout(config.lease(), again).await {
                    Ok(Ok(bucket)) => *leases = bucket,
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "cannot create the lease bucket again");
                    }
                    Err(_) => tracing::warn!("no answer creating the lease bucket again"),
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(config.standby_poll()) => {}
        }
    }
    None
}

/// How a term as the active projector ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Shutdown was requested: release the lease and exit.
    Stopped,
    /// The lease was lost: stand by, applying nothing more.
    Lost,
    /// The term could not go on (the consumer could not be set up, or it skipped events): give
    /// the lease up and try again later.
    Yielded,
}

/// What an active term needs: the connections, and the applier whose room cache is valid only
/// within one term.
struct Term {
    client: async_nats::Client,
    stream: Stream,
    log: EventLog,
    config: ProjectorSettings,
    applier: Applier,
    activity: Arc<Activity>,
    progress_subject: String,
    /// The highest sequence a writer waits for: ends a batch's linger (see
    /// [`awaited_sequences`]).
    awaited: watch::Receiver<u64>,
}

impl Term {
    /// Applies the log while `lease` is held and no stop is asked for.
    ///
    /// Starts with an empty room cache and a consumer recreated from the keyspace's progress.
    /// Before each fetch and again before each batch is applied, the lease must still be held;
    /// every batch must continue the log exactly where this term's previous one ended, else
    /// another process took events from the consumer or they were lost in transit
    /// ([`chat_platform::log_order`]), and this one stops without writing: the next term reads
    /// them again from the keyspace's progress.
    async fn run(&mut self, lease: &Lease, stop: &CancellationToken) -> End {
        let config = self.config.clone();
        self.applier.forget();
        let setup = durable_consumer(&self.stream, self.applier.store(), &config, &self.log).await;
        let (consumer, mut next) = match setup {
            Ok(found) => found,
            Err(error) => {
                self.activity.failed(&error);
                tracing::warn!(%error, "cannot take over the consumer; giving the lease up");
                return End::Yielded;
            }
        };
        tracing::info!(
            name = %config.name,
            revision = lease.revision(),
            from_seq = next,
            "active: applying the log"
        );
        let mut halt = Shutdown::new({
            let (stop, lost) = (stop.clone(), lease.lost.clone());
            async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = lost.cancelled() => {}
                }
            }
        });
        let mut reader = Pull::new(consumer, config.batch_size)
            .with_linger(config.linger())
            .cut_short_by(self.awaited.clone());
        let mut fetch_backoff = Backoff::default();
        while !halt.requested() {
            if !lease.held() {
                return End::Lost;
            }
            let batch = match fetch(&mut reader, &config).await {
                Ok(batch) => {
                    fetch_backoff.reset();
                    batch
                }
                Err(error) => {
                    self.activity.failed(&error);
                    let delay = fetch_backoff.next_delay();
                    let retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                    tracing::warn!(%error, retry_in_ms, "cannot fetch from the log");
                    if halt.sleep_until(Instant::now() + delay).await.is_err() {
                        break;
                    }
                    continue;
                }
            };
            if !lease.held() {
                tracing::warn!(
                    fetched = batch.ackers.len(),
                    "the lease ran out during a fetch; the batch is left to the next holder"
                );
                return End::Lost;
            }
            next = match continuity(&self.stream, &self.log.all_rooms(), next, &batch.seqs).await {
                Ok(next) => next,
                Err(gap) => {
                    tracing::error!(
                        %gap,
                        "the log skipped events (another process took them, or they were lost \
                         in transit); stopping without applying this batch"
                    );
                    return End::Yielded;
                }
            };
            let Some(last) = batch.ackers.last() else {
                self.activity.progressed();
                continue;
            };
            if let Some(last_seq) = batch.last_seq {
                let keepalive = Keepalive::new(&batch.ackers, config.ack_wait(), batch.fetched);
                let mut retry = Retry::new(Backoff::default(), &mut halt, Some(keepalive));
                let began = std::time::Instant::now();
                if self
                    .applier
                    .apply(&batch.events, last_seq, &mut retry)
                    .await
                    .is_err()
                {
                    if !stop.is_cancelled() {
                        return End::Lost;
                    }
                    // Handing the batch back now spares the next holder the ack wait.
                    for acker in &batch.ackers {
                        if let Err(error) = acker.ack_with(AckKind::Nak(None)).await {
                            tracing::debug!(%error, "cannot hand back an unapplied event");
                        }
                    }
                    tracing::warn!(
                        last_seq,
                        "stopping with a batch unapplied; it will be redelivered"
                    );
                    return End::Stopped;
                }
                let sequence = u64::try_from(last_seq).unwrap_or_default();
                chat_platform::metrics::applied(batch.events.len(), sequence, began.elapsed());
            }
            if let Err(error) = last.double_ack().await {
                tracing::warn!(%error, "ack failed; the batch will be redelivered and applied again");
            }
            if let Some(last_seq) = batch.last_seq {
                let announced = self
                    .client
                    .publish(self.progress_subject.clone(), last_seq.to_string().into())
                    .await;
                if let Err(error) = announced {
                    tracing::warn!(%error, last_seq, "cannot announce progress");
                }
            }
            self.activity.progressed();
        }
        if stop.is_cancelled() {
            End::Stopped
        } else {
            End::Lost
        }
    }
}

/// The projector's readiness: it needs NATS (JetStream answering for its stream; NATS also
/// holds its lease) to read the log, and Cassandra to write the projections. A standby is
/// ready, to take over; an active projector must also have its loop going round (a batch stuck
/// in retries shows here after [`health::STALLED_AFTER`]).
fn readiness(
    client: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
    stream: String,
    session: Arc<Session>,
    activity: Arc<Activity>,
    role: Arc<Role>,
) -> Probe {
    Probe::new(move || {
        let (client, jetstream, stream) = (client.clone(), jetstream.clone(), stream.clone());
        let (session, activity, role) = (session.clone(), activity.clone(), role.clone());
        async move {
            let (nats, cassandra) = tokio::join!(
                health::nats(&client, &jetstream, &stream),
                health::cassandra(&session),
            );
            let mut report = Report::default();
            report
                .require("serving", activity.serving())
                .require("nats", nats)
                .require("cassandra", cassandra);
            role.show(&mut report, &activity);
            report
        }
    })
}

/// Creates the durable consumer afresh for a new term and returns it with the first sequence
/// it will deliver.
///
/// It delivers from just after the keyspace's `projector_progress`, which is written after a
/// batch's writes and before its ack, so every event up to it is in the keyspace. What the
/// previous holder fetched but never acked thus comes again at once and in log order, rather
/// than after `ack_wait_ms`; events applied twice change nothing. A keyspace behind the
/// consumer's ack floor — new, rebuilt by replay, restored or wiped — was not the one the
/// consumer fed, and is caught up from the log the same way.
async fn durable_consumer(
    stream: &Stream,
    store: &Store,
    config: &ProjectorSettings,
    log: &EventLog,
) -> Result<(PullConsumer, u64), ProjectorError> {
    let error = |message: String| ProjectorError::Consumer {
        name: config.name.clone(),
        stream: log.stream_name().to_owned(),
        message,
    };
    let applied = store.applied_seq(&config.name).await?;
    match stream.consumer_info(&config.name).await {
        Ok(info) => {
            if applied < info.ack_floor.stream_sequence {
                tracing::warn!(
                    applied,
                    acked = info.ack_floor.stream_sequence,
                    "the keyspace is behind the consumer; reading the log again from after {applied}"
                );
            }
            stream
                .delete_consumer(&config.name)
                .await
                .map_err(|e| error(e.to_string()))?;
        }
        Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {}
        Err(e) => return Err(error(e.to_string())),
    }
    let mut wanted = consumer_config(config, log);
    wanted.deliver_policy = resume_after(applied);
    let consumer = stream
        .create_consumer(wanted)
        .await
        .map_err(|e| error(e.to_string()))?;
    let next = consumer.cached_info().delivered.stream_sequence + 1;
    Ok((consumer, next))
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
    /// The stream sequence of every message, in delivery order.
    seqs: Vec<u64>,
    last_seq: Option<i64>,
    fetched: Instant,
}

/// Reads up to one batch from the term's pull: waits up to `fetch_wait` for the first event,
/// then takes what has arrived behind it.
async fn fetch(reader: &mut Pull, config: &ProjectorSettings) -> Result<Batch, ProjectorError> {
    let messages = reader
        .next_batch(config.fetch_wait(), config.batch_size)
        .await
        .map_err(|e| ProjectorError::Fetch(e.to_string()))?;
    let mut batch = Batch {
        events: Vec::new(),
        ackers: Vec::new(),
        seqs: Vec::new(),
        last_seq: None,
        fetched: Instant::now(),
    };
    for message in messages {
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
        batch.seqs.push(seq);
        batch.last_seq = i64::try_from(seq).ok().or(batch.last_seq);
        batch.events.extend(LogEvent::decode(seq, &message.payload));
    }
    Ok(batch)
}

/// The highest sequence writers have said they wait for (on
/// [`EventLog::awaited_subject`]), kept current by a task that ends with the NATS connection
/// or once nobody reads the value: a batch holding that sequence is applied without lingering,
/// so read-your-writes does not pay for the linger.
async fn awaited_sequences(
    client: &async_nats::Client,
    log: &EventLog,
    projector: &str,
) -> Result<watch::Receiver<u64>, async_nats::SubscribeError> {
    let mut said = client.subscribe(log.awaited_subject(projector)).await?;
    let (awaited, receiver) = watch::channel(0);
    tokio::spawn(async move {
        while let Some(message) = said.next().await {
            if let Some(seq) = watermark::parse_said(&message.payload) {
                watermark::raise(&awaited, seq);
            }
            if awaited.is_closed() {
                break;
            }
        }
    });
    Ok(receiver)
}

#[cfg(test)]
mod tests {
    use super::*;

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
