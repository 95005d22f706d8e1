//! The running worker: holds its partition's lease, applies the log from where its durable
//! consumer left off, publishes what changed, and reaps the presence of dead edges.

use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::message::Acker;
use async_nats::jetstream::stream::Stream;
use async_nats::jetstream::AckKind;
use async_nats::Client;
use chat_platform::backoff::Backoff;
use chat_platform::connect::{self, ConnectError};
use chat_platform::health::{self, Activity, HealthError, HealthServer, Probe, Report, Role};
use chat_platform::log_order::{continuity, resume_after};
use chat_platform::pull::{Pull, PullError};
use chat_platform::redis_connection::RedisConnection;
use chat_schemas::{decode, EventLog};
use tokio_util::sync::CancellationToken;

use crate::lease::Lease;
use crate::partition::partition_of;
use crate::publish::{publications, Publication};
use crate::reaper::Reaper;
use crate::settings::{InvalidSettings, ReceiptsSettings, Settings};
use crate::state::{Fence, LoggedEvent, ReadState, ReadStateError};
use chat_read_state::ReadKeys;

/// The worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A setting is out of bounds.
    #[error(transparent)]
    Settings(#[from] InvalidSettings),
    /// A server is unreachable.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The health server could not start.
    #[error(transparent)]
    Health(#[from] HealthError),
    /// Redis failed while starting.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The durable consumer cannot be set up.
    #[error("consumer {name} on stream {stream}: {message}")]
    Consumer {
        /// Consumer name.
        name: String,
        /// Stream name.
        stream: String,
        /// What went wrong.
        message: String,
    },
}

/// Runs the worker until `shutdown` completes. While another process holds the partition, it
/// waits as a standby; a worker that loses its lease (a stall longer than the lease, Redis
/// flushed) stops applying and goes back to waiting, so two processes never write one room.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WorkerError> {
    let config = settings.receipts.clone();
    config.validate()?;
    let log = settings.nats.event_log();
    let (client, jetstream) = connect::nats(&settings.nats).await?;
    let stream = connect::event_stream(&jetstream, &log).await?;
    let redis = connect::redis(&settings.redis).await?;
    let keys = ReadKeys::new(settings.redis.key_prefix.clone());
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
        redis.clone(),
        activity.clone(),
        role.clone(),
    );
    let _health = HealthServer::start(&config.health_listen, Arc::new(probe)).await?;

    let consumer_name = config.consumer();
    metrics::gauge!("chat_receipts_partitions").set(f64::from(config.partitions));
    // Shown from the start, at 0, so that an alert on any increase needs no absent() case.
    metrics::counter!("chat_receipts_mispredicted_total").absolute(0);
    // 1 while this process applies its partition: an alert finds a partition nobody applies.
    let owned = metrics::gauge!("chat_receipts_partition_active", "partition" => config.partition.to_string());
    let reaper = tokio::spawn(reap_forever(
        Reaper {
            redis: redis.clone(),
            keys: keys.clone(),
            jetstream,
            log: log.clone(),
            partition: config.partition,
            partitions: config.partitions,
        },
        config.reap_interval(),
        stop.clone(),
    ));
    let mut applier = Applier {
        state: ReadState::new(redis.clone(), keys.clone()),
        nats: client,
        stream: stream.clone(),
        log: log.clone(),
        config: config.clone(),
        silent_until: 0,
        activity,
    };
    let result = loop {
        role.step_down();
        owned.set(0.0);
        let Some(lease) = acquire(&redis, &keys, &consumer_name, &config, &role, &stop).await?
        else {
            break Ok(());
        };
        applier.activity.progressed();
        role.active();
        owned.set(1.0);
        let mut backoff = Backoff::default();
        while !stop.is_cancelled() && !lease.lost.is_cancelled() {
            let setup = durable_consumer(&stream, redis.clone(), &keys, &config, &log).await;
            let (consumer, start) = match setup {
                Ok(found) => found,
                Err(error) => {
                    tracing::warn!(%error, "cannot set up the consumer; retrying");
                    applier.activity.failed(&error);
                    pause(&mut backoff, &stop).await;
                    continue;
                }
            };
            backoff.reset();
            applier.silent_until = applier.silent_until.max(start.silent_until);
            applier.state.forget_rooms();
            tracing::info!(
                consumer = %consumer_name,
                stream = log.stream_name(),
                from_seq = start.next,
                "receipts running"
            );
            let fence = lease.fence();
            let end = applier
                .run(consumer, start.next, &stop, &lease.lost, &fence)
                .await;
            if end == End::Halted {
                break;
            }
        }
        if lease.lost.is_cancelled() && !stop.is_cancelled() {
            tracing::error!(consumer = %consumer_name, "lost the partition lease; standing by");
            continue;
        }
        lease.release().await;
        break Ok(());
    };
    reaper.abort();
    tracing::info!(consumer = %consumer_name, "receipts stopped");
    result
}

/// The worker's readiness: it needs NATS (JetStream answering for its stream) and Redis, which
/// holds both its state and its lease. A standby (another process holds the partition) is
/// ready, to take over; an active worker must also have its loop going round.
fn readiness(
    client: Client,
    jetstream: async_nats::jetstream::Context,
    stream: String,
    redis: RedisConnection,
    activity: Arc<Activity>,
    role: Arc<Role>,
) -> Probe {
    Probe::new(move || {
        let (client, jetstream, stream) = (client.clone(), jetstream.clone(), stream.clone());
        let (redis, activity, role) = (redis.clone(), activity.clone(), role.clone());
        async move {
            let (nats, redis) = tokio::join!(
                health::nats(&client, &jetstream, &stream),
                health::redis(&redis),
            );
            let mut report = Report::default();
            report
                .require("serving", activity.serving())
                .require("nats", nats)
                .require("redis", redis);
            role.show(&mut report, &activity);
            report
        }
    })
}

/// Waits as a standby until the partition's lease is free, trying every `standby_poll_ms`
/// (also through a Redis outage); `None` when shut down first.
async fn acquire(
    redis: &RedisConnection,
    keys: &ReadKeys,
    consumer: &str,
    config: &ReceiptsSettings,
    role: &Role,
    stop: &CancellationToken,
) -> Result<Option<Lease>, WorkerError> {
    let mut announced = false;
    loop {
        match Lease::try_acquire(redis, keys.lease(consumer), keys.epochs(), config.lease()).await {
            Ok(Some(lease)) => return Ok(Some(lease)),
            Ok(None) => {
                role.standby();
                if !announced {
                    tracing::info!(%consumer, "another worker holds this partition; standing by");
                    announced = true;
                }
            }
            Err(error) => tracing::warn!(%error, %consumer, "cannot reach the lease; retrying"),
        }
        tokio::select! {
            () = stop.cancelled() => return Ok(None),
            () = tokio::time::sleep(config.standby_poll()) => {}
        }
    }
}

async fn reap_forever(mut reaper: Reaper, every: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        if let Err(error) = reaper.reap().await {
            tracing::warn!(%error, "reaping dead edges failed; trying again");
        }
    }
}

/// Creates or updates the durable consumer so that the read state misses no event.
///
/// A holder that just took the lease recreates the consumer from just after its ack floor:
/// what the previous holder fetched but never acked is delivered again at once, in log order,
/// rather than after `ack_wait_ms` and behind newer events.
///
/// Redis holds the partition's progress, written with each batch after publishing and before
/// its ack. Progress behind the consumer's ack floor means Redis lost state (flushed, restored,
/// wiped): the consumer is recreated from just after the progress, and the events up to the old
/// ack floor are applied again silently, since clients have seen them already. A partition with
/// neither consumer nor progress applies the whole log silently up to its current end.
async fn durable_consumer(
    stream: &Stream,
    mut redis: RedisConnection,
    keys: &ReadKeys,
    config: &ReceiptsSettings,
    log: &EventLog,
) -> Result<(PullConsumer, Start), WorkerError> {
    let name = config.consumer();
    let error = |message: String| WorkerError::Consumer {
        name: name.clone(),
        stream: log.stream_name().to_owned(),
        message,
    };
    let progress: Option<u64> = redis::cmd("GET")
        .arg(keys.progress(&name))
        .query_async(&mut redis)
        .await?;
    let applied = progress.unwrap_or(0);
    let mut wanted = pull::Config {
        durable_name: Some(name.clone()),
        description: Some("Applies the chat log to unread sets and presence in Redis".into()),
        filter_subject: log.all_rooms(),
        ack_policy: AckPolicy::All,
        ack_wait: config.ack_wait(),
        max_ack_pending: i64::try_from(config.batch_size).unwrap_or(i64::MAX),
        ..Default::default()
    };
    let mut silent_until = 0;
    match stream.consumer_info(&name).await {
        Ok(info) if applied < info.ack_floor.stream_sequence => {
            silent_until = info.ack_floor.stream_sequence;
            tracing::warn!(
                applied,
                acked = silent_until,
                "the read state is behind the consumer; applying the log again from after {applied}"
            );
            stream
                .delete_consumer(&name)
                .await
                .map_err(|e| error(e.to_string()))?;
            wanted.deliver_policy = resume_after(applied);
        }
        Ok(info) => {
            wanted.deliver_policy = match info.ack_floor.stream_sequence {
                0 => info.config.deliver_policy,
                acked => resume_after(acked),
            };
            stream
                .delete_consumer(&name)
                .await
                .map_err(|e| error(e.to_string()))?;
        }
        Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {
            wanted.deliver_policy = resume_after(applied);
            if progress.is_none() {
                // A partition never run against this Redis (a new deployment, or a changed
                // partition count): what the log holds already, clients have seen.
                let mut stream = stream.clone();
                silent_until = stream
                    .info()
                    .await
                    .map_err(|e| error(e.to_string()))?
                    .state
                    .last_sequence;
            }
        }
        Err(e) => return Err(error(e.to_string())),
    }
    let consumer = stream
        .create_consumer(wanted)
        .await
        .map_err(|e| error(e.to_string()))?;
    let next = consumer.cached_info().delivered.stream_sequence + 1;
    Ok((consumer, Start { next, silent_until }))
}

/// Where a new consumer starts.
struct Start {
    /// The first sequence it delivers.
    next: u64,
    /// Events up to here are applied silently: clients have seen them already.
    silent_until: u64,
}

/// How [`Applier::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Shutdown was asked for, or the lease was lost.
    Halted,
    /// The consumer skipped events ([`chat_platform::log_order`]): nothing of the batch was
    /// applied or acked, and a consumer started again from the ack floor delivers them.
    Skipped,
}

struct Applier {
    state: ReadState,
    nats: Client,
    /// The log, to tell a jump over deleted events from skipped ones.
    stream: Stream,
    log: EventLog,
    config: ReceiptsSettings,
    silent_until: u64,
    activity: Arc<Activity>,
}

impl Applier {
    /// Applies, publishes, marks published and acks batch after batch, from sequence `next`
    /// on, until shutdown, until the lease is lost (cancelling `lost` itself when a fenced
    /// write finds it so), or until a batch does not continue the log where the previous one
    /// ended: acking it would ack the events it skipped.
    async fn run(
        &mut self,
        consumer: PullConsumer,
        mut next: u64,
        stop: &CancellationToken,
        lost: &CancellationToken,
        fence: &Fence,
    ) -> End {
        let consumer_name = self.config.consumer();
        let mut reader =
            Pull::new(consumer, self.config.batch_size).with_linger(self.config.linger());
        let mut backoff = Backoff::default();
        while !stop.is_cancelled() && !lost.is_cancelled() {
            let Batch {
                events,
                ackers,
                seqs,
                stored_us,
                read_us,
            } = match self.fetch(&mut reader).await {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(%error, "cannot fetch from the log");
                    self.activity.failed(&error);
                    if pause(&mut backoff, stop).await {
                        break;
                    }
                    continue;
                }
            };
            next = match continuity(&self.stream, &self.log.all_rooms(), next, &seqs).await {
                Ok(next) => next,
                Err(gap) => {
                    tracing::error!(%gap, "the log skipped events; reading again from the ack floor");
                    return End::Skipped;
                }
            };
            let (Some(last), Some(&last_seq)) = (ackers.last(), seqs.last()) else {
                self.activity.progressed();
                continue;
            };
            let began = std::time::Instant::now();
            let early = if self.config.publish_from_memory {
                self.state.predict(&events, self.silent_until)
            } else {
                None
            };
            // Told room views go out first, on their own: nats-server wakes for the live path
            // alone. The batch's first application is then sent to Redis before the feed entries
            // beside it, so Redis holds it before a room list can have heard of them.
            let mut first_try = None;
            if let Some(outcomes) = &early {
                let mut views = self.publications(&events, outcomes, &stored_us, read_us);
                let feeds: Vec<_> = views
                    .iter_mut()
                    .flat_map(|all| all.split_off(all.len().min(1)))
                    .collect();
                send(&self.nats, views.into_iter().flatten()).await;
                let (tried, ()) = tokio::join!(
                    self.state.apply(&events, Some(fence), self.silent_until),
                    send(&self.nats, feeds),
                );
                first_try = Some(tried);
            }
            let applied = loop {
                let result = match first_try.take() {
                    Some(tried) => tried,
                    None => {
                        self.state
                            .apply(&events, Some(fence), self.silent_until)
                            .await
                    }
                };
                if let Err(error) = &result {
                    self.activity.failed(error);
                }
                if let ControlFlow::Break(done) = settle(result, &mut backoff, stop, lost).await {
                    break done;
                }
            };
            let Some(outcomes) = applied else {
                for acker in &ackers {
                    if let Err(error) = acker.ack_with(AckKind::Nak(None)).await {
                        tracing::debug!(%error, "cannot hand back an unapplied event");
                    }
                }
                break;
            };
            backoff.reset();
            chat_platform::metrics::applied(events.len(), last_seq, began.elapsed());
            if self.config.test_crash_after_apply != 0
                && events
                    .iter()
                    .any(|e| e.seq == self.config.test_crash_after_apply)
            {
                tracing::error!(
                    seq = self.config.test_crash_after_apply,
                    "test hook: aborting after applying, before publishing what Redis answered"
                );
                std::process::abort();
            }
            if early.is_none() {
                let all = self.publications(&events, &outcomes, &stored_us, read_us);
                send(&self.nats, all.into_iter().flatten()).await;
            }
            let marked = loop {
                let result = self
                    .state
                    .published(&events, fence, &consumer_name, last_seq)
                    .await;
                if let ControlFlow::Break(done) = settle(result, &mut backoff, stop, lost).await {
                    break done;
                }
            };
            if marked.is_none() {
                break;
            }
            backoff.reset();
            if let Err(error) = last.double_ack().await {
                tracing::warn!(%error, "ack failed; the batch will be applied again (no effect)");
            }
            self.activity.progressed();
        }
        End::Halted
    }

    /// What clients must hear of `events` after `silent_until`, in log order: per event, its
    /// room view first, then its feed entries. With `hop_timing`, each room view carries when
    /// its event was stored (`stored_us`, per event), read (`read_us`), applied or told, and
    /// published.
    fn publications(
        &self,
        events: &[LoggedEvent],
        outcomes: &[crate::state::Outcome],
        stored_us: &[u64],
        read_us: u64,
    ) -> Vec<Vec<Publication>> {
        let applied_us = now_us();
        let mut batch = Vec::with_capacity(events.len());
        for (i, (event, outcome)) in events.iter().zip(outcomes).enumerate() {
            if event.seq <= self.silent_until {
                continue;
            }
            let mut all = publications(&self.log, event, outcome);
            if let (true, Some(view)) = (self.config.hop_timing, all.first_mut()) {
                let stored = stored_us.get(i).copied().unwrap_or_default();
                let times = format!("{stored} {read_us} {applied_us} {}", now_us());
                view.headers
                    .insert(EventLog::HOP_TIMES_HEADER, times.as_str());
            }
            batch.push(all);
        }
        batch
    }

    /// Reads one batch and keeps the events of this worker's rooms.
    async fn fetch(&self, reader: &mut Pull) -> Result<Batch, PullError> {
        let messages = reader
            .next_batch(self.config.fetch_wait(), self.config.batch_size)
            .await?;
        let mut batch = Batch {
            read_us: now_us(),
            ..Batch::default()
        };
        for message in messages {
            let info = message.info().ok();
            let seq = info.as_ref().map(|info| info.stream_sequence);
            let stored_us = info.map_or(0, |info| {
                u64::try_from(info.published.unix_timestamp_nanos() / 1000).unwrap_or_default()
            });
            let (message, acker) = message.split();
            batch.ackers.push(acker);
            let Some(seq) = seq else { continue };
            batch.seqs.push(seq);
            match decode(&message.payload) {
                Ok(envelope)
                    if partition_of(&envelope.room_id, self.config.partitions)
                        == self.config.partition =>
                {
                    batch.events.push(LoggedEvent { seq, envelope });
                    batch.stored_us.push(stored_us);
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, seq, "undecodable event skipped"),
            }
        }
        Ok(batch)
    }
}

/// Publishes `publications` on `nats` in order and flushes, so they are on their way to
/// nats-server when this returns.
async fn send(nats: &Client, publications: impl IntoIterator<Item = Publication>) {
    for publication in publications {
        if let Err(error) = nats
            .publish_with_headers(publication.subject, publication.headers, publication.body)
            .await
        {
            tracing::warn!(%error, "cannot publish a view event");
        }
    }
    if let Err(error) = nats.flush().await {
        tracing::warn!(%error, "cannot flush view events");
    }
}

/// One fetched batch.
#[derive(Default)]
struct Batch {
    /// The decoded events of this worker's rooms.
    events: Vec<LoggedEvent>,
    /// The ackers of every fetched message.
    ackers: Vec<Acker>,
    /// The stream sequence of every fetched message, in delivery order.
    seqs: Vec<u64>,
    /// When JetStream stored each of `events`, in microseconds since the Unix epoch.
    stored_us: Vec<u64>,
    /// When the batch was read, likewise.
    read_us: u64,
}

/// Microseconds since the Unix epoch, the unit of `Chat-Hop-Times`.
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        })
}

/// What to do after a read-state call: `Break(Some)` on success, `Continue` to call again
/// after a backoff (Redis failed), `Break(None)` to give up: shut down, or the lease was lost
/// (a fenced call cancels `lost`: another worker may be writing now).
async fn settle<T>(
    result: Result<T, ReadStateError>,
    backoff: &mut Backoff,
    stop: &CancellationToken,
    lost: &CancellationToken,
) -> ControlFlow<Option<T>> {
    match result {
        Ok(value) => ControlFlow::Break(Some(value)),
        Err(ReadStateError::Fenced) => {
            tracing::error!("the partition lease is gone; this worker stops applying");
            lost.cancel();
            ControlFlow::Break(None)
        }
        Err(error) => {
            tracing::warn!(%error, "cannot write the read state to Redis; retrying");
            chat_platform::metrics::retried();
            if lost.is_cancelled() || pause(backoff, stop).await {
                ControlFlow::Break(None)
            } else {
                ControlFlow::Continue(())
            }
        }
    }
}

/// Sleeps the next backoff delay; true when shutdown came first.
async fn pause(backoff: &mut Backoff, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(backoff.next_delay()) => false,
    }
}
