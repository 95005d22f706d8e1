//! Typing signals (`docs/protocol.md`, "Typing"): live only, never stored or replayed. A
//! member's SEND to `/pub/rooms/{roomId}/typing` goes out on the room's typing subject to every
//! edge with subscribers to the room; the edge that took it says `"typing": false` itself when
//! the typist goes quiet for [`QUIET_AFTER`], stops in the room, or disconnects, so a client
//! that vanishes never leaves others watching "typing…" for good.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chat_schemas::{RoomId, UserId};
use serde::Deserialize;
use serde_json::json;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::hub::Hub;
use super::rate::RateLimit;

/// How long after a typist's last `"typing": true` the edge announces `"typing": false`.
pub const QUIET_AFTER: Duration = Duration::from_secs(6);

/// Typing SENDs passed on per second per connection; more are dropped without an ERROR (a
/// keyboard handler firing too often is not a protocol violation).
pub const PER_SECOND: u32 = 2;

/// Body of a SEND to `/pub/rooms/{roomId}/typing`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypingBody {
    /// Whether the user is typing now.
    pub typing: bool,
}

/// The JSON body of a TYPING MESSAGE.
pub fn typing_json(room: &RoomId, user: &UserId, typing: bool) -> String {
    json!({"type": "TYPING", "roomId": room.to_string(), "userId": user, "typing": typing})
        .to_string()
}

/// One connection's typing: the rooms it says it is typing in, each with the timer that will
/// announce the end, and its rate limit.
pub struct Typist {
    hub: Arc<Hub>,
    user: UserId,
    typing: HashMap<RoomId, (AbortHandle, Instant)>,
    limit: RateLimit,
}

impl Typist {
    /// A connection of `user` that has typed nowhere yet.
    pub fn new(hub: Arc<Hub>, user: UserId) -> Self {
        Self {
            hub,
            user,
            typing: HashMap::new(),
            limit: RateLimit::new(PER_SECOND, PER_SECOND),
        }
    }

    /// Passes on a typing SEND of a member, unless the connection sent too many this second.
    pub async fn signal(&mut self, room: RoomId, typing: bool) {
        if !self.limit.take() {
            return;
        }
        if let Some((timer, _)) = self.typing.remove(&room) {
            timer.abort();
        }
        self.hub.publish_typing(room, &self.user, typing).await;
        if typing {
            let (hub, user) = (self.hub.clone(), self.user.clone());
            let quiet = tokio::spawn(async move {
                tokio::time::sleep(QUIET_AFTER).await;
                hub.publish_typing(room, &user, false).await;
            });
            self.typing
                .insert(room, (quiet.abort_handle(), Instant::now() + QUIET_AFTER));
        }
    }

    /// Announces at once that the user stopped typing in `room`, if they were.
    pub fn stop(&mut self, room: RoomId) {
        let Some((timer, quiet_at)) = self.typing.remove(&room) else {
            return;
        };
        timer.abort();
        if Instant::now() < quiet_at {
            let (hub, user) = (self.hub.clone(), self.user.clone());
            tokio::spawn(async move { hub.publish_typing(room, &user, false).await });
        }
    }

    /// Announces the end in every room: the connection is closing.
    pub fn stop_all(&mut self) {
        let rooms: Vec<RoomId> = self.typing.keys().copied().collect();
        for room in rooms {
            self.stop(room);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_exactly_one_boolean() {
        let parse = |s: &str| serde_json::from_str::<TypingBody>(s).map(|b| b.typing);
        assert_eq!(parse(r#"{"typing":true}"#).ok(), Some(true));
        assert_eq!(parse(r#"{"typing":false}"#).ok(), Some(false));
        assert!(parse(r#"{"typing":"yes"}"#).is_err());
        assert!(parse(r#"{}"#).is_err());
        assert!(parse(r#"{"typing":true,"content":"x"}"#).is_err());
    }

    #[test]
    fn the_message_names_the_room_and_the_typist() {
        let room = RoomId::random();
        let user = UserId::parse("alice").expect("valid");
        let body: serde_json::Value =
            serde_json::from_str(&typing_json(&room, &user, true)).expect("json");
        assert_eq!(
            body,
            json!({"type": "TYPING", "roomId": room.to_string(), "userId": "alice", "typing": true})
        );
    }
}
