//! Fan-out on one edge: a NATS subscription per room or user that at least one local connection
//! listens to, dropped with the last listener, delivering into each connection's bounded mailbox.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_nats::{Client, HeaderMap};
use chat_schemas::{EventLog, RoomId, UserId};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::typing::typing_json;
use crate::events::RoomEvent;

/// Identifies one connection on this edge.
pub type ConnId = u64;

/// Something for a connection to deliver.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A stored event of a room the connection subscribed to.
    Room {
        /// The room.
        room: RoomId,
        /// The event, shared by every listener.
        event: Arc<RoomEvent>,
    },
    /// Someone started or stopped typing in a room the connection subscribed to (live only).
    Typing {
        /// The room.
        room: RoomId,
        /// Who: their own subscriptions skip it.
        typist: UserId,
        /// The TYPING JSON body.
        body: Arc<str>,
    },
    /// An event of the connection user's room-list feed.
    User {
        /// Its `messageId`.
        message_id: Arc<str>,
        /// Its JSON body.
        body: Arc<str>,
        /// Its room and log position, read once for every listener, so a subscription can drop
        /// an entry a receipts worker published again; `None` from a worker that does not name
        /// the room (the entry is then delivered without the check).
        position: Option<(RoomId, u64)>,
    },
}

/// Where the hub delivers for one connection; a full mailbox disconnects that connection only.
#[derive(Debug, Clone)]
pub struct Mailbox {
    /// The connection's bounded queue.
    pub tx: mpsc::Sender<Delivery>,
    /// Cancelled when the queue overflowed: the client cannot keep up.
    pub overflowed: CancellationToken,
}

impl Mailbox {
    fn deliver(&self, delivery: Delivery) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(delivery) {
            self.overflowed.cancel();
        }
    }
}

/// The hub could not subscribe.
#[derive(Debug, thiserror::Error)]
#[error("cannot subscribe to {subject}: {message}")]
pub struct HubError {
    subject: String,
    message: String,
}

/// Local listeners of one subject and the task reading it.
struct Topic {
    listeners: HashMap<ConnId, (Mailbox, usize)>,
    reader: JoinHandle<()>,
}

type Topics<K> = Mutex<HashMap<K, Topic>>;

/// The edge's subscriptions to room and user subjects.
pub struct Hub {
    nats: Client,
    log: EventLog,
    rooms: Topics<RoomId>,
    typing: Topics<RoomId>,
    users: Topics<UserId>,
}

fn lock<K>(topics: &Topics<K>) -> MutexGuard<'_, HashMap<K, Topic>> {
    topics.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    /// A hub with no subscriptions yet.
    pub fn new(nats: Client, log: EventLog) -> Arc<Self> {
        Arc::new(Self {
            nats,
            log,
            rooms: Mutex::new(HashMap::new()),
            typing: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
        })
    }

    /// Starts delivering `room`'s view events (as the receipts worker publishes them) and its
    /// typing signals to `conn` (counted: one call per subscription).
    pub async fn listen_room(
        self: &Arc<Self>,
        room: RoomId,
        conn: ConnId,
        mailbox: &Mailbox,
    ) -> Result<(), HubError> {
        self.listen_view(room, conn, mailbox).await?;
        if let Err(e) = self.listen_typing(room, conn, mailbox).await {
            unlisten(&self.rooms, &room, conn);
            return Err(e);
        }
        Ok(())
    }

    async fn listen_view(
        self: &Arc<Self>,
        room: RoomId,
        conn: ConnId,
        mailbox: &Mailbox,
    ) -> Result<(), HubError> {
        let subject = self.log.view_room_subject(&room);
        self.listen(
            &self.rooms,
            room,
            subject,
            conn,
            mailbox,
            move |hub, message| {
                let event = decode_room_event(&message.headers, &message.payload)?;
                hub.fan_out(
                    &hub.rooms,
                    &room,
                    Delivery::Room {
                        room,
                        event: Arc::new(event),
                    },
                );
                Some(())
            },
        )
        .await
    }

    async fn listen_typing(
        self: &Arc<Self>,
        room: RoomId,
        conn: ConnId,
        mailbox: &Mailbox,
    ) -> Result<(), HubError> {
        let subject = self.log.typing_subject(&room);
        self.listen(
            &self.typing,
            room,
            subject,
            conn,
            mailbox,
            move |hub, message| {
                let typist = message.headers.as_ref()?.get(EventLog::TYPIST_HEADER)?;
                let typist = UserId::parse(typist.as_str()).ok()?;
                let body = std::str::from_utf8(&message.payload).ok()?;
                hub.fan_out(
                    &hub.typing,
                    &room,
                    Delivery::Typing {
                        room,
                        typist,
                        body: Arc::from(body),
                    },
                );
                Some(())
            },
        )
        .await
    }

    /// Stops one of `conn`'s subscriptions to `room`.
    pub fn unlisten_room(&self, room: &RoomId, conn: ConnId) {
        unlisten(&self.rooms, room, conn);
        unlisten(&self.typing, room, conn);
    }

    /// Tells every edge with subscribers to `room` that `user` is typing there, or stopped.
    /// Best effort, like the signal itself: a failed publish is logged, not retried.
    pub async fn publish_typing(&self, room: RoomId, user: &UserId, typing: bool) {
        let mut headers = HeaderMap::new();
        headers.insert(EventLog::TYPIST_HEADER, user.as_str());
        let body = typing_json(&room, user, typing);
        let subject = self.log.typing_subject(&room);
        if let Err(error) = self
            .nats
            .publish_with_headers(subject, headers, body.into())
            .await
        {
            tracing::warn!(%error, %room, "cannot publish a typing signal");
        }
    }

    /// Starts delivering `user`'s feed to `conn` (counted like rooms).
    pub async fn listen_user(
        self: &Arc<Self>,
        user: UserId,
        conn: ConnId,
        mailbox: &Mailbox,
    ) -> Result<(), HubError> {
        let subject = self.log.user_subject(&user);
        let key = user.clone();
        self.listen(
            &self.users,
            user,
            subject,
            conn,
            mailbox,
            move |hub, message| {
                let headers = message.headers.as_ref()?;
                let message_id = headers.get(EventLog::MESSAGE_ID_HEADER)?.as_str();
                let position = headers
                    .get(EventLog::ROOM_HEADER)
                    .and_then(|room| room.as_str().parse().ok())
                    .zip(message_id.parse().ok());
                let body = std::str::from_utf8(&message.payload).ok()?;
                hub.fan_out(
                    &hub.users,
                    &key,
                    Delivery::User {
                        message_id: Arc::from(message_id),
                        body: Arc::from(body),
                        position,
                    },
                );
                Some(())
            },
        )
        .await
    }

    /// Stops one of `conn`'s subscriptions to `user`'s feed.
    pub fn unlisten_user(&self, user: &UserId, conn: ConnId) {
        unlisten(&self.users, user, conn);
    }

    async fn listen<K, F>(
        self: &Arc<Self>,
        topics: &Topics<K>,
        key: K,
        subject: String,
        conn: ConnId,
        mailbox: &Mailbox,
        handle: F,
    ) -> Result<(), HubError>
    where
        K: Hash + Eq + Clone + Send + 'static,
        F: Fn(&Hub, async_nats::Message) -> Option<()> + Send + 'static,
    {
        if add_listener(&mut lock(topics), &key, conn, mailbox) {
            return Ok(());
        }
        let mut subscriber = self
            .nats
            .subscribe(subject.clone())
            .await
            .map_err(|e| HubError {
                subject: subject.clone(),
                message: e.to_string(),
            })?;
        // The first event must not overtake the registration of this listener.
        let mut topics_guard = lock(topics);
        if add_listener(&mut topics_guard, &key, conn, mailbox) {
            return Ok(());
        }
        let hub = Arc::downgrade(self);
        let reader = tokio::spawn(async move {
            while let Some(message) = subscriber.next().await {
                let Some(hub) = hub.upgrade() else { break };
                if handle(&hub, message).is_none() {
                    tracing::warn!(%subject, "dropped an undecodable live event");
                }
            }
        });
        topics_guard.insert(
            key,
            Topic {
                listeners: HashMap::from([(conn, (mailbox.clone(), 1))]),
                reader,
            },
        );
        Ok(())
    }

    fn fan_out<K: Hash + Eq>(&self, topics: &Topics<K>, key: &K, delivery: Delivery) {
        let topics = lock(topics);
        if let Some(topic) = topics.get(key) {
            for (mailbox, _) in topic.listeners.values() {
                mailbox.deliver(delivery.clone());
            }
        }
    }
}

/// Adds one subscription of `conn` to an existing topic; false when there is no topic yet.
fn add_listener<K: Hash + Eq>(
    topics: &mut HashMap<K, Topic>,
    key: &K,
    conn: ConnId,
    mailbox: &Mailbox,
) -> bool {
    let Some(topic) = topics.get_mut(key) else {
        return false;
    };
    topic
        .listeners
        .entry(conn)
        .or_insert_with(|| (mailbox.clone(), 0))
        .1 += 1;
    true
}

fn unlisten<K: Hash + Eq>(topics: &Topics<K>, key: &K, conn: ConnId) {
    let mut topics = lock(topics);
    let Some(topic) = topics.get_mut(key) else {
        return;
    };
    if let Some((_, count)) = topic.listeners.get_mut(&conn) {
        *count -= 1;
        if *count == 0 {
            topic.listeners.remove(&conn);
        }
    }
    if topic.listeners.is_empty() {
        if let Some(topic) = topics.remove(key) {
            topic.reader.abort();
        }
    }
}

/// A view event: sequence headers set by the receipts worker, payload the client JSON.
fn decode_room_event(headers: &Option<HeaderMap>, payload: &[u8]) -> Option<RoomEvent> {
    let headers = headers.as_ref()?;
    let number = |name: &str| headers.get(name)?.as_str().parse::<u64>().ok();
    let seq = number(EventLog::SEQUENCE_HEADER)?;
    let previous = number(EventLog::PREVIOUS_HEADER).unwrap_or(0);
    let leaver = headers
        .get(EventLog::LEAVER_HEADER)
        .and_then(|value| UserId::parse(value.as_str()).ok());
    let body = std::str::from_utf8(payload).ok()?.to_owned();
    Some(RoomEvent {
        seq,
        previous,
        leaver,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_mailbox_marks_its_connection_as_too_slow() {
        let (tx, mut rx) = mpsc::channel(2);
        let mailbox = Mailbox {
            tx,
            overflowed: CancellationToken::new(),
        };
        let delivery = Delivery::User {
            message_id: Arc::from("1"),
            body: Arc::from("{}"),
            position: None,
        };
        mailbox.deliver(delivery.clone());
        mailbox.deliver(delivery.clone());
        assert!(!mailbox.overflowed.is_cancelled());
        mailbox.deliver(delivery.clone());
        assert!(
            mailbox.overflowed.is_cancelled(),
            "the third delivery overflows"
        );
        assert!(rx.try_recv().is_ok() && rx.try_recv().is_ok() && rx.try_recv().is_err());
    }
}
