//! The edge's Prometheus metrics (`docs/operations.md`): one function per thing that happens,
//! so the metric names live in one file and the hot path records with static labels only —
//! never a room or user id.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::stomp::Command;

/// Counts a request by route template (`/api/rooms/{room_id}`, never the concrete path),
/// method and status, and times it; a layer over the matched routes.
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let began = Instant::now();
    let response = next.run(request).await;
    let labels = [
        ("route", route),
        ("method", method),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("chat_http_requests_total", &labels).increment(1);
    metrics::histogram!("chat_http_request_duration_seconds", &labels).record(began.elapsed());
    response
}

/// A client frame arrived.
pub fn frame_received(command: Command) {
    metrics::counter!("chat_edge_frames_received_total", "command" => command.as_str())
        .increment(1);
}

/// A frame went to a client.
pub fn frame_sent(command: Command) {
    metrics::counter!("chat_edge_frames_sent_total", "command" => command.as_str()).increment(1);
}

/// An ERROR frame with `code` (`docs/protocol.md`) ends a connection.
pub fn error_sent(code: &'static str) {
    metrics::counter!("chat_edge_errors_total", "code" => code).increment(1);
}

/// A room event went out as a MESSAGE on one subscription.
pub fn delivered() {
    metrics::counter!("chat_edge_deliveries_total").increment(1);
}

/// A connection was closed because its client did not read fast enough.
pub fn slow_consumer() {
    metrics::counter!("chat_edge_slow_consumer_disconnects_total").increment(1);
}

/// A SEND was durably stored in the log `took` after the edge started storing it.
pub fn send_acked(took: Duration) {
    metrics::histogram!("chat_edge_send_ack_duration_seconds").record(took);
}

/// A subscription opened (`1.0`) or ended (`-1.0`).
pub fn subscriptions(change: f64) {
    metrics::gauge!("chat_edge_subscriptions").increment(change);
}

/// One open WebSocket connection, counted in `chat_edge_connections` while it lives.
pub struct OpenConnection(());

impl OpenConnection {
    /// Counts a connection that just opened.
    pub fn open() -> Self {
        metrics::gauge!("chat_edge_connections").increment(1.0);
        Self(())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!("chat_edge_connections").decrement(1.0);
    }
}
