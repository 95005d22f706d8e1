//! The running notifier: a durable consumer of the log whose events are worked on
//! concurrently (pushes need no order), each acked once every push it owes is sent, given up
//! or found unnecessary.
//!
//! Once per (event, token): after FCM accepts a push, the token is added to the event's sent
//! record in Redis; a redelivered event skips the tokens already there. FCM has no idempotency
//! key, so a push whose answer never came (a timeout, or a crash of this process between the
//! request and that write) may have been delivered: sent again, it is marked `resent` in `data`
//! so the app shows it only if it has not shown that message yet.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::AckKind;
use chat_platform::connect::{self, ConnectError};
use chat_platform::health::{self, Activity, HealthError, HealthServer, Probe, Report};
use chat_platform::pull::Pull;
use chat_platform::redis_connection::RedisConnection;
use chat_read_state::{ReadKeys, UnreadCounts};
use chat_schemas::{decode, Envelope};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audience::{audience, Audience, AudienceError};
use crate::directory::{Directory, DirectoryError};
use crate::fcm::{mark_resent, message, AuthError, Credentials, Delivery, FcmClient, TlsError};
use crate::settings::{InvalidSettings, NotifierSettings, Settings};

/// The notifier could not start.
#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    /// A setting is out of bounds.
    #[error(transparent)]
    Settings(#[from] InvalidSettings),
    /// A server is unreachable.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// Cassandra statements cannot be prepared.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The health server could not start.
    #[error(transparent)]
    Health(#[from] HealthError),
    /// The FCM credentials are unusable.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The HTTP client cannot be built.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The durable consumer cannot be set up.
    #[error("consumer {name}: {message}")]
    Consumer {
        /// Consumer name.
        name: String,
        /// What went wrong.
        message: String,
    },
}

/// Recipients of one event worked on at once (their sends share the FCM concurrency limit).
const USERS_AT_ONCE: usize = 32;

/// How long recording a sent push is retried: handing the event back after FCM accepted the
/// push would send it again, and a Redis Cluster failover takes a few seconds.
const RECORD_PATIENCE: Duration = Duration::from_secs(15);

/// The member of an event's sent record that says sending it has begun: it holds a space, which
/// no device token does (the edge refuses them), so it is never taken for one.
const SENDING_BEGUN: &str = "sending begun";

/// Recipients whose mutes and tokens are read in one Cassandra query each.
const LOOKUP_CHUNK: usize = 100;

/// The pushes to one recipient.
type PushFuture<'a> =
    std::pin::Pin<Box<dyn Future<Output = Result<(), AudienceError>> + Send + 'a>>;

/// What every event task shares.
struct Shared {
    redis: RedisConnection,
    keys: ReadKeys,
    unread: UnreadCounts,
    directory: Directory,
    fcm: FcmClient,
    config: NotifierSettings,
}

/// Runs the notifier until `shutdown` completes; then it stops fetching and finishes the
/// events it has started (so a restart repeats nothing).
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NotifierError> {
    let config = settings.notifier.clone();
    config.validate()?;
    let credentials = Credentials::from_file(&config.service_account_file)?;
    let fcm = FcmClient::new(
        &config.fcm_base_url,
        credentials,
        config.concurrency,
        config.retry(),
        config.request_timeout(),
    )?;
    fcm.check_credentials().await?;
    let log = settings.nats.event_log();
    let (client, jetstream) = connect::nats(&settings.nats).await?;
    let acks = client.clone();
    let stream = connect::event_stream(&jetstream, &log).await?;
    let redis = connect::redis(&settings.redis).await?;
    let session = connect::cassandra(&settings.cassandra).await?;
    let directory = Directory::prepare(session.clone(), &settings.cassandra.keyspace).await?;
    let keys = ReadKeys::new(settings.redis.key_prefix.clone());
    let consumer = durable_consumer(&stream, &config, &log.all_rooms()).await?;
    let shared = Arc::new(Shared {
        unread: UnreadCounts::new(redis.clone(), keys.clone()),
        redis,
        keys,
        directory,
        fcm,
        config,
    });

    let stop = CancellationToken::new();
    let activity = Arc::new(Activity::default());
    tokio::spawn({
        let (stop, activity) = (stop.clone(), activity.clone());
        async move {
            shutdown.await;
            activity.stopping();
            stop.cancel();
        }
    });
    let probe = readiness(
        Dependencies {
            client,
            jetstream,
            stream: log.stream_name().to_owned(),
            session,
        },
        shared.clone(),
        activity.clone(),
    );
    let _health = HealthServer::start(&shared.config.health_listen, Arc::new(probe)).await?;
    tracing::info!(consumer = %shared.config.consumer, "notifier running");
    let events = Arc::new(Semaphore::new(shared.config.events_in_flight));
    let tasks = TaskTracker::new();
    let mut reader = Pull::new(consumer, shared.config.events_in_flight);
    while !stop.is_cancelled() {
        let room = events.available_permits().max(1);
        let fetched = tokio::select! {
            () = stop.cancelled() => break,
            fetched = reader.next_batch(shared.config.fetch_wait(), room) => fetched,
        };
        let messages = match fetched {
            Ok(messages) => {
                activity.progressed();
                messages
            }
            Err(error) => {
                tracing::warn!(%error, "cannot fetch from the log");
                activity.failed(&error);
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                continue;
            }
        };
        for message in messages {
            let Ok(permit) = events.clone().acquire_owned().await else {
                break;
            };
            let (shared, activity) = (shared.clone(), activity.clone());
            tasks.spawn(async move {
                work(&shared, message).await;
                activity.progressed();
                drop(permit);
            });
        }
    }
    tasks.close();
    tasks.wait().await;
    if let Err(error) = acks.flush().await {
        tracing::warn!(%error, "the last acks may not have reached NATS; their events come back");
    }
    tracing::info!("notifier stopped");
    Ok(())
}

/// The connections readiness checks beyond those in [`Shared`].
struct Dependencies {
    client: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
    stream: String,
    session: Arc<scylla::client::session::Session>,
}

/// The notifier's readiness: it needs NATS to read the log, Redis for who gets a push and what
/// was sent, Cassandra for tokens and mutes, an FCM access token to send, and its work going on
/// (a fetch or a finished event, so events in flight holding up fetching count as progress).
/// Pushes cannot go out without any of them, so each is required.
fn readiness(dependencies: Dependencies, shared: Arc<Shared>, activity: Arc<Activity>) -> Probe {
    let dependencies = Arc::new(dependencies);
    Probe::new(move || {
        let (deps, shared, activity) = (dependencies.clone(), shared.clone(), activity.clone());
        async move {
            // On its own task, so a token fetch cut off by the timeout still fills the cache.
            let token = tokio::spawn({
                let shared = shared.clone();
                async move { shared.fcm.check_credentials().await }
            });
            let (nats, redis, cassandra, fcm) = tokio::join!(
                health::nats(&deps.client, &deps.jetstream, &deps.stream),
                health::redis(&shared.redis),
                health::cassandra(&deps.session),
                health::within(async {
                    match token.await {
                        Ok(obtained) => obtained.map_err(|e| e.to_string()),
                        Err(error) => Err(error.to_string()),
                    }
                }),
            );
            let mut report = Report::default();
            report
                .require("serving", activity.serving())
                .require("nats", nats)
                .require("redis", redis)
                .require("cassandra", cassandra)
                .require("fcm", fcm)
                .require("consumer", activity.check());
            report
        }
    })
}

/// Creates the durable consumer, or updates an existing one; a new one starts with the
/// events stored from now on (a new notifier does not push the past).
async fn durable_consumer(
    stream: &async_nats::jetstream::stream::Stream,
    config: &NotifierSettings,
    filter: &str,
) -> Result<PullConsumer, NotifierError> {
    let error = |message: String| NotifierError::Consumer {
        name: config.consumer.clone(),
        message,
    };
    let deliver_policy = match stream.consumer_info(&config.consumer).await {
        Ok(info) => info.config.deliver_policy,
        Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => DeliverPolicy::New,
        Err(e) => return Err(error(e.to_string())),
    };
    stream
        .create_consumer(pull::Config {
            durable_name: Some(config.consumer.clone()),
            description: Some("Sends FCM pushes for new messages and invites".into()),
            filter_subject: filter.to_owned(),
            ack_policy: AckPolicy::Explicit,
            ack_wait: config.ack_wait(),
            max_ack_pending: i64::try_from(config.events_in_flight).unwrap_or(i64::MAX),
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| error(e.to_string()))
}

/// Works on one event, keeping it alive while it takes long, then acks it (or hands it back
/// when Redis or Cassandra failed, so it is tried again). The ack is not confirmed: one lost
/// brings the event back after `ack_wait_ms`, and its sent record makes that a no-op, so a
/// round trip per event would buy nothing.
async fn work(shared: &Shared, message: async_nats::jetstream::Message) {
    let Ok(info) = message.info() else {
        let _ = message.ack().await;
        return;
    };
    let seq = info.stream_sequence;
    let Ok(envelope) = decode(&message.payload) else {
        tracing::warn!(seq, "undecodable event skipped");
        let _ = message.ack().await;
        return;
    };
    let keepalive_every = shared.config.ack_wait() / 3;
    let began = std::time::Instant::now();
    let handled = handle(shared, seq, &envelope);
    tokio::pin!(handled);
    let result = loop {
        tokio::select! {
            result = &mut handled => break result,
            () = tokio::time::sleep(keepalive_every) => {
                if let Err(error) = message.ack_with(AckKind::Progress).await {
                    tracing::debug!(%error, seq, "cannot extend the ack deadline");
                }
            }
        }
    };
    let ack = match result {
        Ok(()) => {
            chat_platform::metrics::applied(1, seq, began.elapsed());
            message.ack().await
        }
        Err(error) => {
            tracing::warn!(%error, seq, "cannot push now; the event will come back");
            chat_platform::metrics::retried();
            message
                .ack_with(AckKind::Nak(Some(std::time::Duration::from_secs(1))))
                .await
        }
    };
    if let Err(error) = ack {
        tracing::warn!(%error, seq, "ack failed; the event will come back (no duplicate push)");
    }
}

/// Sends every push `envelope` owes that was not sent before.
async fn handle(shared: &Shared, seq: u64, envelope: &Envelope) -> Result<(), AudienceError> {
    let Some(audience) = audience(
        seq,
        envelope,
        &shared.unread,
        &shared.directory,
        shared.config.receipts_wait(),
    )
    .await?
    else {
        return Ok(());
    };
    let room = envelope.room_id.as_uuid();
    let mentioned = &audience.mentioned;
    let lookups = audience.users.chunks(LOOKUP_CHUNK).map(|users| async move {
        let muted = if audience.mutable {
            shared.directory.muted(users, room).await?
        } else {
            HashSet::new()
        };
        let mut tokens = shared.directory.tokens(users).await?;
        Ok::<_, AudienceError>(
            users
                .iter()
                .filter(|user| !muted.contains(*user) || mentioned.contains(*user))
                .filter_map(|user| Some((user.clone(), tokens.remove(user)?)))
                .collect::<Vec<_>>(),
        )
    });
    let mut recipients = Vec::new();
    for found in futures::future::join_all(lookups).await {
        recipients.extend(found?);
    }
    if recipients.is_empty() {
        return Ok(());
    }
    let sent_key = format!("{}push:sent:{seq}", shared.keys.prefix());
    let record = SentRecord::open(shared, sent_key).await?;
    let pushes: Vec<PushFuture<'_>> = recipients
        .iter()
        .map(|(user, tokens)| -> PushFuture<'_> {
            Box::pin(push_user(shared, &audience, user, tokens, &record))
        })
        .collect();
    let results = futures::stream::iter(pushes)
        .buffer_unordered(USERS_AT_ONCE)
        .collect::<Vec<_>>()
        .await;
    results.into_iter().collect()
}

/// `user`'s badge: their unread messages over their rooms; 0 when it cannot be read now (a
/// push without the right badge beats no push).
async fn badge(shared: &Shared, user: &str) -> u64 {
    let Ok(id) = chat_schemas::UserId::parse(user) else {
        return 0;
    };
    let rooms: Vec<chat_schemas::RoomId> = match shared.directory.user_rooms(user).await {
        Ok(rooms) => rooms.into_iter().map(chat_schemas::RoomId::from).collect(),
        Err(error) => {
            tracing::warn!(%error, user, "cannot read the rooms for a badge");
            return 0;
        }
    };
    shared.unread.total(&id, &rooms).await.unwrap_or(0)
}

/// An event's sent record in Redis: the tokens FCM accepted its push for, and whether sending
/// it had begun before (then a token not in it may have got the push from a process that died
/// before writing it down).
struct SentRecord {
    /// The record's key.
    key: String,
    /// The tokens FCM accepted the push for.
    sent: HashSet<String>,
    /// Whether an earlier delivery of the event had begun sending.
    begun_before: bool,
}

impl SentRecord {
    /// Reads the record at `key` and marks in it, in the same round trip, that sending begins.
    async fn open(shared: &Shared, key: String) -> redis::RedisResult<Self> {
        let (added, mut sent): (u64, HashSet<String>) = redis::pipe()
            .cmd("SADD")
            .arg(&key)
            .arg(SENDING_BEGUN)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(shared.config.sent_record_seconds)
            .ignore()
            .cmd("SMEMBERS")
            .arg(&key)
            .query_async(&mut shared.redis.clone())
            .await?;
        sent.remove(SENDING_BEGUN);
        Ok(Self {
            key,
            sent,
            begun_before: added == 0,
        })
    }
}

/// Sends `audience`'s push to each of `user`'s `tokens` not in `record`; marked as a possible
/// repeat when an earlier delivery of the event had begun sending.
async fn push_user(
    shared: &Shared,
    audience: &Audience,
    user: &str,
    tokens: &[String],
    record: &SentRecord,
) -> Result<(), AudienceError> {
    let tokens: Vec<&String> = tokens
        .iter()
        .filter(|t| !record.sent.contains(*t))
        .collect();
    if tokens.is_empty() {
        return Ok(());
    }
    let badge = badge(shared, user).await;
    for token in tokens {
        let mention = audience.mentioned.contains(user);
        let mut body = message(&audience.notice, token, badge, mention);
        if record.begun_before {
            mark_resent(&mut body);
        }
        let delivery = shared.fcm.send(&body).await;
        metrics::counter!("chat_notifier_pushes_total", "outcome" => delivery.outcome())
            .increment(1);
        match delivery {
            Delivery::Delivered => record_sent(shared, &record.key, token).await?,
            Delivery::DeadToken(code) => {
                tracing::info!(user, code, "FCM says the token is dead; removing it");
                shared.directory.forget_token(user, token).await?;
            }
            Delivery::Failed(reason) => {
                tracing::warn!(user, %reason, message_id = %audience.notice.message_id, "push not delivered");
            }
        }
    }
    Ok(())
}

/// Records that `token` got the push of `sent_key`'s event, retrying for [`RECORD_PATIENCE`].
async fn record_sent(shared: &Shared, sent_key: &str, token: &str) -> redis::RedisResult<()> {
    let began = Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        let recorded = redis::pipe()
            .cmd("SADD")
            .arg(sent_key)
            .arg(token)
            .ignore()
            .cmd("EXPIRE")
            .arg(sent_key)
            .arg(shared.config.sent_record_seconds)
            .ignore()
            .query_async::<()>(&mut shared.redis.clone())
            .await;
        match recorded {
            Err(error) if began.elapsed() + pause < RECORD_PATIENCE => {
                tracing::warn!(%error, "cannot record a sent push yet; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}
