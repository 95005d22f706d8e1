//! STOMP 1.2 over WebSocket at `/ws` (`docs/protocol.md`): sessions, fan-out across edges, and
//! gap-free resume.

mod catchup;
mod connection;
mod feeds;
mod hub;
mod session;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;

pub use catchup::CatchUp;
pub use feeds::UserFeeds;
pub use hub::Hub;

use crate::app::AppState;

/// The subprotocols offered, in order of preference.
const SUBPROTOCOLS: [&str; 3] = ["v12.stomp", "v11.stomp", "v10.stomp"];

/// Upgrades `GET /ws` to a STOMP session.
pub async fn upgrade(State(state): State<Arc<AppState>>, ws: WebSocketUpgrade) -> Response {
    let conn = state.next_conn.fetch_add(1, Ordering::Relaxed);
    let limit = state.edge.max_frame_bytes;
    let tracker = state.connections.clone();
    ws.protocols(SUBPROTOCOLS)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(limit * 2)
        .max_frame_size(limit * 2)
        .on_upgrade(move |socket| tracker.track_future(connection::serve(socket, state, conn)))
}
