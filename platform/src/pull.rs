//! Reading a durable consumer through one long-lived pull, in batches of what has arrived.
//!
//! A `fetch()` per batch costs the server a pull request and the client a fresh inbox
//! subscription (SUB, request, UNSUB) every time; under load a batch holds one or two events,
//! so those round trips were a large share of what NATS did for each message. One pull
//! subscription per consumer instead asks for many events at once, asks again before they run
//! out, and keeps its inbox for as long as it lives. Batches are then formed on this side: the
//! first event that arrives, and every one that arrived behind it, up to a limit.

use std::time::Duration;

use async_nats::jetstream::consumer::pull::{MessagesError, Stream as Messages};
use async_nats::jetstream::consumer::{PullConsumer, StreamError};
use async_nats::jetstream::Message;
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;

/// How long one pull request waits on the server when the log is idle before the client sends
/// a fresh one. Kept short so that a request stranded on a server that stopped answering (a
/// frozen or killed consumer leader) is not waited on for long.
pub const REQUEST_EXPIRES: Duration = Duration::from_secs(2);

/// How often the server says a waiting pull request is still alive. Two missing in a row end
/// the pull with an error, and the next batch opens a new one.
pub const IDLE_HEARTBEAT: Duration = Duration::from_millis(500);

/// Why no batch could be read.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The pull subscription could not be opened.
    #[error("cannot open a pull on the consumer: {0}")]
    Open(#[from] StreamError),
    /// The open pull failed (missed heartbeats, the consumer deleted, a refused request); the
    /// next call opens a new one.
    #[error("the pull on the consumer failed: {0}")]
    Messages(#[from] MessagesError),
}

/// One durable consumer read through a long-lived pull, opened on first use and again after an
/// error.
pub struct Pull {
    consumer: PullConsumer,
    /// How many events one pull request asks for: the consumer's `max_ack_pending`, so that
    /// the server can hand out as many as it will ever have unacked.
    request_size: usize,
    /// How long a batch waits for more events after its first, while the log is busy (zero:
    /// takes only those that already arrived).
    linger: Duration,
    /// When the last batch was handed out: a first event that comes later than `linger` after
    /// it, with nothing waiting behind it, finds an idle log, and its batch does not wait.
    handed_out: Option<tokio::time::Instant>,
    /// The highest stream sequence someone waits for the consumer to finish (see
    /// [`Pull::cut_short_by`]); `None`: nobody ever does.
    awaited: Option<watch::Receiver<u64>>,
    messages: Option<Messages>,
    /// `chat_consumer_pending_events` for this consumer: the events still to deliver, as the
    /// last delivered one reported it, so lag costs no consumer-info request.
    pending: metrics::Gauge,
}

impl Pull {
    /// A pull on `consumer` asking for `request_size` events per request; nothing is sent
    /// before the first [`Pull::next_batch`].
    pub fn new(consumer: PullConsumer, request_size: usize) -> Self {
        let pending = metrics::gauge!(
            "chat_consumer_pending_events",
            "consumer" => consumer.cached_info().name.clone()
        );
        Self {
            consumer,
            request_size: request_size.max(1),
            linger: Duration::ZERO,
            handed_out: None,
            awaited: None,
            messages: None,
            pending,
        }
    }

    /// Lets each batch wait up to `linger` after its first event for more, up to its limit:
    /// fewer, larger batches for a consumer whose cost is per batch more than per event. Only
    /// while the log is busy: the consumer has events waiting behind the first, or the first
    /// came within `linger` of the previous batch. A lone event after a quiet spell is handed
    /// out at once, so it is never delayed, and under load or a backlog batches fill up.
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Ends a batch's linger as soon as `awaited` reaches its first event: someone waits for
    /// that event to be handled (an HTTP write waiting to read itself), so it must not wait
    /// for more.
    pub fn cut_short_by(mut self, awaited: watch::Receiver<u64>) -> Self {
        self.awaited = Some(awaited);
        self
    }

    /// Waits up to `wait` for an event, then takes those that arrived behind it, or arrive
    /// within the linger while the log is busy ([`Pull::with_linger`]) and nobody awaits the
    /// batch ([`Pull::cut_short_by`]), up to `max` in all. An empty batch means the log was
    /// idle for `wait`.
    ///
    /// An error mid-batch ends the batch with what arrived before it (an error is returned
    /// only when nothing did), and the next call opens a new pull. Events the old one had
    /// received but not handed out stay pending on the consumer: one that acks cumulatively
    /// sees the next batch jump over them ([`crate::log_order`]).
    pub async fn next_batch(
        &mut self,
        wait: Duration,
        max: usize,
    ) -> Result<Vec<Message>, PullError> {
        let messages = match &mut self.messages {
            Some(messages) => messages,
            None => self.messages.insert(
                self.consumer
                    .stream()
                    .max_messages_per_batch(self.request_size)
                    .expires(REQUEST_EXPIRES)
                    .heartbeat(IDLE_HEARTBEAT)
                    .messages()
                    .await?,
            ),
        };
        let first = match tokio::time::timeout(wait, messages.next()).await {
            Err(_idle) => return Ok(Vec::new()),
            Ok(first) => first,
        };
        let waiting_behind = first
            .as_ref()
            .and_then(|arrived| arrived.as_ref().ok())
            .and_then(|message| message.info().ok())
            .is_some_and(|info| info.pending > 0);
        let busy = waiting_behind
            || self
                .handed_out
                .is_some_and(|at| at.elapsed() <= self.linger);
        let linger = if busy { self.linger } else { Duration::ZERO };
        let batch = self.gather(first, max, linger).await;
        self.handed_out = Some(tokio::time::Instant::now());
        let batch = batch?;
        if let Some(pending) = batch.last().and_then(|last| last.info().ok()) {
            self.pending.set(pending.pending as f64);
        }
        Ok(batch)
    }

    /// The batch that starts with `first`: see [`Pull::next_batch`].
    async fn gather(
        &mut self,
        first: Option<Result<Message, MessagesError>>,
        max: usize,
        linger: Duration,
    ) -> Result<Vec<Message>, PullError> {
        let Some(messages) = self.messages.as_mut() else {
            return Ok(Vec::new());
        };
        let mut batch: Vec<Message> = Vec::new();
        let until = tokio::time::Instant::now() + linger;
        let mut awaited = self.awaited.clone();
        let mut first_seq = u64::MAX;
        let mut next = first;
        loop {
            match next {
                Some(Ok(message)) => {
                    if batch.is_empty() {
                        first_seq = message.info().map_or(0, |info| info.stream_sequence);
                    }
                    batch.push(message);
                }
                Some(Err(error)) => {
                    self.messages = None;
                    if batch.is_empty() {
                        return Err(error.into());
                    }
                    tracing::debug!(%error, "the pull ended mid-batch");
                    return Ok(batch);
                }
                None => {
                    self.messages = None;
                    return Ok(batch);
                }
            }
            if batch.len() >= max {
                return Ok(batch);
            }
            next = match messages.next().now_or_never() {
                Some(arrived) => arrived,
                None if tokio::time::Instant::now() < until
                    && !reached(&mut awaited, first_seq) =>
                {
                    tokio::select! {
                        arrived = messages.next() => arrived,
                        () = tokio::time::sleep_until(until) => return Ok(batch),
                        () = awaited_reaches(&mut awaited, first_seq) => return Ok(batch),
                    }
                }
                None => return Ok(batch),
            };
        }
    }
}

/// Whether someone awaits the event at `seq` or a later one.
fn reached(awaited: &mut Option<watch::Receiver<u64>>, seq: u64) -> bool {
    awaited
        .as_mut()
        .is_some_and(|awaited| *awaited.borrow_and_update() >= seq)
}

/// Completes once someone awaits the event at `seq` or a later one; never, without a source
/// of awaited sequences or once it is gone.
async fn awaited_reaches(awaited: &mut Option<watch::Receiver<u64>>, seq: u64) {
    match awaited {
        Some(awaited) => {
            if awaited.wait_for(|awaited| *awaited >= seq).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}
