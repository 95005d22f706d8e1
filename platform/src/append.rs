//! Appending to the JetStream log without ever blocking for good.
//!
//! async-nats lends each JetStream context 5,000 ack permits and holds one per publish until its
//! ack is awaited or dropped; the next publish waits for a free permit without any timeout. A
//! task that publishes a batch of more than 5,000 before awaiting the first ack therefore waits
//! forever on itself, and every other publish on the same context (every write of an edge) waits
//! with it. [`append_batch`] keeps at most [`MAX_IN_FLIGHT`] appends of a batch unacknowledged
//! and bounds each by [`ATTEMPT_TIMEOUT`], so a batch of any size goes through at full speed and
//! fails, rather than hangs, when JetStream does not answer.

use std::time::Duration;

use async_nats::jetstream::context::{PublishAckFuture, PublishError};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::Context;
use futures::{Stream, StreamExt};

/// How many appends of one batch may await their ack at once: enough to keep JetStream busy on
/// loopback (a larger window gave no more throughput), and far below the context's 5,000 permits,
/// which every other publisher on the context shares.
pub const MAX_IN_FLIGHT: usize = 256;

/// The longest one append may take, from waiting for an ack permit to the durable ack; the
/// same as async-nats' own default ack wait, which does not cover the permit wait.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// One append did not happen (or its ack did not arrive).
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// JetStream answered with an error, or the connection failed.
    #[error("{0}")]
    Publish(#[from] PublishError),
    /// No ack within [`ATTEMPT_TIMEOUT`].
    #[error("no ack within {0:?}")]
    TimedOut(Duration),
}

/// Appends `message` to `subject` and waits for its durable ack, for at most
/// [`ATTEMPT_TIMEOUT`].
pub async fn append(
    jetstream: &Context,
    subject: String,
    message: PublishMessage,
) -> Result<PublishAck, AppendError> {
    let attempt = async {
        let ack: PublishAckFuture = jetstream.send_publish(subject, message).await?;
        ack.await
    };
    tokio::time::timeout(ATTEMPT_TIMEOUT, attempt)
        .await
        .map_err(|_| AppendError::TimedOut(ATTEMPT_TIMEOUT))?
        .map_err(AppendError::from)
}

/// Appends each `(tag, subject, message)` of `batch` with at most [`MAX_IN_FLIGHT`] awaiting
/// their acks, and yields every tag with its outcome in the batch's order as the acks arrive.
///
/// Appends of one batch may be stored in any order, so a batch must not hold two events whose
/// order matters.
pub fn append_batch<'a, T, I>(
    jetstream: &'a Context,
    batch: I,
) -> impl Stream<Item = (T, Result<PublishAck, AppendError>)> + 'a
where
    I: IntoIterator<Item = (T, String, PublishMessage)>,
    I::IntoIter: 'a,
    T: 'a,
{
    futures::stream::iter(batch)
        .map(move |(tag, subject, message)| async move {
            (tag, append(jetstream, subject, message).await)
        })
        .buffered(MAX_IN_FLIGHT)
}
