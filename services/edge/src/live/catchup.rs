//! Reading a room's stored events back from the log: resuming a subscription with `since`, and
//! filling a gap when a live event shows one was missed.

use async_nats::jetstream::stream::{DirectGetErrorKind, Stream};
use chat_schemas::{decode, EventLog, RoomId};

use crate::events::{room_event, RoomEvent};

/// The log could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the event log: {0}")]
pub struct CatchUpError(String);

/// Reads stored room events directly from the stream.
pub struct CatchUp {
    stream: Stream,
    log: EventLog,
}

impl CatchUp {
    /// Reads from the log's stream.
    pub fn new(stream: Stream, log: EventLog) -> Self {
        Self { stream, log }
    }

    /// Whether `seq` is a stored event of `room`.
    pub async fn is_room_event(&self, room: RoomId, seq: u64) -> Result<bool, CatchUpError> {
        match self.stream.direct_get(seq).await {
            Ok(message) => Ok(message.subject.as_str() == self.log.room_subject(&room)),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(false),
            Err(e) => Err(CatchUpError(e.to_string())),
        }
    }

    /// The sequence of the room's latest stored event, 0 when it has none.
    pub async fn last(&self, room: RoomId) -> Result<u64, CatchUpError> {
        match self
            .stream
            .direct_get_last_for_subject(self.log.room_subject(&room))
            .await
        {
            Ok(message) => Ok(message.sequence),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(0),
            Err(e) => Err(CatchUpError(e.to_string())),
        }
    }

    /// The next stored event of `room` after sequence `after` that clients see, if any, up to
    /// and including `until`.
    pub async fn next(
        &self,
        room: RoomId,
        after: u64,
        until: u64,
    ) -> Result<Option<RoomEvent>, CatchUpError> {
        let subject = self.log.room_subject(&room);
        let mut from = after + 1;
        while from <= until {
            let message = match self
                .stream
                .direct_get_builder()
                .sequence(from)
                .next_by_subject(subject.clone())
                .send()
                .await
            {
                Ok(message) => message,
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(CatchUpError(e.to_string())),
            };
            if message.sequence > until {
                return Ok(None);
            }
            if let Some(event) = decode(&message.payload)
                .ok()
                .and_then(|envelope| room_event(message.sequence, after, &envelope))
            {
                return Ok(Some(event));
            }
            from = message.sequence + 1;
        }
        Ok(None)
    }
}
