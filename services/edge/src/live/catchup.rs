//! Reading a room's stored events back from the log: resuming a subscription with `since`, and
//! filling a gap when a live event shows one was missed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::stream::{DirectGetErrorKind, RawMessageErrorKind, Stream};
use chat_platform::backoff::Backoff;
use chat_read_state::UnreadCounts;
use chat_schemas::{decode, ChatEvent, EventLog, RoomId};
use tokio::time::{sleep, timeout, Instant};

use crate::events::{from_history, room_event, RoomEvent};
use crate::store::Store;

/// The log could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the event log: {0}")]
pub struct CatchUpError(String);

/// How long one read waits for its answer before it is asked again. Any replica answers a direct
/// get, and until the other servers notice that one stalled (frozen, cut off: about 6 s) they
/// still route some reads to it, which never answer; the client's own limit is 10 s.
const READ_ATTEMPT: Duration = Duration::from_secs(2);

/// How long a read is asked again before the subscription gives up with `UNAVAILABLE`: longer
/// than a JetStream leader election.
const READ_RETRY_FOR: Duration = Duration::from_secs(15);

/// The longest pause between two attempts of a read.
const MAX_READ_PAUSE: Duration = Duration::from_millis(500);

/// Tries `read` until it answers, each attempt for at most [`READ_ATTEMPT`], for up to
/// [`READ_RETRY_FOR`]; returns the last failure after that. Only for reads, which may be
/// repeated at will.
async fn patiently<T, F, Fut>(mut read: F) -> Result<T, CatchUpError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CatchUpError>>,
{
    let deadline = Instant::now() + READ_RETRY_FOR;
    let mut backoff = Backoff::new(Backoff::DEFAULT_INITIAL, MAX_READ_PAUSE);
    loop {
        let error = match timeout(READ_ATTEMPT, read()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => error,
            Err(_) => CatchUpError(format!("no answer within {READ_ATTEMPT:?}")),
        };
        let delay = backoff.next_delay();
        if Instant::now() + delay >= deadline {
            return Err(error);
        }
        tracing::warn!(%error, attempt = backoff.attempts(), "log read failed; retrying");
        sleep(delay).await;
    }
}

/// Reads stored room events from the stream, and from the projection for events the stream no
/// longer holds (past its retention), with CHATs' current `unreadCount` from Redis.
pub struct CatchUp {
    stream: Stream,
    log: EventLog,
    store: Arc<Store>,
    unread: UnreadCounts,
}

impl CatchUp {
    /// Reads from the log's stream, from `store` and from `unread`.
    pub fn new(stream: Stream, log: EventLog, store: Arc<Store>, unread: UnreadCounts) -> Self {
        Self {
            stream,
            log,
            store,
            unread,
        }
    }

    /// The current `unreadCount` of message `seq` of `room`, sent by `sender`.
    async fn unread_count(
        &self,
        room: RoomId,
        seq: u64,
        sender: &str,
    ) -> Result<u64, CatchUpError> {
        let counts = self
            .unread
            .of_messages(&room, &[(seq, sender)])
            .await
            .map_err(|e| CatchUpError(e.to_string()))?;
        Ok(counts.first().copied().unwrap_or(0))
    }

    /// Whether `seq` is a stored event of `room`, in the log or, past its retention, in the
    /// projection; asked again while the log does not answer (see [`patiently`]).
    pub async fn is_room_event(&self, room: RoomId, seq: u64) -> Result<bool, CatchUpError> {
        patiently(|| self.is_room_event_once(room, seq)).await
    }

    /// One attempt of [`CatchUp::is_room_event`].
    async fn is_room_event_once(&self, room: RoomId, seq: u64) -> Result<bool, CatchUpError> {
        let found = match self.stream.direct_get(seq).await {
            Ok(message) => Ok(message),
            // Any replica answers a direct get; only the leader's "not found" is sure.
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => {
                self.stream.get_raw_message(seq).await
            }
            Err(e) => return Err(CatchUpError(e.to_string())),
        };
        match found {
            Ok(message) => Ok(message.subject.as_str() == self.log.room_subject(&room)),
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => {
                if seq >= self.first_sequence().await? {
                    return Ok(false);
                }
                let id = i64::try_from(seq).map_err(|e| CatchUpError(e.to_string()))?;
                let found = self.store.message(room, id).await;
                Ok(found.map_err(|e| CatchUpError(e.to_string()))?.is_some())
            }
            Err(e) => Err(CatchUpError(e.to_string())),
        }
    }

    /// The oldest sequence the stream still holds.
    async fn first_sequence(&self) -> Result<u64, CatchUpError> {
        let mut stream = self.stream.clone();
        let info = stream
            .info()
            .await
            .map_err(|e| CatchUpError(e.to_string()))?;
        Ok(info.state.first_sequence)
    }

    /// The next event after `after` from the projection, when the stream no longer holds it.
    async fn next_from_projection(
        &self,
        room: RoomId,
        after: u64,
        until: u64,
    ) -> Result<Option<RoomEvent>, CatchUpError> {
        let first = self.first_sequence().await?;
        if after + 1 >= first {
            return Ok(None);
        }
        let after = i64::try_from(after).map_err(|e| CatchUpError(e.to_string()))?;
        let entries = self
            .store
            .history_after(room, after, 1)
            .await
            .map_err(|e| CatchUpError(e.to_string()))?;
        let Some(entry) = entries.first() else {
            return Ok(None);
        };
        let seq = u64::try_from(entry.id).unwrap_or_default();
        if seq >= first || seq > until {
            return Ok(None);
        }
        let sender = entry.sender_id.as_deref().unwrap_or_default();
        let unread = self.unread_count(room, seq, sender).await?;
        Ok(Some(from_history(entry, unread)))
    }

    /// The next stored event of `room` after sequence `after` that clients see, if any, up to
    /// and including `until`; asked again while the log does not answer (see [`patiently`]).
    pub async fn next(
        &self,
        room: RoomId,
        after: u64,
        until: u64,
    ) -> Result<Option<RoomEvent>, CatchUpError> {
        patiently(|| self.next_once(room, after, until)).await
    }

    /// One attempt of [`CatchUp::next`].
    async fn next_once(
        &self,
        room: RoomId,
        after: u64,
        until: u64,
    ) -> Result<Option<RoomEvent>, CatchUpError> {
        if let Some(event) = self.next_from_projection(room, after, until).await? {
            return Ok(Some(event));
        }
        let subject = self.log.room_subject(&room);
        let mut from = after + 1;
        while from <= until {
            let direct = self
                .stream
                .direct_get_builder()
                .sequence(from)
                .next_by_subject(subject.clone())
                .send()
                .await;
            let message = match direct {
                Ok(message) => message,
                // Any replica answers a direct get; one still catching up (just restarted or
                // thawed) has not got the latest events, so only the leader's "none" ends it.
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => {
                    let leader = self
                        .stream
                        .raw_message_builder()
                        .sequence(from)
                        .next_by_subject(subject.clone())
                        .send()
                        .await;
                    match leader {
                        Ok(message) => message,
                        Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => {
                            return Ok(None)
                        }
                        Err(e) => return Err(CatchUpError(e.to_string())),
                    }
                }
                Err(e) => return Err(CatchUpError(e.to_string())),
            };
            if message.sequence > until {
                return Ok(None);
            }
            if let Ok(envelope) = decode(&message.payload) {
                let unread = match envelope.event {
                    ChatEvent::Chat { .. } => {
                        let sender = envelope.actor.as_str();
                        Some(self.unread_count(room, message.sequence, sender).await?)
                    }
                    _ => None,
                };
                if let Some(event) = room_event(message.sequence, after, &envelope, unread) {
                    return Ok(Some(event));
                }
            }
            from = message.sequence + 1;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_failing_read_is_asked_again_until_it_answers() {
        let calls = AtomicUsize::new(0);
        let answer = patiently(|| async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(CatchUpError(
                    "JetStream system temporarily unavailable".into(),
                )),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(answer.ok(), Some(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_read_that_never_answers_is_abandoned_after_one_attempt_and_asked_again() {
        let calls = AtomicUsize::new(0);
        let started = Instant::now();
        let answer = patiently(|| async {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                std::future::pending::<()>().await;
            }
            Ok(7)
        })
        .await;
        assert_eq!(answer.ok(), Some(7));
        let waited = started.elapsed();
        assert!(
            waited >= READ_ATTEMPT && waited < READ_ATTEMPT + Duration::from_secs(1),
            "the unanswered attempt ends after {READ_ATTEMPT:?}, not the client's 10 s: {waited:?}"
        );
    }
}
