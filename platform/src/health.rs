//! Liveness and readiness: what an orchestrator asks a service before it sends it work or kills
//! it. `docs/health.md` is the contract.
//!
//! `/healthz` answers 200 while the process serves HTTP at all. `/readyz` answers 200 only while
//! the service can do its job: every dependency it cannot work without answers within
//! [`CHECK_TIMEOUT`], its work loop is not stuck, and it is not shutting down; otherwise 503.
//! Both bodies are the same JSON [`Report`], naming each dependency and its state, so an
//! operator sees why at a glance. Results are cached for [`CACHE_FOR`], so frequent polling
//! costs the servers nothing more than a few cheap requests a second.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::redis_connection::RedisConnection;
use async_nats::jetstream;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::future::BoxFuture;
use scylla::client::session::Session;
use scylla::statement::unprepared::Statement;
use serde::Serialize;
use tokio::time::Instant;

/// Longest a single dependency check may take before it counts as down; the checks of one
/// report run concurrently, so a report takes at most about this long.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a report is reused: polls within it get the same answer without new checks.
pub const CACHE_FOR: Duration = Duration::from_millis(500);

/// How long a work loop may go without completing a round before it counts as stuck.
pub const STALLED_AFTER: Duration = Duration::from_secs(30);

/// The outcome of one check: `Err` holds why the dependency is down.
pub type Check = Result<(), String>;

/// Whether the service can do its job; its schema is part of the edge's OpenAPI document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Everything answers.
    Ready,
    /// Only a dependency the service can work without is down: it still takes work.
    Degraded,
    /// A dependency it needs is down, or it is shutting down: send it no work.
    Unavailable,
}

/// The body of `/readyz`: the overall status, each check by name, and a role when the
/// service can be active or standby; its schema is part of the edge's OpenAPI document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// The overall answer; 503 only for [`Status::Unavailable`].
    pub status: Status,
    /// Each check: `"ok"` or `"down: <reason>"`.
    #[schema(value_type = BTreeMap<String, String>)]
    pub checks: BTreeMap<&'static str, String>,
    /// `"active"`, `"standby"` or `"starting"` ([`Role`]) for services of which one instance
    /// works at a time.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    pub role: Option<&'static str>,
}

impl Default for Report {
    fn default() -> Self {
        Self {
            status: Status::Ready,
            checks: BTreeMap::new(),
            role: None,
        }
    }
}

impl Report {
    /// Records a check the service cannot work without: down makes it unavailable.
    pub fn require(&mut self, name: &'static str, check: Check) -> &mut Self {
        if check.is_err() {
            self.status = Status::Unavailable;
        }
        self.record(name, check)
    }

    /// Records a check the service can work without: down makes it degraded, still ready.
    pub fn prefer(&mut self, name: &'static str, check: Check) -> &mut Self {
        if check.is_err() && self.status == Status::Ready {
            self.status = Status::Degraded;
        }
        self.record(name, check)
    }

    /// Sets the role shown next to the checks.
    pub fn role(&mut self, role: &'static str) -> &mut Self {
        self.role = Some(role);
        self
    }

    /// 503 when unavailable, else 200.
    pub fn http_status(&self) -> StatusCode {
        match self.status {
            Status::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Status::Ready | Status::Degraded => StatusCode::OK,
        }
    }

    fn record(&mut self, name: &'static str, check: Check) -> &mut Self {
        let state = match check {
            Ok(()) => "ok".to_owned(),
            Err(reason) => format!("down: {reason}"),
        };
        self.checks.insert(name, state);
        self
    }
}

impl IntoResponse for Report {
    fn into_response(self) -> Response {
        (self.http_status(), Json(self)).into_response()
    }
}

/// Runs `check`, counting it as down when it takes longer than [`CHECK_TIMEOUT`].
pub async fn within<E: fmt::Display>(check: impl Future<Output = Result<(), E>>) -> Check {
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} ms", CHECK_TIMEOUT.as_millis())),
    }
}

/// NATS is connected and JetStream answers for `stream` (one STREAM.INFO request): a wedged
/// JetStream or a lost stream shows here.
pub async fn nats(
    client: &async_nats::Client,
    jetstream: &jetstream::Context,
    stream: &str,
) -> Check {
    let state = client.connection_state();
    if state != async_nats::connection::State::Connected {
        return Err(format!("not connected ({state})"));
    }
    within(async { jetstream.get_stream(stream).await.map(|_| ()) }).await
}

/// Redis answers PING.
pub async fn redis(connection: &RedisConnection) -> Check {
    let mut connection = connection.clone();
    within(async move {
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(|_| ())
    })
    .await
}

/// Cassandra answers a read of a node's own `system.local` row.
pub async fn cassandra(session: &Session) -> Check {
    let mut probe = Statement::new("SELECT release_version FROM system.local");
    // Any node answers it: a stalled one is not waited for past the speculative delay.
    probe.set_is_idempotent(true);
    within(async { session.query_unpaged(probe, ()).await.map(|_| ()) }).await
}

/// Whether a work loop is going round: it reports each completed round and each failure, and
/// counts as stuck once no round completed for [`STALLED_AFTER`].
#[derive(Debug)]
pub struct Activity {
    state: Mutex<ActivityState>,
}

#[derive(Debug)]
struct ActivityState {
    last_round: Instant,
    last_error: Option<String>,
    stopping: bool,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            state: Mutex::new(ActivityState {
                last_round: Instant::now(),
                last_error: None,
                stopping: false,
            }),
        }
    }
}

impl Activity {
    /// A round of work completed (also one that found nothing to do).
    pub fn progressed(&self) {
        let mut state = self.lock();
        state.last_round = Instant::now();
        state.last_error = None;
    }

    /// A round failed; the error is shown if no round completes for long.
    pub fn failed(&self, error: impl fmt::Display) {
        self.lock().last_error = Some(error.to_string());
    }

    /// The service was asked to stop: from now on it is unavailable.
    pub fn stopping(&self) {
        self.lock().stopping = true;
    }

    /// Down once the service was asked to stop.
    pub fn serving(&self) -> Check {
        if self.lock().stopping {
            Err("shutting down".to_owned())
        } else {
            Ok(())
        }
    }

    /// Down after [`STALLED_AFTER`] without a completed round.
    pub fn check(&self) -> Check {
        self.check_within(STALLED_AFTER)
    }

    fn check_within(&self, stalled_after: Duration) -> Check {
        let state = self.lock();
        let idle = state.last_round.elapsed();
        if idle <= stalled_after {
            return Ok(());
        }
        let mut reason = format!("no round completed for {} s", idle.as_secs());
        if let Some(error) = &state.last_error {
            reason.push_str(": ");
            reason.push_str(error);
        }
        Err(reason)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Which part an instance of a service that works one instance at a time (behind a lease)
/// plays, as `/readyz` shows it. It starts out `starting` — not ready — until its first try for
/// the lease answers: before that it is neither the one working nor known to be a standby, and
/// a rollout or a test that waits for "ready" must not take it for either.
#[derive(Debug)]
pub struct Role(AtomicU8);

const STARTING: u8 = 0;
const STANDBY: u8 = 1;
const ACTIVE: u8 = 2;

impl Default for Role {
    fn default() -> Self {
        Self(AtomicU8::new(STARTING))
    }
}

impl Role {
    /// Another instance holds the lease (also after this one lost or gave it up).
    pub fn standby(&self) {
        self.0.store(STANDBY, Ordering::Relaxed);
    }

    /// This instance holds the lease and works.
    pub fn active(&self) {
        self.0.store(ACTIVE, Ordering::Relaxed);
    }

    /// No longer working: standby if it was active, still starting if it never got an answer.
    pub fn step_down(&self) {
        let _ = self
            .0
            .compare_exchange(ACTIVE, STANDBY, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Adds the role to `report`: an active instance also needs its work loop going round
    /// (`activity`); one still starting is unavailable.
    pub fn show(&self, report: &mut Report, activity: &Activity) {
        match self.0.load(Ordering::Relaxed) {
            ACTIVE => report.require("consumer", activity.check()).role("active"),
            STANDBY => report.role("standby"),
            _ => report
                .require("lease", Err("not tried yet".to_owned()))
                .role("starting"),
        };
    }
}

/// Makes a fresh report.
type Checker = dyn Fn() -> BoxFuture<'static, Report> + Send + Sync;

/// A service's readiness check with its cache: concurrent polls share one run of the checks,
/// and a report is reused for [`CACHE_FOR`].
pub struct Probe {
    checker: Box<Checker>,
    last: tokio::sync::Mutex<Option<(Instant, Report)>>,
}

impl Probe {
    /// A probe whose reports `check` makes.
    pub fn new<F, Fut>(check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Report> + Send + 'static,
    {
        Self {
            checker: Box::new(move || Box::pin(check())),
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The cached report, or a fresh one when it is older than [`CACHE_FOR`].
    pub async fn report(&self) -> Report {
        let mut last = self.last.lock().await;
        if let Some((at, report)) = last.as_ref() {
            if at.elapsed() < CACHE_FOR {
                return report.clone();
            }
        }
        let report = (self.checker)().await;
        let ready = if report.status == Status::Unavailable {
            0.0
        } else {
            1.0
        };
        metrics::gauge!("chat_ready").set(ready);
        *last = Some((Instant::now(), report.clone()));
        report
    }
}

/// `GET /healthz` (200 `ok` while the process serves), `GET /readyz` (the probe's report) and
/// `GET /metrics` (the process's Prometheus metrics, [`crate::metrics`]; each scrape refreshes
/// `chat_ready` from the probe, so an alert sees a worker that is not ready).
pub fn router(probe: Arc<Probe>) -> Router {
    let scraped = probe.clone();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let probe = scraped.clone();
                async move {
                    probe.report().await;
                    crate::metrics::render().await
                }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let probe = probe.clone();
                async move { probe.report().await }
            }),
        )
}

/// The health server could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve health checks on {address}: {source}")]
pub struct HealthError {
    /// The configured address.
    pub address: String,
    /// Why binding failed.
    pub source: std::io::Error,
}

/// A running health server; it stops when dropped, i.e. when the service's run ends.
pub struct HealthServer {
    address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl HealthServer {
    /// Binds `address` and serves [`router`] on it; an empty address serves nothing (`None`).
    pub async fn start(address: &str, probe: Arc<Probe>) -> Result<Option<Self>, HealthError> {
        if address.is_empty() {
            return Ok(None);
        }
        let error = |source| HealthError {
            address: address.to_owned(),
            source,
        };
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(error)?;
        let bound = listener.local_addr().map_err(error)?;
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router(probe)).await {
                tracing::error!(%error, "the health server stopped");
            }
        });
        tracing::info!(addr = %bound, "health server listening");
        Ok(Some(Self {
            address: bound,
            task,
        }))
    }

    /// The address it listens on (the chosen port when configured with port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `true` when `address` is empty (no health server) or ends in `:<port>`.
pub fn valid_listen(address: &str) -> bool {
    address.is_empty()
        || address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_required_check_down_makes_it_unavailable_an_optional_one_degraded() {
        let mut report = Report::default();
        report.require("nats", Ok(()));
        assert_eq!(report.status, Status::Ready);
        report.prefer("cassandra", Err("refused".into()));
        assert_eq!(report.status, Status::Degraded);
        assert_eq!(report.http_status(), StatusCode::OK);
        report.require("redis", Err("timeout".into()));
        report.prefer("other", Ok(()));
        assert_eq!(report.status, Status::Unavailable);
        assert_eq!(report.http_status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            serde_json::to_value(&report).ok(),
            Some(serde_json::json!({
                "status": "unavailable",
                "checks": {
                    "cassandra": "down: refused",
                    "nats": "ok",
                    "other": "ok",
                    "redis": "down: timeout",
                },
            }))
        );
    }

    #[test]
    fn the_role_is_shown_when_set() {
        let mut report = Report::default();
        report.role("standby");
        assert_eq!(
            serde_json::to_value(&report).ok(),
            Some(serde_json::json!({"status": "ready", "checks": {}, "role": "standby"}))
        );
    }

    #[test]
    fn an_instance_is_not_ready_until_its_first_lease_try_answers() {
        let (role, activity) = (Role::default(), Activity::default());
        let shown = |role: &Role| {
            let mut report = Report::default();
            role.show(&mut report, &activity);
            (report.status, report.role, report.checks)
        };
        let (status, name, checks) = shown(&role);
        assert_eq!((status, name), (Status::Unavailable, Some("starting")));
        assert_eq!(checks["lease"], "down: not tried yet");

        role.step_down();
        assert_eq!(
            shown(&role).1,
            Some("starting"),
            "never active: still starting"
        );
        role.standby();
        assert_eq!(shown(&role).0, Status::Ready);
        assert_eq!(shown(&role).1, Some("standby"));
        role.active();
        let (status, name, checks) = shown(&role);
        assert_eq!((status, name), (Status::Ready, Some("active")));
        assert_eq!(checks["consumer"], "ok");
        role.step_down();
        assert_eq!(shown(&role).1, Some("standby"));
    }

    #[tokio::test]
    async fn a_check_that_hangs_is_down_after_the_timeout() {
        let started = Instant::now();
        let check = within(std::future::pending::<Result<(), String>>()).await;
        assert_eq!(check, Err("no answer within 1000 ms".to_owned()));
        assert!(started.elapsed() < CHECK_TIMEOUT * 2);
    }

    #[test]
    fn a_loop_without_rounds_is_stuck_and_names_its_last_error() {
        let activity = Activity::default();
        assert_eq!(activity.check(), Ok(()));
        activity.failed("fetch refused");
        let stuck = activity.check_within(Duration::ZERO);
        assert!(
            stuck
                .as_ref()
                .is_err_and(|reason| reason.ends_with(": fetch refused")),
            "{stuck:?}"
        );
        activity.progressed();
        assert_eq!(activity.check(), Ok(()));
        assert_eq!(activity.serving(), Ok(()));
        activity.stopping();
        assert_eq!(activity.serving(), Err("shutting down".to_owned()));
    }

    #[tokio::test]
    async fn reports_are_reused_for_a_while() {
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = runs.clone();
        let probe = Probe::new(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Report::default() }
        });
        probe.report().await;
        probe.report().await;
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn listen_addresses_are_empty_or_name_a_port() {
        assert!(valid_listen(""));
        assert!(valid_listen("127.0.0.1:9181"));
        assert!(valid_listen("[::]:0"));
        assert!(!valid_listen("127.0.0.1"));
        assert!(!valid_listen(":9181"));
        assert!(!valid_listen("host:port"));
    }
}
