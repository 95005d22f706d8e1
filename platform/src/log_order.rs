//! Reading the log in order through a durable consumer that acks cumulatively
//! (`AckPolicy::All`), as the projector and the receipts workers do.
//!
//! Acking event N acks every event before it. A batch whose delivery was lost in transit (a
//! fetch that timed out while the server had already handed it out, a consumer leader moving
//! between servers) leaves those events pending, and the next batch then starts after them:
//! acking that batch would ack events nobody applied. So a consumer of the log checks that each
//! batch continues where the previous one ended, and at a real jump starts its consumer again
//! from what it applied.

use std::time::Duration;

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::stream::{DirectGetErrorKind, Stream};
use tokio::time::timeout;

/// How long [`continuity`] waits for the stream to say what lies in a jump. Until the other
/// servers notice that one stalled (about 6 s), some direct gets still go to it and are never
/// answered (the client's own limit is 10 s); without an answer the jump counts as a gap, and
/// the consumer starts again from what it applied, which costs a re-read, not a stall.
const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// Where a new consumer starts for a projection that has applied the log up to `applied`.
pub fn resume_after(applied: u64) -> DeliverPolicy {
    match applied {
        0 => DeliverPolicy::All,
        applied => DeliverPolicy::ByStartSequence {
            start_sequence: applied + 1,
        },
    }
}

/// Delivered events skipped part of the log: `expected` was due, `got` came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the consumer delivered sequence {got} while {expected} was due")]
pub struct Gap {
    /// The next sequence the consumer owed.
    pub expected: u64,
    /// The sequence it delivered instead.
    pub got: u64,
}

/// Whether delivered `seqs` continue the log at `next`: each is at most the next one expected
/// (lower ones are redeliveries, which a single consumer makes in order). Returns the next
/// sequence expected after them, or the first jump.
pub fn continues(mut next: u64, seqs: &[u64]) -> Result<u64, Gap> {
    for &seq in seqs {
        if seq > next {
            return Err(Gap {
                expected: next,
                got: seq,
            });
        }
        next = next.max(seq.saturating_add(1));
    }
    Ok(next)
}

/// [`continues`], except that a jump over sequences the stream holds no event of `subjects`
/// for (deleted, purged, or on other subjects) is no gap. Returns the next sequence expected.
///
/// Any replica answers a direct get, and one still catching up (just restarted or thawed) may
/// not hold the delivered events yet: its "none" is asked again of the stream's leader, so a
/// lagging replica does not make a false gap (which would restart the consumer for nothing).
pub async fn continuity(
    stream: &Stream,
    subjects: &str,
    mut next: u64,
    seqs: &[u64],
) -> Result<u64, Gap> {
    loop {
        let gap = match continues(next, seqs) {
            Ok(next) => return Ok(next),
            Err(gap) => gap,
        };
        let any_replica = stream.direct_get_next_for_subject(subjects, Some(gap.expected));
        let first = match timeout(READ_TIMEOUT, any_replica).await {
            Ok(Ok(message)) => Some(message.sequence),
            Ok(Err(e)) if e.kind() == DirectGetErrorKind::NotFound => {
                let leader = stream
                    .raw_message_builder()
                    .sequence(gap.expected)
                    .next_by_subject(subjects.to_owned())
                    .send();
                match timeout(READ_TIMEOUT, leader).await {
                    Ok(Ok(message)) => Some(message.sequence),
                    Ok(Err(_)) | Err(_) => None,
                }
            }
            Ok(Err(_)) | Err(_) => None,
        };
        match first {
            Some(sequence) if sequence >= gap.got => next = gap.got,
            _ => return Err(gap),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_consumer_starts_just_after_what_was_applied() {
        assert_eq!(resume_after(0), DeliverPolicy::All);
        assert_eq!(
            resume_after(41),
            DeliverPolicy::ByStartSequence { start_sequence: 42 }
        );
    }

    #[test]
    fn a_batch_continues_the_log_or_names_the_jump() {
        let gap = |expected, got| Err(Gap { expected, got });
        assert_eq!(continues(10, &[]), Ok(10));
        assert_eq!(continues(10, &[10, 11, 12]), Ok(13));
        assert_eq!(continues(10, &[7, 8, 9, 10]), Ok(11), "redeliveries");
        assert_eq!(continues(10, &[12, 13]), gap(10, 12));
        assert_eq!(continues(10, &[10, 11, 13]), gap(12, 13));
    }
}
