//! What one event writes to Cassandra: a pure function of the event, its position in the log and
//! what was known about its room just before it, so every rule of the projection is testable
//! without a database.
//!
//! Every [`Write`] carries the event's stream sequence, which the store uses as the CQL write
//! timestamp (`USING TIMESTAMP seq`): the later event in the log wins every cell, whatever order
//! writes land in and however often an event is applied again.

use std::collections::{BTreeSet, HashSet};

use chat_schemas::{ChatEvent, Envelope, RoomKind, UserId};
use uuid::Uuid;

/// Where a room's messages move to a new time bucket: from message `first_message_id` on (up to
/// the next start), its history rows live in partition `(room, bucket)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketStart {
    /// The first message id stored in `bucket`.
    pub first_message_id: i64,
    /// The bucket number.
    pub bucket: i32,
}

/// The kinds of rows in a room's history (`messages.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// A chat message.
    Chat,
    /// Users joined the room (also the first members of a group).
    Invite,
    /// A member quit.
    Leave,
}

impl MessageKind {
    /// The text stored in `messages.kind`, as clients see it in `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "CHAT",
            Self::Invite => "INVITE",
            Self::Leave => "LEAVE",
        }
    }
}

/// One row (or cell set) to write, stamped with the sequence of the event that caused it.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// The room the write belongs to.
    pub room: Uuid,
    /// Stream sequence of the event: the CQL write timestamp, and the id of any row it creates.
    pub seq: i64,
    /// What to write.
    pub op: Op,
}

/// The statements the projector issues; times are milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// The `rooms` row of a new room (`last_event_seq = seq`, `updated_at = created_at`).
    CreateRoom {
        /// `DIRECT` or `GROUP`.
        kind: &'static str,
        /// The group's name.
        name: Option<String>,
        /// The creator.
        created_by: String,
        /// When the room was created.
        created_at: i64,
        /// The first members.
        members: Vec<String>,
    },
    /// A `user_rooms` row: the room appears in the user's list.
    Joined {
        /// The member.
        user: String,
        /// When they joined.
        at: i64,
    },
    /// Removes a `user_rooms` row.
    Left {
        /// The former member.
        user: String,
    },
    /// A history row in `messages` with `message_id = seq`.
    Message {
        /// Its time bucket.
        bucket: i32,
        /// CHAT, INVITE or LEAVE.
        kind: MessageKind,
        /// Who it is from.
        sender: String,
        /// The text of a CHAT.
        content: Option<String>,
        /// Who joined or left.
        user_ids: Option<Vec<String>>,
        /// When the edge accepted it.
        sent_at: i64,
        /// The sender's own id of a CHAT.
        client_message_id: Option<String>,
        /// The CHAT a reply quotes, as it was sent.
        reply: Option<QuoteRow>,
        /// Who a CHAT mentions; none for other rows.
        mentions: Option<Vec<String>>,
    },
    /// A `room_buckets` row with `first_message_id = seq`.
    BucketStart {
        /// The bucket the room's history moves to.
        bucket: i32,
    },
    /// The room's latest CHAT (`last_message_id = seq`), which is also room activity.
    LastMessage {
        /// Who wrote it.
        sender: String,
        /// Its text.
        content: String,
        /// When it was sent.
        at: i64,
    },
    /// Users joined: adds them to `rooms.members`, marks activity.
    MembersAdded {
        /// Who joined.
        users: Vec<String>,
        /// When.
        at: i64,
    },
    /// A member left: removes them from `rooms.members`, marks activity.
    MemberRemoved {
        /// Who left.
        user: String,
        /// When.
        at: i64,
    },
    /// Tombstones a history row: `deleted = true`, `content = null`.
    MessageDeleted {
        /// The bucket the message lives in.
        bucket: i32,
        /// The deleted message.
        message_id: i64,
    },
    /// The room's latest CHAT was deleted: `last_deleted = true`, `last_content = null`.
    LastDeleted,
    /// Only `last_event_seq = seq`: the room changed without new activity.
    EventSeq,
    /// A member's reaction to a CHAT, added or taken back: one cell of `messages.reactions`.
    Reacted {
        /// The bucket the CHAT lives in.
        bucket: i32,
        /// The CHAT.
        message_id: i64,
        /// `"{userId} {emoji}"`: user ids hold no space.
        key: String,
        /// Added (the cell's value becomes `seq`) or taken back (the cell is deleted).
        added: bool,
    },
    /// A CHAT's new content and `edited_at`.
    Edited {
        /// The bucket the CHAT lives in.
        bucket: i32,
        /// The CHAT.
        message_id: i64,
        /// Its new content.
        content: String,
        /// When it was edited.
        at: i64,
    },
    /// The room's latest CHAT was edited: `last_content` follows.
    LastEdited {
        /// Its new content.
        content: String,
    },
    /// A `client_messages` row mapping the sender's id of a CHAT to `message_id = seq`.
    ClientMessage {
        /// The sender.
        sender: String,
        /// The sender's own id for the message.
        client_message_id: String,
    },
}

/// A reply's quote in its `messages` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteRow {
    /// The quoted CHAT.
    pub message_id: i64,
    /// Who wrote it.
    pub sender: String,
    /// Its content when the reply was sent, at most 100 characters.
    pub content: String,
}

/// What the plan of an event needs to know about its room beforehand.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Needs {
    /// The bucket the room's history is in just before the event.
    pub bucket_before: bool,
    /// The room's latest CHAT.
    pub last_message_id: bool,
    /// The buckets of these (earlier) messages.
    pub message_buckets: Vec<i64>,
}

/// What was known about the room just before the event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoomFacts {
    /// The bucket in effect just before the event; none for a room without history.
    pub bucket_before: Option<i32>,
    /// The room's latest CHAT.
    pub last_message_id: Option<i64>,
    /// The bucket of each message in [`Needs::message_buckets`] that was found.
    pub message_buckets: Vec<(i64, i32)>,
}

/// The writes of one event and how they change what is known about its room.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    /// The writes, in no particular order: timestamps make order irrelevant.
    pub writes: Vec<Write>,
    /// A bucket the room's history moved to.
    pub new_bucket: Option<BucketStart>,
    /// The room's new latest CHAT.
    pub last_message_id: Option<i64>,
}

/// The bucket of a time: whole `bucket_millis` periods since the epoch.
pub fn time_bucket(at_millis: i64, bucket_millis: i64) -> i32 {
    let bucket = at_millis.div_euclid(bucket_millis.max(1));
    i32::try_from(bucket).unwrap_or(if bucket < 0 { i32::MIN } else { i32::MAX })
}

/// The facts [`plan`] will read for `event` at `seq`.
pub fn needs(event: &ChatEvent, seq: i64) -> Needs {
    match event {
        ChatEvent::RoomCreated {
            kind: RoomKind::Group,
            ..
        }
        | ChatEvent::Chat { .. }
        | ChatEvent::Invite { .. }
        | ChatEvent::Leave { .. } => Needs {
            bucket_before: true,
            ..Needs::default()
        },
        ChatEvent::Delete { message_ids } => Needs {
            last_message_id: true,
            message_buckets: deletable(message_ids, seq).collect(),
            ..Needs::default()
        },
        ChatEvent::Edit { target_id, .. } => Needs {
            last_message_id: true,
            message_buckets: deletable(std::slice::from_ref(target_id), seq).collect(),
            ..Needs::default()
        },
        ChatEvent::Reaction { target_id, .. } => Needs {
            message_buckets: deletable(std::slice::from_ref(target_id), seq).collect(),
            ..Needs::default()
        },
        ChatEvent::RoomCreated {
            kind: RoomKind::Direct,
            ..
        }
        | ChatEvent::Info { .. }
        | ChatEvent::Out { .. }
        | ChatEvent::Unknown => Needs::default(),
    }
}

/// The writes of `envelope`, stored at `seq`, given what was known about its room just before.
pub fn plan(envelope: &Envelope, seq: i64, facts: &RoomFacts, bucket_millis: i64) -> Plan {
    let room = envelope.room_id.as_uuid();
    let at = envelope.at.millis();
    let actor = envelope.actor.as_str().to_owned();
    let write = |op| Write { room, seq, op };
    let mut plan = Plan::default();
    match &envelope.event {
        ChatEvent::RoomCreated {
            kind,
            name,
            members,
        } => {
            let members = distinct(members);
            plan.writes.push(write(Op::CreateRoom {
                kind: match kind {
                    RoomKind::Direct => "DIRECT",
                    RoomKind::Group => "GROUP",
                },
                name: name.clone(),
                created_by: actor.clone(),
                created_at: at,
                members: members.clone(),
            }));
            plan.writes.extend(members.iter().map(|user| {
                write(Op::Joined {
                    user: user.clone(),
                    at,
                })
            }));
            if *kind == RoomKind::Group {
                let invited = members.into_iter().filter(|m| *m != actor).collect();
                plan.add_message(envelope, seq, facts, bucket_millis, |bucket| Op::Message {
                    bucket,
                    kind: MessageKind::Invite,
                    sender: actor.clone(),
                    content: None,
                    user_ids: Some(invited),
                    sent_at: at,
                    client_message_id: None,
                    reply: None,
                    mentions: None,
                });
            }
        }
        ChatEvent::Chat {
            content,
            client_message_id,
            reply_to,
            mentions,
        } => {
            let reply = reply_to.as_ref().and_then(|quote| {
                Some(QuoteRow {
                    message_id: i64::try_from(quote.message_id.sequence()).ok()?,
                    sender: quote.sender_id.as_str().to_owned(),
                    content: quote.content.clone(),
                })
            });
            plan.add_message(envelope, seq, facts, bucket_millis, |bucket| Op::Message {
                bucket,
                kind: MessageKind::Chat,
                sender: actor.clone(),
                content: Some(content.clone()),
                user_ids: None,
                sent_at: at,
                client_message_id: client_message_id.clone(),
                reply,
                mentions: (!mentions.is_empty()).then(|| distinct(mentions)),
            });
            plan.writes.push(write(Op::LastMessage {
                sender: actor.clone(),
                content: content.clone(),
                at,
            }));
            if let Some(client_message_id) = client_message_id {
                plan.writes.push(write(Op::ClientMessage {
                    sender: actor.clone(),
                    client_message_id: client_message_id.clone(),
                }));
            }
            plan.last_message_id = Some(seq);
        }
        ChatEvent::Invite { user_ids } => {
            let users = distinct(user_ids);
            plan.writes.extend(users.iter().map(|user| {
                write(Op::Joined {
                    user: user.clone(),
                    at,
                })
            }));
            plan.writes.push(write(Op::MembersAdded {
                users: users.clone(),
                at,
            }));
            plan.add_message(envelope, seq, facts, bucket_millis, |bucket| Op::Message {
                bucket,
                kind: MessageKind::Invite,
                sender: actor.clone(),
                content: None,
                user_ids: Some(users),
                sent_at: at,
                client_message_id: None,
                reply: None,
                mentions: None,
            });
        }
        ChatEvent::Leave { user_id, .. } => {
            let user = user_id.as_str().to_owned();
            plan.writes.push(write(Op::Left { user: user.clone() }));
            plan.writes.push(write(Op::MemberRemoved {
                user: user.clone(),
                at,
            }));
            plan.add_message(envelope, seq, facts, bucket_millis, |bucket| Op::Message {
                bucket,
                kind: MessageKind::Leave,
                sender: user.clone(),
                content: None,
                user_ids: Some(vec![user.clone()]),
                sent_at: at,
                client_message_id: None,
                reply: None,
                mentions: None,
            });
        }
        ChatEvent::Delete { message_ids } => {
            let mut last_deleted = false;
            for message_id in deletable(message_ids, seq) {
                let Some(bucket) = bucket_of(facts, message_id) else {
                    tracing::warn!(seq, message_id, %room, "deleted message not found; skipped");
                    continue;
                };
                plan.writes
                    .push(write(Op::MessageDeleted { bucket, message_id }));
                last_deleted |= facts.last_message_id == Some(message_id);
            }
            plan.writes.push(write(if last_deleted {
                Op::LastDeleted
            } else {
                Op::EventSeq
            }));
        }
        ChatEvent::Reaction {
            target_id,
            user_id,
            emoji,
            added,
        } => {
            if let Some((message_id, bucket)) = target(facts, target_id, seq) {
                plan.writes.push(write(Op::Reacted {
                    bucket,
                    message_id,
                    key: format!("{user_id} {emoji}"),
                    added: *added,
                }));
            } else {
                tracing::warn!(seq, %target_id, %room, "reacted message not found; skipped");
            }
            plan.writes.push(write(Op::EventSeq));
        }
        ChatEvent::Edit { target_id, content } => {
            let mut last_edited = false;
            if let Some((message_id, bucket)) = target(facts, target_id, seq) {
                plan.writes.push(write(Op::Edited {
                    bucket,
                    message_id,
                    content: content.clone(),
                    at,
                }));
                last_edited = facts.last_message_id == Some(message_id);
            } else {
                tracing::warn!(seq, %target_id, %room, "edited message not found; skipped");
            }
            plan.writes.push(write(if last_edited {
                Op::LastEdited {
                    content: content.clone(),
                }
            } else {
                Op::EventSeq
            }));
        }
        ChatEvent::Info { .. } | ChatEvent::Out { .. } | ChatEvent::Unknown => {}
    }
    plan
}

/// The id and bucket of the earlier message `id` that a REACTION or EDIT at `seq` names, when
/// it was found.
fn target(facts: &RoomFacts, id: &chat_schemas::MessageId, seq: i64) -> Option<(i64, i32)> {
    let id = deletable(std::slice::from_ref(id), seq).next()?;
    Some((id, bucket_of(facts, id)?))
}

/// The bucket of message `id`, when [`Needs::message_buckets`] asked for it and it was found.
fn bucket_of(facts: &RoomFacts, id: i64) -> Option<i32> {
    facts
        .message_buckets
        .iter()
        .find(|(found, _)| *found == id)
        .map(|&(_, bucket)| bucket)
}

impl Plan {
    /// Adds a history row at `seq` in the bucket it belongs to, starting a new bucket when the
    /// room has none or its time is past the current one. Buckets never go backwards: an edge
    /// with a slow clock writes into the room's current bucket.
    fn add_message(
        &mut self,
        envelope: &Envelope,
        seq: i64,
        facts: &RoomFacts,
        bucket_millis: i64,
        row: impl FnOnce(i32) -> Op,
    ) {
        let room = envelope.room_id.as_uuid();
        let by_time = time_bucket(envelope.at.millis(), bucket_millis);
        let bucket = match facts.bucket_before {
            Some(current) if current >= by_time => current,
            _ => {
                self.new_bucket = Some(BucketStart {
                    first_message_id: seq,
                    bucket: by_time,
                });
                self.writes.push(Write {
                    room,
                    seq,
                    op: Op::BucketStart { bucket: by_time },
                });
                by_time
            }
        };
        self.writes.push(Write {
            room,
            seq,
            op: row(bucket),
        });
    }
}

/// Drops the writes of a batch that a later write of the same batch overwrites entirely: a room's
/// `LastMessage` followed by another one (same columns, higher timestamp). The tables end up the
/// same, with fewer statements when a room is busy.
pub fn coalesce(writes: Vec<Write>) -> Vec<Write> {
    let mut has_later_last = HashSet::new();
    let mut kept: Vec<Write> = writes
        .into_iter()
        .rev()
        .filter(|w| !matches!(w.op, Op::LastMessage { .. }) || has_later_last.insert(w.room))
        .collect();
    kept.reverse();
    kept
}

/// The ids a DELETE at `seq` can refer to: only earlier events are messages that exist, and
/// ignoring the rest keeps the result independent of what follows in the log.
fn deletable(message_ids: &[chat_schemas::MessageId], seq: i64) -> impl Iterator<Item = i64> + '_ {
    message_ids
        .iter()
        .filter_map(|id| i64::try_from(id.sequence()).ok())
        .filter(move |id| *id < seq)
}

/// Users in first-seen order without repeats.
fn distinct(users: &[UserId]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    users
        .iter()
        .filter(|u| seen.insert(u.as_str()))
        .map(|u| u.as_str().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use chat_schemas::{MessageId, RoomId, Timestamp};

    use super::*;

    const DAY: i64 = 86_400_000;

    fn user(name: &str) -> UserId {
        UserId::parse(name).expect("valid user id")
    }

    fn envelope(room: RoomId, actor: &str, day: i64, event: ChatEvent) -> Envelope {
        Envelope {
            at: Timestamp(day * DAY + 1_000),
            ..Envelope::new(room, user(actor), event)
        }
    }

    fn chat(room: RoomId, day: i64, text: &str) -> Envelope {
        envelope(
            room,
            "alice",
            day,
            ChatEvent::Chat {
                content: text.into(),
                client_message_id: None,
                reply_to: None,
                mentions: Vec::new(),
            },
        )
    }

    fn ops(plan: &Plan) -> Vec<&Op> {
        plan.writes.iter().map(|w| &w.op).collect()
    }

    fn in_bucket(bucket: i32) -> RoomFacts {
        RoomFacts {
            bucket_before: Some(bucket),
            ..RoomFacts::default()
        }
    }

    #[test]
    fn a_group_starts_with_its_members_and_an_invite_row() {
        let room = RoomId::random();
        let created = envelope(
            room,
            "alice",
            20_000,
            ChatEvent::RoomCreated {
                kind: RoomKind::Group,
                name: Some("team".into()),
                members: vec![user("alice"), user("bob"), user("carol"), user("bob")],
            },
        );
        assert!(needs(&created.event, 5).bucket_before);
        let plan = plan(&created, 5, &RoomFacts::default(), DAY);
        let at = created.at.millis();
        let members: Vec<String> = ["alice", "bob", "carol"].map(String::from).to_vec();
        assert_eq!(
            ops(&plan),
            vec![
                &Op::CreateRoom {
                    kind: "GROUP",
                    name: Some("team".into()),
                    created_by: "alice".into(),
                    created_at: at,
                    members: members.clone(),
                },
                &Op::Joined {
                    user: "alice".into(),
                    at
                },
                &Op::Joined {
                    user: "bob".into(),
                    at
                },
                &Op::Joined {
                    user: "carol".into(),
                    at
                },
                &Op::BucketStart { bucket: 20_000 },
                &Op::Message {
                    bucket: 20_000,
                    kind: MessageKind::Invite,
                    sender: "alice".into(),
                    content: None,
                    user_ids: Some(vec!["bob".into(), "carol".into()]),
                    sent_at: at,
                    client_message_id: None,
                    reply: None,
                    mentions: None,
                },
            ]
        );
        assert!(plan
            .writes
            .iter()
            .all(|w| w.seq == 5 && w.room == room.as_uuid()));
        assert_eq!(
            plan.new_bucket,
            Some(BucketStart {
                first_message_id: 5,
                bucket: 20_000
            })
        );
    }

    #[test]
    fn a_direct_room_starts_with_an_empty_history() {
        let created = envelope(
            RoomId::random(),
            "alice",
            20_000,
            ChatEvent::RoomCreated {
                kind: RoomKind::Direct,
                name: None,
                members: vec![user("alice"), user("bob")],
            },
        );
        assert_eq!(needs(&created.event, 1), Needs::default());
        let plan = plan(&created, 1, &RoomFacts::default(), DAY);
        assert!(!ops(&plan)
            .iter()
            .any(|op| matches!(op, Op::Message { .. } | Op::BucketStart { .. })));
        assert_eq!(plan.writes.len(), 3);
        assert_eq!(plan.new_bucket, None);
    }

    #[test]
    fn a_chat_is_a_history_row_the_room_last_and_a_client_id() {
        let room = RoomId::random();
        let sent = envelope(
            room,
            "bob",
            20_001,
            ChatEvent::Chat {
                content: "hi".into(),
                client_message_id: Some("c-1".into()),
                reply_to: None,
                mentions: Vec::new(),
            },
        );
        let plan = plan(&sent, 9, &in_bucket(20_001), DAY);
        let at = sent.at.millis();
        assert_eq!(
            ops(&plan),
            vec![
                &Op::Message {
                    bucket: 20_001,
                    kind: MessageKind::Chat,
                    sender: "bob".into(),
                    content: Some("hi".into()),
                    user_ids: None,
                    sent_at: at,
                    client_message_id: Some("c-1".into()),
                    reply: None,
                    mentions: None,
                },
                &Op::LastMessage {
                    sender: "bob".into(),
                    content: "hi".into(),
                    at
                },
                &Op::ClientMessage {
                    sender: "bob".into(),
                    client_message_id: "c-1".into()
                },
            ]
        );
        assert_eq!(plan.last_message_id, Some(9));
        assert_eq!(plan.new_bucket, None);
    }

    #[test]
    fn buckets_follow_the_clock_but_never_go_backwards() {
        let room = RoomId::random();
        let next_day = plan(&chat(room, 20_002, "later"), 10, &in_bucket(20_001), DAY);
        assert_eq!(
            next_day.new_bucket,
            Some(BucketStart {
                first_message_id: 10,
                bucket: 20_002
            })
        );
        assert!(ops(&next_day).contains(&&Op::BucketStart { bucket: 20_002 }));

        let skewed = plan(
            &chat(room, 20_000, "slow clock"),
            11,
            &in_bucket(20_002),
            DAY,
        );
        assert_eq!(skewed.new_bucket, None);
        assert!(matches!(
            ops(&skewed)[0],
            Op::Message { bucket: 20_002, .. }
        ));
    }

    #[test]
    fn invite_and_leave_change_members_and_history() {
        let room = RoomId::random();
        let invite = envelope(
            room,
            "alice",
            20_000,
            ChatEvent::Invite {
                user_ids: vec![user("dave"), user("erin")],
            },
        );
        let invited = plan(&invite, 12, &in_bucket(20_000), DAY);
        let at = invite.at.millis();
        assert!(ops(&invited).contains(&&Op::MembersAdded {
            users: vec!["dave".into(), "erin".into()],
            at
        }));
        assert!(ops(&invited).contains(&&Op::Joined {
            user: "erin".into(),
            at
        }));
        assert!(ops(&invited).iter().any(|op| matches!(
            op,
            Op::Message { kind: MessageKind::Invite, sender, user_ids: Some(ids), .. }
                if sender == "alice" && ids.len() == 2
        )));

        let leave = envelope(
            room,
            "dave",
            20_000,
            ChatEvent::Leave {
                user_id: user("dave"),
                read_count: 0,
            },
        );
        let left = plan(&leave, 13, &in_bucket(20_000), DAY);
        assert!(ops(&left).contains(&&Op::Left {
            user: "dave".into()
        }));
        assert!(ops(&left).contains(&&Op::MemberRemoved {
            user: "dave".into(),
            at
        }));
        assert!(ops(&left).iter().any(|op| matches!(
            op,
            Op::Message { kind: MessageKind::Leave, sender, user_ids: Some(ids), .. }
                if sender == "dave" && ids == &vec!["dave".to_owned()]
        )));
    }

    #[test]
    fn deleting_the_latest_chat_tombstones_the_room_last() {
        let room = RoomId::random();
        let ids = |ids: &[u64]| {
            ids.iter()
                .map(|id| MessageId::from_sequence(*id).expect("non-zero"))
                .collect()
        };
        let delete = envelope(
            room,
            "alice",
            20_000,
            ChatEvent::Delete {
                message_ids: ids(&[7, 8, 30, 31]),
            },
        );
        let wanted = needs(&delete.event, 30);
        assert!(wanted.last_message_id);
        assert_eq!(
            wanted.message_buckets,
            vec![7, 8],
            "only earlier events exist"
        );

        let facts = RoomFacts {
            bucket_before: None,
            last_message_id: Some(8),
            message_buckets: vec![(7, 19_999), (8, 20_000)],
        };
        let deleted = plan(&delete, 30, &facts, DAY);
        assert_eq!(
            ops(&deleted),
            vec![
                &Op::MessageDeleted {
                    bucket: 19_999,
                    message_id: 7
                },
                &Op::MessageDeleted {
                    bucket: 20_000,
                    message_id: 8
                },
                &Op::LastDeleted,
            ]
        );

        let older_only = RoomFacts {
            last_message_id: Some(9),
            ..facts
        };
        let deleted = plan(&delete, 30, &older_only, DAY);
        assert_eq!(ops(&deleted).last(), Some(&&Op::EventSeq));
        assert_eq!(deleted.last_message_id, None);
    }

    #[test]
    fn a_reply_keeps_its_quote_and_its_mentions() {
        let room = RoomId::random();
        let quoted = MessageId::from_sequence(4).expect("non-zero");
        let reply = envelope(
            room,
            "bob",
            20_001,
            ChatEvent::Chat {
                content: "좋아요".into(),
                client_message_id: None,
                reply_to: Some(chat_schemas::Quote::new(quoted, user("alice"), "7시?")),
                mentions: vec![user("alice"), user("carol"), user("alice")],
            },
        );
        let plan = plan(&reply, 9, &in_bucket(20_001), DAY);
        let Some(Op::Message {
            reply, mentions, ..
        }) = ops(&plan).first().copied()
        else {
            panic!("no history row: {plan:?}");
        };
        assert_eq!(
            reply,
            &Some(QuoteRow {
                message_id: 4,
                sender: "alice".into(),
                content: "7시?".into()
            })
        );
        assert_eq!(mentions, &Some(vec!["alice".into(), "carol".into()]));
    }

    #[test]
    fn a_reaction_is_one_cell_of_its_chat_and_changes_no_last_message() {
        let room = RoomId::random();
        let react = |added| {
            envelope(
                room,
                "bob",
                20_001,
                ChatEvent::Reaction {
                    target_id: MessageId::from_sequence(7).expect("non-zero"),
                    user_id: user("bob"),
                    emoji: "👍".into(),
                    added,
                },
            )
        };
        let wanted = needs(&react(true).event, 12);
        assert_eq!(
            (wanted.message_buckets, wanted.last_message_id),
            (vec![7], false)
        );
        let facts = RoomFacts {
            message_buckets: vec![(7, 20_000)],
            ..RoomFacts::default()
        };
        for added in [true, false] {
            assert_eq!(
                ops(&plan(&react(added), 12, &facts, DAY)),
                vec![
                    &Op::Reacted {
                        bucket: 20_000,
                        message_id: 7,
                        key: "bob 👍".into(),
                        added
                    },
                    &Op::EventSeq,
                ]
            );
        }
        let missing = plan(&react(true), 12, &RoomFacts::default(), DAY);
        assert_eq!(ops(&missing), vec![&Op::EventSeq], "no row is made up");
        assert_eq!(
            needs(&react(true).event, 7).message_buckets,
            Vec::<i64>::new()
        );
    }

    #[test]
    fn an_edit_replaces_the_content_and_the_room_last_when_it_is_the_latest() {
        let room = RoomId::random();
        let edit = envelope(
            room,
            "alice",
            20_001,
            ChatEvent::Edit {
                target_id: MessageId::from_sequence(7).expect("non-zero"),
                content: "고쳤어요".into(),
            },
        );
        assert!(needs(&edit.event, 12).last_message_id);
        let latest = RoomFacts {
            last_message_id: Some(7),
            message_buckets: vec![(7, 20_000)],
            ..RoomFacts::default()
        };
        let edited = Op::Edited {
            bucket: 20_000,
            message_id: 7,
            content: "고쳤어요".into(),
            at: edit.at.millis(),
        };
        assert_eq!(
            ops(&plan(&edit, 12, &latest, DAY)),
            vec![
                &edited,
                &Op::LastEdited {
                    content: "고쳤어요".into()
                }
            ]
        );
        let older = RoomFacts {
            last_message_id: Some(9),
            ..latest
        };
        assert_eq!(
            ops(&plan(&edit, 12, &older, DAY)),
            vec![&edited, &Op::EventSeq]
        );
    }

    #[test]
    fn only_a_rooms_latest_last_message_of_a_batch_is_kept() {
        let busy = RoomId::random();
        let quiet = RoomId::random();
        let facts = in_bucket(20_000);
        let writes: Vec<Write> = [(busy, 1), (quiet, 2), (busy, 3), (busy, 4)]
            .into_iter()
            .flat_map(|(room, seq)| plan(&chat(room, 20_000, "x"), seq, &facts, DAY).writes)
            .collect();
        let kept = coalesce(writes.clone());
        let last_messages: Vec<(Uuid, i64)> = kept
            .iter()
            .filter(|w| matches!(w.op, Op::LastMessage { .. }))
            .map(|w| (w.room, w.seq))
            .collect();
        assert_eq!(
            last_messages,
            vec![(quiet.as_uuid(), 2), (busy.as_uuid(), 4)]
        );
        let rows = |ws: &[Write]| {
            ws.iter()
                .filter(|w| matches!(w.op, Op::Message { .. }))
                .count()
        };
        assert_eq!(rows(&kept), 4, "every history row is kept");
        assert_eq!(kept.len(), writes.len() - 2);
    }

    #[test]
    fn presence_and_unknown_events_write_nothing() {
        let room = RoomId::random();
        for event in [
            ChatEvent::Out {
                user_id: user("bob"),
                edge: None,
            },
            ChatEvent::Unknown,
        ] {
            let e = envelope(room, "bob", 20_000, event);
            assert_eq!(needs(&e.event, 3), Needs::default());
            assert_eq!(plan(&e, 3, &RoomFacts::default(), DAY), Plan::default());
        }
    }

    #[test]
    fn time_buckets_are_whole_periods_and_saturate() {
        assert_eq!(time_bucket(0, DAY), 0);
        assert_eq!(time_bucket(DAY - 1, DAY), 0);
        assert_eq!(time_bucket(DAY, DAY), 1);
        assert_eq!(time_bucket(-1, DAY), -1);
        assert_eq!(time_bucket(i64::MAX, 1), i32::MAX);
        assert_eq!(time_bucket(i64::MIN, 1), i32::MIN);
    }
}
