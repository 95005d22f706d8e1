//! Which writes of a batch of events travel together in one Cassandra request.
//!
//! Cassandra spends about as much CPU on a request as on the few small rows of a CHAT, so the
//! projector sends a batch's writes as a few UNLOGGED BATCH requests rather than one request
//! per row. An unlogged batch gives no atomicity, and needs none here: every write is
//! idempotent and stamped with its event's sequence, so a batch that fails is simply sent again.
//! Groups stay under the limits at which Cassandra starts logging a warning for every batch
//! (`unlogged_batch_across_partitions_warn_threshold`, 10 partitions, and
//! `batch_size_warn_threshold`, 5 KiB), which counts each statement as a partition of its own;
//! a write too large for a group goes alone, as a plain statement.

use crate::plan::{Op, Write};

/// Most statements in one group: each may touch its own partition, and Cassandra warns about
/// unlogged batches over more than 10 partitions.
pub(crate) const MAX_STATEMENTS: usize = 10;

/// Most estimated bytes in one group, below Cassandra's 5 KiB batch warning.
pub(crate) const MAX_BYTES: usize = 4 * 1024;

/// Estimated bytes of a statement's keys, timestamps and cell overhead, beside its text values.
const OVERHEAD_BYTES: usize = 96;

/// Splits `writes` into groups of at most [`MAX_STATEMENTS`] and [`MAX_BYTES`], in order.
pub(crate) fn group(writes: Vec<Write>) -> Vec<Vec<Write>> {
    let mut groups: Vec<Vec<Write>> = Vec::new();
    let mut bytes = 0;
    for write in writes {
        let size = estimated_bytes(&write);
        match groups.last_mut() {
            Some(current) if current.len() < MAX_STATEMENTS && bytes + size <= MAX_BYTES => {
                bytes += size;
                current.push(write);
            }
            _ => {
                bytes = size;
                groups.push(vec![write]);
            }
        }
    }
    groups
}

/// About how many bytes `write` adds to a batch: its text values and a fixed overhead.
fn estimated_bytes(write: &Write) -> usize {
    let texts = match &write.op {
        Op::CreateRoom {
            name,
            created_by,
            members,
            ..
        } => {
            name.as_ref().map_or(0, String::len)
                + created_by.len()
                + members.iter().map(String::len).sum::<usize>()
        }
        Op::Joined { user, .. } | Op::Left { user } | Op::MemberRemoved { user, .. } => user.len(),
        Op::Message {
            sender,
            content,
            user_ids,
            client_message_id,
            reply,
            mentions,
            ..
        } => {
            let users = |users: &Option<Vec<String>>| {
                users
                    .as_ref()
                    .map_or(0, |users| users.iter().map(String::len).sum::<usize>())
            };
            sender.len()
                + content.as_ref().map_or(0, String::len)
                + users(user_ids)
                + client_message_id.as_ref().map_or(0, String::len)
                + reply
                    .as_ref()
                    .map_or(0, |r| r.sender.len() + r.content.len())
                + users(mentions)
        }
        Op::Reacted { key, .. } => key.len(),
        Op::Edited { content, .. } | Op::LastEdited { content } => content.len(),
        Op::LastMessage {
            sender, content, ..
        } => sender.len() + content.len(),
        Op::MembersAdded { users, .. } => users.iter().map(String::len).sum(),
        Op::ClientMessage {
            sender,
            client_message_id,
        } => sender.len() + client_message_id.len(),
        Op::BucketStart { .. } | Op::MessageDeleted { .. } | Op::LastDeleted | Op::EventSeq => 0,
    };
    texts + OVERHEAD_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn chat(seq: i64, content: &str) -> Write {
        Write {
            room: Uuid::nil(),
            seq,
            op: Op::LastMessage {
                sender: "u".to_owned(),
                content: content.to_owned(),
                at: 0,
            },
        }
    }

    fn seqs(groups: &[Vec<Write>]) -> Vec<Vec<i64>> {
        groups
            .iter()
            .map(|g| g.iter().map(|w| w.seq).collect())
            .collect()
    }

    #[test]
    fn small_writes_go_ten_to_a_group_in_order() {
        let writes = (1..=23).map(|seq| chat(seq, "hi")).collect();
        let groups = group(writes);
        assert_eq!(
            groups.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![10, 10, 3]
        );
        assert_eq!(
            seqs(&groups).concat(),
            (1..=23).collect::<Vec<_>>(),
            "every write once, in order"
        );
    }

    #[test]
    fn large_writes_split_groups_and_an_oversized_one_goes_alone() {
        let kib = "x".repeat(1024);
        let huge = "y".repeat(10 * 1024);
        let writes = vec![
            chat(1, &kib),
            chat(2, &kib),
            chat(3, &kib),
            chat(4, &kib),
            chat(5, &huge),
            chat(6, "hi"),
        ];
        assert_eq!(
            seqs(&group(writes)),
            vec![vec![1, 2, 3], vec![4], vec![5], vec![6]]
        );
    }

    #[test]
    fn nothing_to_write_is_no_group() {
        assert!(group(Vec::new()).is_empty());
    }
}
