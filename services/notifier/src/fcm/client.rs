//! Sending to FCM: bounded concurrency over one pooled HTTP/1.1 + HTTP/2 client (TLS with
//! rustls and the webpki roots, so no system certificates are needed), retries with
//! exponential backoff and jitter that honour `Retry-After`, one token refresh after a 401.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use super::auth::{AuthError, Credentials};
use super::message::mark_resent;
use super::outcome::{classify, SendOutcome};

/// How sends are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most attempts per message, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry; it doubles up to `cap`.
    pub initial: Duration,
    /// Longest delay between attempts (a longer `Retry-After` wins).
    pub cap: Duration,
}

/// How one message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// FCM accepted it.
    Delivered,
    /// FCM says the token is dead; the caller deletes it.
    DeadToken(String),
    /// It was not delivered and will not be retried.
    Failed(String),
}

impl Delivery {
    /// The `outcome` label of `chat_notifier_pushes_total`: a fixed word, never the reason.
    pub fn outcome(&self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::DeadToken(_) => "dead_token",
            Delivery::Failed(_) => "failed",
        }
    }
}

/// The HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up TLS for FCM: {0}")]
pub struct TlsError(#[from] rustls::Error);

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client of `POST {base}/v1/projects/{projectId}/messages:send`.
pub struct FcmClient {
    http: HttpClient,
    endpoint: String,
    credentials: Credentials,
    permits: Arc<Semaphore>,
    retry: RetryPolicy,
    timeout: Duration,
}

impl FcmClient {
    /// A client for `base_url` with `credentials`, at most `concurrency` requests at once.
    pub fn new(
        base_url: &str,
        credentials: Credentials,
        concurrency: usize,
        retry: RetryPolicy,
        timeout: Duration,
    ) -> Result<Self, TlsError> {
        let endpoint = format!(
            "{}/v1/projects/{}/messages:send",
            base_url.trim_end_matches('/'),
            credentials.project_id()
        );
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(Arc::new(rustls::crypto::ring::default_provider()))?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(concurrency)
            .build(https);
        Ok(Self {
            http,
            endpoint,
            credentials,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            retry,
            timeout,
        })
    }

    /// Gets an access token now, so a bad key or an unreachable token endpoint fails at start.
    pub async fn check_credentials(&self) -> Result<(), AuthError> {
        self.credentials.token().await.map(|_| ())
    }

    /// Sends `message` (the `message` object), retrying as FCM's errors say. After an attempt
    /// that got no answer, the next ones are marked [`mark_resent`]: FCM may have delivered the
    /// first.
    pub async fn send(&self, message: &Value) -> Delivery {
        let mut body = json!({ "message": message });
        let mut refreshed = false;
        let mut attempt = 1;
        loop {
            let outcome = self.attempt(&body).await;
            match outcome {
                SendOutcome::Unanswered(code) => {
                    if attempt >= self.retry.max_attempts {
                        return Delivery::Failed(format!("{code} after {attempt} attempts"));
                    }
                    mark_resent(&mut body["message"]);
                    tokio::time::sleep(self.delay(attempt, None)).await;
                    attempt += 1;
                }
                SendOutcome::Delivered => return Delivery::Delivered,
                SendOutcome::DeadToken(code) => return Delivery::DeadToken(code),
                SendOutcome::Rejected(reason) => return Delivery::Failed(reason),
                SendOutcome::Reauthenticate if !refreshed => {
                    refreshed = true;
                    if let Err(error) = self.credentials.refresh() {
                        return Delivery::Failed(error.to_string());
                    }
                }
                SendOutcome::Reauthenticate => {
                    return Delivery::Failed("access token refused after a refresh".into())
                }
                SendOutcome::Retry { code, retry_after } => {
                    if attempt >= self.retry.max_attempts {
                        return Delivery::Failed(format!("{code} after {attempt} attempts"));
                    }
                    tokio::time::sleep(self.delay(attempt, retry_after)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// One request, holding a concurrency permit only while it is in flight.
    async fn attempt(&self, body: &Value) -> SendOutcome {
        let token = match self.credentials.token().await {
            Ok(token) => token,
            Err(error) => {
                return SendOutcome::Retry {
                    code: error.to_string(),
                    retry_after: None,
                }
            }
        };
        let Ok(_permit) = self.permits.acquire().await else {
            return SendOutcome::Rejected("the client is closed".into());
        };
        let request = hyper::Request::post(&self.endpoint)
            .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())));
        let request = match request {
            Ok(request) => request,
            Err(error) => return SendOutcome::Rejected(format!("bad request: {error}")),
        };
        let exchange = async {
            let response = self.http.request(request).await?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, retry_after, body))
        };
        let (status, retry_after, body) = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => return SendOutcome::Unanswered(format!("request failed: {error}")),
            Err(_) => {
                return SendOutcome::Unanswered(format!("no answer within {:?}", self.timeout))
            }
        };
        classify(status, retry_after.as_deref(), &body)
    }

    /// Exponential backoff with full jitter in its upper half, never shorter than FCM's
    /// `Retry-After`.
    fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponent = attempt.saturating_sub(1).min(16);
        let backoff = self
            .retry
            .initial
            .saturating_mul(1 << exponent)
            .min(self.retry.cap);
        let jitter = f64::from(uuid::Uuid::new_v4().as_fields().0) / f64::from(u32::MAX);
        let jittered = backoff.mul_f64(0.5 + jitter / 2.0);
        retry_after.map_or(jittered, |after| after.max(jittered))
    }
}
