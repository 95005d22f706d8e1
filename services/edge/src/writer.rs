//! Appending events to a room's subject in the JetStream log, and only there: the edge never
//! writes a projection itself.

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{LastRawMessageErrorKind, Stream};
use async_nats::jetstream::Context;
use std::time::Duration;

use chat_platform::append::ATTEMPT_TIMEOUT;
use chat_platform::backoff::Backoff;
use chat_schemas::{encode, Envelope, EventLog, RoomId};
use tokio::time::{timeout, Instant};

/// An append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The room's log moved past the expected sequence: someone else wrote first.
    #[error("the room changed concurrently")]
    Conflict,
    /// JetStream did not store the event.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
}

/// Where an appended event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Its stream sequence, which is also its message id.
    pub sequence: u64,
    /// JetStream had already stored an event with the same deduplication id; `sequence` is
    /// that earlier event's.
    pub duplicate: bool,
}

/// The longest pause between two attempts of one append: an attempt costs JetStream next to
/// nothing, and during a leader election the first attempt after it should come soon, since a
/// client is waiting for its receipt.
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// How long an append is tried, and how long each attempt waits for its ack.
#[derive(Debug, Clone, Copy)]
pub struct AppendPatience {
    /// Retries stop once this has passed since the first attempt.
    pub retry_for: Duration,
    /// One attempt without an ack after this counts as failed and is tried again.
    pub attempt_timeout: Duration,
}

/// Appends events to the log and reads the position of a room's latest event.
pub struct EventWriter {
    jetstream: Context,
    stream: Stream,
    log: EventLog,
    patience: AppendPatience,
}

impl EventWriter {
    /// A writer for the log's stream, which must exist; an append that fails for a reason that
    /// may pass (a NATS restart, a leader election) is tried again as `patience` says.
    pub fn new(
        jetstream: Context,
        stream: Stream,
        log: EventLog,
        patience: AppendPatience,
    ) -> Self {
        Self {
            jetstream,
            stream,
            log,
            patience,
        }
    }

    /// Stores `envelope` on its room's subject and waits for JetStream's durable ack; each
    /// attempt gives up after [`AppendPatience::attempt_timeout`].
    ///
    /// `dedup_id` makes a retried append a no-op. With `expected_last`, the append only
    /// happens if the room's latest stored event is still at that sequence (0: the room has no
    /// events yet), which serialises membership changes without locks.
    ///
    /// A failure is retried with the same `dedup_id` until the retry time runs out: an attempt
    /// whose ack was lost may have stored the event, and the retry then answers with that
    /// event instead of storing a copy. So `Unavailable` comes only after every attempt
    /// failed, and even then the event may be stored: the caller cannot tell, and says so.
    pub async fn append(
        &self,
        envelope: &Envelope,
        dedup_id: &str,
        expected_last: Option<u64>,
    ) -> Result<Appended, AppendError> {
        let deadline = Instant::now() + self.patience.retry_for;
        let mut backoff = Backoff::new(Backoff::DEFAULT_INITIAL, MAX_RETRY_PAUSE);
        loop {
            match self.append_once(envelope, dedup_id, expected_last).await {
                Err(AppendError::Unavailable(reason)) => {
                    let delay = backoff.next_delay();
                    if Instant::now() + delay >= deadline {
                        return Err(AppendError::Unavailable(reason));
                    }
                    tracing::warn!(%reason, attempt = backoff.attempts(), "append failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                done => return done,
            }
        }
    }

    /// One attempt of [`EventWriter::append`].
    async fn append_once(
        &self,
        envelope: &Envelope,
        dedup_id: &str,
        expected_last: Option<u64>,
    ) -> Result<Appended, AppendError> {
        let payload = encode(envelope).map_err(|e| AppendError::Unavailable(e.to_string()))?;
        let mut publish = PublishMessage::build()
            .payload(payload.into())
            .message_id(dedup_id);
        if let Some(sequence) = expected_last {
            publish = publish.expected_last_subject_sequence(sequence);
        }
        let subject = self.log.room_subject(&envelope.room_id);
        let attempt = async { self.jetstream.send_publish(subject, publish).await?.await };
        let ack = timeout(self.patience.attempt_timeout, attempt)
            .await
            .map_err(|_| timed_out(self.patience.attempt_timeout))?
            .map_err(classify)?;
        Ok(Appended {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    /// The sequence of the room's latest stored event, 0 when it has none; gives up after
    /// [`ATTEMPT_TIMEOUT`]. Asked of the stream's leader: a direct get may be answered by a
    /// replica still catching up, with an older event.
    pub async fn last_sequence(&self, room: RoomId) -> Result<u64, AppendError> {
        let subject = self.log.room_subject(&room);
        let last = self.stream.get_last_raw_message_by_subject(&subject);
        match timeout(ATTEMPT_TIMEOUT, last)
            .await
            .map_err(|_| timed_out(ATTEMPT_TIMEOUT))?
        {
            Ok(message) => Ok(message.sequence),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(0),
            Err(e) => Err(AppendError::Unavailable(e.to_string())),
        }
    }

    /// The sequence of the log's latest stored event, in any room; gives up after
    /// [`ATTEMPT_TIMEOUT`].
    pub async fn last_stored(&self) -> Result<u64, AppendError> {
        let info = timeout(ATTEMPT_TIMEOUT, self.stream.get_info())
            .await
            .map_err(|_| timed_out(ATTEMPT_TIMEOUT))?
            .map_err(|e| AppendError::Unavailable(e.to_string()))?;
        Ok(info.state.last_sequence)
    }
}

/// A single attempt gave up after `waited`: JetStream did not answer, or every ack permit of the
/// context was taken (async-nats waits for one without a timeout), which must end in a 503,
/// never in a request that hangs.
fn timed_out(waited: Duration) -> AppendError {
    AppendError::Unavailable(format!("no answer within {waited:?}"))
}

fn classify(error: async_nats::jetstream::context::PublishError) -> AppendError {
    match error.kind() {
        PublishErrorKind::WrongLastSequence => AppendError::Conflict,
        _ => AppendError::Unavailable(error.to_string()),
    }
}
