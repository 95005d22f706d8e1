//! Prometheus metrics: the process-wide recorder behind the `metrics` macros, `GET /metrics`
//! that renders it, and the metrics every worker keeps alike. `docs/operations.md` lists them.
//!
//! The services record through the `metrics` facade with static names and labels; the
//! exporter's own HTTP listener is left out, so `/metrics` is served beside `/healthz` by the
//! service's own axum router.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets for every `_seconds` metric: 1 ms to 10 s, covering a STOMP SEND acked in
/// milliseconds as well as a Cassandra batch retried for seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes, so that
/// memory stays bounded.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The text format version Prometheus expects in the content type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process's handle, set by the first [`install`].
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder for `service` (once per process; later calls return the
/// first handle) and sets `chat_build_info`. Every metric carries a `service` label, so one
/// Prometheus job may scrape them all.
///
/// Call it inside the Tokio runtime: a background task folds histogram samples.
pub fn install(service: &'static str) -> Result<PrometheusHandle, BuildError> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .add_global_label("service", service)
        .set_buckets(LATENCY_BUCKETS)?
        .build_recorder();
    let handle = recorder.handle();
    if HANDLE.set(handle.clone()).is_err() {
        // Another thread (a unit test) installed first: keep its handle.
        return Ok(HANDLE.get().cloned().unwrap_or(handle));
    }
    if let Err(error) = metrics::set_global_recorder(recorder) {
        tracing::warn!(%error, "another metrics recorder is installed: /metrics stays empty");
    }
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let upkept = handle.clone();
        runtime.spawn(async move {
            let mut every = tokio::time::interval(UPKEEP_EVERY);
            loop {
                every.tick().await;
                upkept.run_upkeep();
            }
        });
    }
    metrics::gauge!("chat_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(handle)
}

/// `GET /metrics`: the Prometheus text of everything recorded so far (empty before
/// [`install`]).
pub fn router() -> Router {
    Router::new().route("/metrics", get(render))
}

/// The Prometheus text response of everything recorded so far.
pub async fn render() -> impl IntoResponse {
    let text = HANDLE
        .get()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    ([(CONTENT_TYPE, TEXT_FORMAT)], text)
}

/// A worker applied a batch of `events` (the last at stream sequence `last_seq`) in `took`,
/// retries included.
pub fn applied(events: usize, last_seq: u64, took: Duration) {
    metrics::counter!("chat_events_applied_total").increment(events as u64);
    metrics::histogram!("chat_apply_duration_seconds").record(took);
    metrics::gauge!("chat_last_applied_sequence").set(last_seq as f64);
}

/// A worker's attempt to apply a batch failed and will be tried again.
pub fn retried() {
    metrics::counter!("chat_apply_retries_total").increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn installing_twice_keeps_one_recorder_that_renders_build_info() {
        let first = install("test");
        let second = install("test");
        assert!(first.is_ok() && second.is_ok());
        applied(3, 42, Duration::from_millis(2));
        let text = HANDLE
            .get()
            .map(PrometheusHandle::render)
            .unwrap_or_default();
        assert!(text.contains("chat_build_info{"), "{text}");
        assert!(text.contains("service=\"test\""), "{text}");
        assert!(
            text.contains("chat_events_applied_total{service=\"test\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("chat_apply_duration_seconds_bucket{"),
            "{text}"
        );
    }
}
