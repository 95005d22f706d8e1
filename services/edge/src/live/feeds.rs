//! Room-list feeds: after an event is stored, the edge that wrote it tells each affected user on
//! `chat.user.{userId}`. Only stored, first-time appends are announced, so a retried or
//! rejected publish never reaches a feed.

use std::collections::BTreeSet;

use async_nats::{Client, HeaderMap};
use chat_schemas::{ChatEvent, Envelope, EventLog, UserId};

use super::hub::MESSAGE_ID_HEADER;
use crate::events::client_json;

/// Publishes feed events.
pub struct UserFeeds {
    nats: Client,
    log: EventLog,
}

impl UserFeeds {
    /// Feeds on the log's subjects.
    pub fn new(nats: Client, log: EventLog) -> Self {
        Self { nats, log }
    }

    /// Announces a stored event to the users whose room list it changes: every member for a
    /// CHAT, the first members of a new room, the invited for an INVITE.
    pub async fn announce(&self, seq: u64, envelope: &Envelope, members: &BTreeSet<String>) {
        let recipients: Vec<UserId> = match &envelope.event {
            ChatEvent::Chat { .. } => members
                .iter()
                .filter_map(|m| UserId::parse(m).ok())
                .collect(),
            ChatEvent::RoomCreated { members, .. } => members.clone(),
            ChatEvent::Invite { user_ids } => user_ids.clone(),
            _ => return,
        };
        let Some((_, body)) = client_json(seq, envelope) else {
            return;
        };
        let payload = bytes::Bytes::from(body.to_string());
        let mut headers = HeaderMap::new();
        headers.insert(MESSAGE_ID_HEADER, seq.to_string().as_str());
        for user in recipients {
            let subject = self.log.user_subject(&user);
            if let Err(e) = self
                .nats
                .publish_with_headers(subject, headers.clone(), payload.clone())
                .await
            {
                tracing::warn!(error = %e, %user, "cannot publish to a user feed");
            }
        }
    }
}
