//! In-memory state: issued access tokens, recorded deliveries, programmed failures, counters.
//!
//! Everything sits behind one `std::sync::Mutex` that is never held across an `.await`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use serde::Serialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::errors::{ApiError, ErrorCode};

/// How many deliveries are kept unless configured otherwise; older ones are dropped first.
pub const DEFAULT_MAX_DELIVERIES: usize = 100_000;
/// At most this many live access tokens are kept; the one expiring first is dropped beyond that.
pub const MAX_ACCESS_TOKENS: usize = 100_000;
/// Lifetime of an issued access token, as Google's `expires_in`.
pub const ACCESS_TOKEN_TTL_SECS: u64 = 3599;

/// One accepted (not `validate_only`) send.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The message name returned to the sender, `projects/{p}/messages/{id}`.
    pub name: String,
    /// The registration token, or `None` for topic and condition sends.
    pub token: Option<String>,
    /// The `message` object exactly as received.
    pub message: Value,
    /// Arrival time, RFC 3339 (UTC).
    pub received_at: String,
}

/// A programmed failure for the next sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// The FCM error to answer with.
    pub code: ErrorCode,
    /// How many more sends fail with it.
    pub remaining: u32,
    /// `Retry-After` seconds to send along, if any.
    pub retry_after: Option<u64>,
}

/// Counters shown by `GET /admin/stats` (since start or the last `POST /admin/reset`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Access tokens issued by `POST /token`.
    pub tokens_issued: u64,
    /// Token requests answered with an OAuth error.
    pub token_requests_rejected: u64,
    /// Sends answered 200 and recorded as deliveries.
    pub sends_accepted: u64,
    /// Deliveries dropped, oldest first, to stay within the configured maximum: while this is
    /// not zero, `GET /admin/deliveries` no longer lists every accepted send.
    pub deliveries_dropped: u64,
    /// `validate_only` sends answered 200 (not recorded).
    pub sends_validated: u64,
    /// All rejected sends.
    pub sends_rejected: u64,
    /// Rejected sends by FCM `errorCode` (those that carry one).
    pub sends_rejected_by_error_code: BTreeMap<String, u64>,
    /// Rejected sends by `error.status` (all of them).
    pub sends_rejected_by_status: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
struct Inner {
    access_tokens: HashMap<String, Instant>,
    deliveries: VecDeque<Delivery>,
    faults: VecDeque<Fault>,
    programmed_tokens: HashMap<String, ErrorCode>,
    delay: Duration,
    stats: Stats,
}

/// The emulator's shared state and fixed settings.
pub struct EmulatorState {
    /// The project served.
    pub project_id: String,
    /// The `iss` accepted in assertions.
    pub client_email: String,
    /// The `aud` required in assertions.
    pub token_url: String,
    /// The key verifying assertions.
    pub decoding_key: DecodingKey,
    /// How many deliveries are kept (bounding the emulator's memory).
    pub max_deliveries: usize,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for EmulatorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorState")
            .field("project_id", &self.project_id)
            .field("client_email", &self.client_email)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

impl EmulatorState {
    /// A fresh state that keeps the last `max_deliveries` deliveries.
    pub fn new(
        project_id: String,
        client_email: String,
        token_url: String,
        decoding_key: DecodingKey,
        max_deliveries: usize,
    ) -> Self {
        Self {
            project_id,
            client_email,
            token_url,
            decoding_key,
            max_deliveries,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind: keep serving.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Issues a new opaque access token valid for [`ACCESS_TOKEN_TTL_SECS`].
    pub fn issue_access_token(&self) -> String {
        let token = format!(
            "ya29.emulator.{}{}",
            Uuid::new_v4().simple(),
            Uuid::new_v4().simple()
        );
        let now = Instant::now();
        let expires = now + Duration::from_secs(ACCESS_TOKEN_TTL_SECS);
        let mut inner = self.lock();
        inner.access_tokens.retain(|_, expiry| *expiry > now);
        if inner.access_tokens.len() >= MAX_ACCESS_TOKENS {
            let oldest = inner
                .access_tokens
                .iter()
                .min_by_key(|(_, expiry)| **expiry)
                .map(|(token, _)| token.clone());
            if let Some(oldest) = oldest {
                inner.access_tokens.remove(&oldest);
            }
        }
        inner.access_tokens.insert(token.clone(), expires);
        inner.stats.tokens_issued += 1;
        token
    }

    /// Counts a rejected token request.
    pub fn record_token_rejection(&self) {
        self.lock().stats.token_requests_rejected += 1;
    }

    /// Whether `token` was issued here and is neither expired nor revoked.
    pub fn access_token_valid(&self, token: &str) -> bool {
        self.lock()
            .access_tokens
            .get(token)
            .is_some_and(|expiry| *expiry > Instant::now())
    }

    /// Invalidates every issued access token.
    pub fn revoke_access_tokens(&self) {
        self.lock().access_tokens.clear();
    }

    /// Consumes one programmed fault, if any is pending.
    pub fn take_fault(&self) -> Option<ApiError> {
        let mut inner = self.lock();
        let fault = inner.faults.front_mut()?;
        let error = ApiError::fcm(fault.code).with_retry_after(fault.retry_after);
        fault.remaining = fault.remaining.saturating_sub(1);
        if fault.remaining == 0 {
            inner.faults.pop_front();
        }
        Some(error)
    }

    /// Queues a fault for the next `fault.remaining` sends (after those already queued).
    pub fn push_fault(&self, fault: Fault) {
        if fault.remaining > 0 {
            self.lock().faults.push_back(fault);
        }
    }

    /// Makes every later send to `token` fail with `code`.
    pub fn program_token(&self, token: String, code: ErrorCode) {
        self.lock().programmed_tokens.insert(token, code);
    }

    /// The failure programmed for `token`, if any.
    pub fn programmed(&self, token: &str) -> Option<ErrorCode> {
        self.lock().programmed_tokens.get(token).copied()
    }

    /// Sets the delay every send waits before answering.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// The delay every send waits before answering.
    pub fn delay(&self) -> Duration {
        self.lock().delay
    }

    /// Records an accepted send and returns its message name.
    pub fn record_send(
        &self,
        token: Option<String>,
        message: Value,
        validate_only: bool,
    ) -> String {
        let now = OffsetDateTime::now_utc();
        let id = format!(
            "0:{}%{}",
            now.unix_timestamp_nanos() / 1_000,
            &Uuid::new_v4().simple().to_string()[..16]
        );
        let name = format!("projects/{}/messages/{id}", self.project_id);
        let mut inner = self.lock();
        if validate_only {
            inner.stats.sends_validated += 1;
            return name;
        }
        inner.stats.sends_accepted += 1;
        if inner.deliveries.len() >= self.max_deliveries {
            inner.deliveries.pop_front();
            inner.stats.deliveries_dropped += 1;
        }
        inner.deliveries.push_back(Delivery {
            name: name.clone(),
            token,
            message,
            received_at: now.format(&Rfc3339).unwrap_or_default(),
        });
        name
    }

    /// Counts a rejected send.
    pub fn record_rejection(&self, error: &ApiError) {
        let mut inner = self.lock();
        let stats = &mut inner.stats;
        stats.sends_rejected += 1;
        if let Some(code) = error.stats_error_code() {
            *stats
                .sends_rejected_by_error_code
                .entry(code.to_owned())
                .or_default() += 1;
        }
        *stats
            .sends_rejected_by_status
            .entry(error.status.to_owned())
            .or_default() += 1;
    }

    /// The recorded deliveries in arrival order, optionally only those to `token`.
    pub fn deliveries(&self, token: Option<&str>) -> Vec<Delivery> {
        self.lock()
            .deliveries
            .iter()
            .filter(|d| token.is_none_or(|t| d.token.as_deref() == Some(t)))
            .cloned()
            .collect()
    }

    /// The last `n` deliveries in arrival order, and how many are stored in all.
    pub fn last_deliveries(&self, n: usize) -> (Vec<Delivery>, usize) {
        let inner = self.lock();
        let total = inner.deliveries.len();
        let recent = inner
            .deliveries
            .iter()
            .skip(total.saturating_sub(n))
            .cloned()
            .collect();
        (recent, total)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// Clears deliveries, faults, programmed tokens, the delay and the counters. Issued access
    /// tokens stay valid.
    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.deliveries.clear();
        inner.faults.clear();
        inner.programmed_tokens.clear();
        inner.delay = Duration::ZERO;
        inner.stats = Stats::default();
    }
}
