//! The edge's shared state and its assembly from settings.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::Router;
use chat_platform::connect::{self, ConnectError};
use chat_platform::health::{self, Probe, Report};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use chat_read_state::{ReadKeys, UnreadCounts};

use crate::auth::{Authenticator, KeyError};
use crate::client_ids::ClientMessageIds;
use crate::live::{CatchUp, HeartbeatError, Hub, Presence};
use crate::membership::{Membership, MembershipError};
use crate::progress::ProjectionProgress;
use crate::settings::{EdgeSettings, Settings};
use crate::store::{Store, StoreError};
use crate::writer::{AppendPatience, EventWriter};

/// What every request handler shares.
pub struct AppState {
    /// Verifies access tokens.
    pub auth: Authenticator,
    /// Reads the projections.
    pub store: Arc<Store>,
    /// Reads unread sets and counts.
    pub unread: UnreadCounts,
    /// Appends events to the log.
    pub writer: EventWriter,
    /// Who is in which room, as of the log.
    pub membership: Arc<Membership>,
    /// The `clientMessageId`s already used, as of the log (fed by the membership follower).
    pub client_ids: Arc<ClientMessageIds>,
    /// Waits for the projector, for read-your-writes.
    pub progress: Arc<ProjectionProgress>,
    /// Limits and ids from `[edge]`.
    pub edge: EdgeSettings,
    /// This edge's room and user subscriptions.
    pub hub: Arc<Hub>,
    /// Who has a room open on this edge, announced to the log, and the edge's heartbeat.
    pub presence: Arc<Presence>,
    /// Reads stored room events back for resumes and gaps.
    pub catch_up: CatchUp,
    /// Cancelled when the edge shuts down: every connection closes.
    pub shutdown: CancellationToken,
    /// The open WebSocket connections, so shutdown can wait for them.
    pub connections: TaskTracker,
    /// Source of connection ids.
    pub next_conn: AtomicU64,
    /// Whether the edge can do its job, for `/readyz`.
    pub readiness: Probe,
}

/// The edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A server is unreachable.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The token key is unusable.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The projections cannot be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The presence heartbeat cannot be written.
    #[error(transparent)]
    Heartbeat(#[from] HeartbeatError),
    /// Membership cannot be followed from the log.
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// The projector's progress cannot be followed.
    #[error("cannot subscribe to projector progress: {0}")]
    Progress(#[from] async_nats::SubscribeError),
}

impl AppState {
    /// Connects to NATS and Cassandra and prepares everything the handlers need.
    pub async fn connect(settings: &Settings) -> Result<Arc<Self>, StartError> {
        let began = std::time::Instant::now();
        let step = |what: &str| {
            tracing::info!(
                elapsed_ms = began.elapsed().as_millis() as u64,
                "start-up: {what}"
            );
        };
        let auth = Authenticator::from_settings(settings)?;
        let log = settings.nats.event_log();
        let (nats, jetstream) = connect::nats(&settings.nats).await?;
        step("NATS connected");
        let stream = connect::event_stream(&jetstream, &log).await?;
        step("stream ready");
        let session = connect::cassandra(&settings.cassandra).await?;
        step("Cassandra connected");
        let store = Arc::new(Store::prepare(session.clone(), &settings.cassandra.keyspace).await?);
        step("statements prepared");
        let redis = connect::redis(&settings.redis).await?;
        step("Redis connected");
        let keys = ReadKeys::new(settings.redis.key_prefix.clone());
        let unread = UnreadCounts::new(redis.clone(), keys.clone());
        let progress = ProjectionProgress::follow(
            &nats,
            &log,
            store.clone(),
            &settings.edge.projector,
            settings.edge.read_your_writes_timeout(),
            settings.edge.read_catch_up(),
        )
        .await?;
        step("following the projector's progress");
        let membership = Membership::follow(
            stream.clone(),
            log.clone(),
            store.clone(),
            &settings.edge.projector,
            settings.edge.membership_rooms,
        )
        .await?;
        step("following membership");
        let presence = Presence::start(
            jetstream.clone(),
            log.clone(),
            redis.clone(),
            keys,
            settings.edge.presence_heartbeat(),
            settings.edge.presence_ttl(),
        )
        .await?;
        step("presence started");
        let shutdown = CancellationToken::new();
        let readiness = readiness(
            nats.clone(),
            jetstream.clone(),
            log.stream_name().to_owned(),
            redis.clone(),
            session,
            shutdown.clone(),
        );
        Ok(Arc::new(Self {
            auth,
            store: store.clone(),
            unread: unread.clone(),
            writer: EventWriter::new(
                jetstream,
                stream.clone(),
                log.clone(),
                AppendPatience {
                    retry_for: settings.edge.append_retry(),
                    attempt_timeout: settings.edge.append_attempt_timeout(),
                },
            ),
            client_ids: membership.client_message_ids(),
            membership,
            progress,
            edge: settings.edge.clone(),
            hub: Hub::new(nats.clone(), log.clone()),
            presence,
            catch_up: CatchUp::new(stream, log.clone(), store, unread.clone()),
            shutdown,
            connections: TaskTracker::new(),
            next_conn: AtomicU64::new(1),
            readiness,
        }))
    }

    /// The HTTP routes over this state, with `GET /metrics`; every matched route is counted
    /// and timed by its template.
    pub fn router(self: &Arc<Self>) -> Router {
        crate::api::router(self.clone())
            .merge(chat_platform::metrics::router())
            .route_layer(axum::middleware::from_fn(crate::observe::track_http))
    }
}

/// The edge's readiness: it needs NATS (JetStream answering for its stream) to write and
/// deliver, and Redis for presence and unread counts; without Cassandra it still carries live
/// chat (SEND, SUBSCRIBE), so Cassandra down only degrades it. Shutting down makes it
/// unavailable at once, so load balancers stop sending it clients.
fn readiness(
    nats: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
    stream: String,
    redis: chat_platform::redis_connection::RedisConnection,
    session: Arc<scylla::client::session::Session>,
    shutdown: CancellationToken,
) -> Probe {
    Probe::new(move || {
        let (nats, jetstream, stream) = (nats.clone(), jetstream.clone(), stream.clone());
        let (redis, session, shutdown) = (redis.clone(), session.clone(), shutdown.clone());
        async move {
            let (nats, redis, cassandra) = tokio::join!(
                health::nats(&nats, &jetstream, &stream),
                health::redis(&redis),
                health::cassandra(&session),
            );
            let serving = if shutdown.is_cancelled() {
                Err("shutting down".to_owned())
            } else {
                Ok(())
            };
            let mut report = Report::default();
            report
                .require("serving", serving)
                .require("nats", nats)
                .require("redis", redis)
                .prefer("cassandra", cassandra);
            report
        }
    })
}
