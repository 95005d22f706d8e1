//! STOMP 1.2 over WebSocket at `/ws` (`docs/protocol.md`): sessions, fan-out across edges, and
//! gap-free resume.

mod catchup;
mod connection;
mod hub;
mod presence;
mod rate;
mod session;
mod typing;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;

pub use catchup::CatchUp;
pub use hub::Hub;
pub use presence::{HeartbeatError, Presence};

use crate::app::AppState;

/// The subprotocols offered, in order of preference.
const SUBPROTOCOLS: [&str; 3] = ["v12.stomp", "v11.stomp", "v10.stomp"];

/// Upgrades `GET /ws` to a STOMP session.
pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let conn = state.next_conn.fetch_add(1, Ordering::Relaxed);
    let limit = state.edge.max_frame_bytes;
    let tracker = state.connections.clone();
    ws.protocols(client_choice(&headers))
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(limit * 2)
        .max_frame_size(limit * 2)
        .on_upgrade(move |socket| tracker.track_future(connection::serve(socket, state, conn)))
}

/// The first subprotocol the client offers that the edge speaks: the client's preference wins,
/// as `docs/protocol.md` promises (axum alone would pick by the server's order).
fn client_choice(headers: &HeaderMap) -> Option<&'static str> {
    headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .find_map(|offered| SUBPROTOCOLS.into_iter().find(|known| *known == offered))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_first_known_subprotocol_is_chosen() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "sec-websocket-protocol",
            "mqtt, v11.stomp, v12.stomp".parse().expect("header"),
        );
        assert_eq!(client_choice(&headers), Some("v11.stomp"));
        headers.insert("sec-websocket-protocol", "mqtt".parse().expect("header"));
        assert_eq!(client_choice(&headers), None);
    }
}
