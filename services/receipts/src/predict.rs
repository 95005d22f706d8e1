//! Telling a CHAT's outcome before Redis answers, so that its view goes out one Redis round
//! trip sooner: at low load that round trip is a quarter of a CHAT's send-to-receive time
//! (docs/benchmarks.md).
//!
//! The worker is its rooms' only writer (the lease and the fence), and what `apply.lua`
//! answers for an event depends only on the room as the log before the event left it, which the
//! worker mirrors in memory ([`RoomCounts`]). For a CHAT, the hot path, the answer is simple
//! enough to compute here as well: [`chat`] mirrors the script's `chat` operation, and
//! [`follow`] keeps current, from each of Redis's answers, the rest of what that operation
//! reads (the room's newest published event, the mention counts). Redis stays the authority:
//! the copy in memory moves only with its answers, and every prediction is checked against the
//! answer to the same event.

use chat_schemas::{ChatEvent, UserId};

use crate::reply::{Applied, Kind};
use crate::room_counts::{Change, Position, RoomCounts};

/// What `apply.lua` will answer for CHAT `seq`, sent by `sender` and mentioning `mentioned`,
/// in the room `room` mirrors; `room` is moved past it, as the script moves the room. `None`
/// when the answer cannot be told here: a redelivery (the script answers with what it recorded
/// the first time), or mention counts not known.
pub fn chat(
    room: &mut RoomCounts,
    seq: u64,
    sender: &UserId,
    mentioned: &[UserId],
) -> Option<Applied> {
    if seq <= room.applied {
        return None;
    }
    let mentions = room.mentions.as_mut()?;
    room.chats += 1;
    let behind = |position: Position| matches!(position, Position::ReadUpTo(p) if p < seq);
    let mut unread = room
        .members
        .values()
        .filter(|member| behind(member.position))
        .count() as u64;
    let mut changes = Vec::new();
    if let Some(member) = room.members.get_mut(sender) {
        if let Position::ReadUpTo(_) = member.position {
            // The sender's own message never counts as unread for them.
            let before = *member;
            member.base += 1;
            changes.push(Change {
                user: sender.clone(),
                before: Some(before),
                after: Some(*member),
            });
            unread = unread.saturating_sub(u64::from(behind(before.position)));
        }
    }
    for user in mentioned {
        let absent = room
            .members
            .get(user)
            .is_some_and(|member| member.position != Position::Present);
        if user != sender && absent {
            *mentions.entry(user.clone()).or_default() += 1;
        }
    }
    let mut listed: Vec<(UserId, u64)> = mentions.iter().map(|(u, c)| (u.clone(), *c)).collect();
    listed.sort();
    let previous = room.shown;
    room.shown = seq;
    room.applied = seq;
    Some(Applied {
        kind: Kind::Chat,
        previous,
        chats: room.chats,
        count: unread,
        last_read: None,
        mentions: listed,
        changes,
    })
}

/// Moves `room`'s last applied event, newest published event and mention counts past event
/// `seq`, which Redis answered with `applied` (its members and CHAT count move with
/// [`RoomCounts::apply`]).
pub fn follow(room: &mut RoomCounts, seq: u64, event: &ChatEvent, applied: &Applied) {
    room.applied = room.applied.max(seq);
    if applied.kind == Kind::Nothing {
        return;
    }
    room.shown = seq;
    match (applied.kind, event) {
        (Kind::Chat, _) => room.mentions = Some(applied.mentions.iter().cloned().collect()),
        // Entering reads everything and leaving ends membership: either clears the count.
        (Kind::Info, ChatEvent::Info { user_id, .. })
        | (Kind::Leave, ChatEvent::Leave { user_id, .. }) => {
            if let Some(mentions) = room.mentions.as_mut() {
                mentions.remove(user_id);
            }
        }
        // A DELETE lowers the counts of whoever its message mentioned and had not read it.
        (_, ChatEvent::Delete { .. }) => room.mentions = None,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room_counts::Member;

    fn user(s: &str) -> UserId {
        UserId::parse(s).expect("valid")
    }

    fn room() -> RoomCounts {
        let mut room = RoomCounts {
            chats: 4,
            applied: 10,
            shown: 9,
            mentions: Some([(user("cat"), 1)].into_iter().collect()),
            ..RoomCounts::default()
        };
        let absent = |at, base| Member {
            position: Position::ReadUpTo(at),
            base,
        };
        room.members.insert(user("ann"), absent(7, 2));
        room.members.insert(user("bob"), absent(3, 1));
        room.members.insert(user("cat"), absent(5, 2));
        room.members.insert(
            user("dan"),
            Member {
                position: Position::Present,
                base: 4,
            },
        );
        room
    }

    #[test]
    fn a_chat_counts_the_absent_but_its_sender_and_raises_their_mentions() {
        let mut room = room();
        let told = chat(
            &mut room,
            11,
            &user("ann"),
            &[
                user("bob"),
                user("ann"),
                user("dan"),
                user("eve"),
                user("bob"),
            ],
        )
        .expect("told");
        assert_eq!(
            (told.kind, told.previous, told.chats, told.count),
            (Kind::Chat, 9, 5, 2)
        );
        assert_eq!(told.mentions, [(user("bob"), 2), (user("cat"), 1)]);
        assert_eq!(told.changes.len(), 1);
        assert_eq!(told.changes[0].after.map(|m| m.base), Some(3));
        assert_eq!((room.applied, room.shown), (11, 11));
        assert!(
            chat(&mut room, 11, &user("bob"), &[]).is_none(),
            "a redelivery"
        );
    }

    #[test]
    fn mentions_are_unknown_after_a_delete_until_a_chat_lists_them() {
        let mut room = room();
        let shown = Applied {
            kind: Kind::Shown,
            previous: 9,
            chats: 4,
            count: 0,
            last_read: None,
            mentions: Vec::new(),
            changes: Vec::new(),
        };
        let delete = ChatEvent::Delete {
            message_ids: Vec::new(),
        };
        follow(&mut room, 11, &delete, &shown);
        assert_eq!(
            (room.applied, room.shown, room.mentions.clone()),
            (11, 11, None)
        );
        assert!(chat(&mut room, 12, &user("ann"), &[]).is_none());
        let listed = Applied {
            kind: Kind::Chat,
            mentions: vec![(user("bob"), 3)],
            ..shown
        };
        follow(&mut room, 12, &ChatEvent::Unknown, &listed);
        assert_eq!(
            room.mentions,
            Some([(user("bob"), 3)].into_iter().collect())
        );
    }
}
