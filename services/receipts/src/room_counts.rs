//! Every member's unread count in the rooms a worker applies, mirrored in memory.
//!
//! A CHAT changes the count of every absent member, and the room-list feeds carry each one.
//! Reading them back from Redis per CHAT would cost a read per member per message; instead the
//! worker, the only writer of its rooms, keeps each room's positions and bases in memory and
//! moves them with the changes each applied event reports (`apply.lua`). A room is loaded once
//! (`load.lua`, which also fences it), and outcomes recorded but not yet published are undone
//! on load, so a worker that takes over publishes the counts the first application saw.

use std::collections::HashMap;

use chat_schemas::{RoomId, UserId};

/// Where a member has read up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// In the room on some edge: reads everything as it arrives.
    Present,
    /// Has read everything up to this stream sequence.
    ReadUpTo(u64),
}

impl Position {
    /// Decodes a position as Redis prints a score: `inf` or a whole number.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "inf" => Some(Self::Present),
            n => n.parse().ok().map(Self::ReadUpTo),
        }
    }
}

/// One member's read state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// How far they have read.
    pub position: Position,
    /// The room's CHATs that do not count as unread for them: those before their position,
    /// their own and deleted ones.
    pub base: u64,
}

/// What one event did to one member: `None` is "not a member".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Whose state changed.
    pub user: UserId,
    /// Before the event.
    pub before: Option<Member>,
    /// After it.
    pub after: Option<Member>,
}

/// A room's members and CHAT count, and what else a CHAT's outcome depends on, so that the
/// worker can tell it before Redis answers (`predict.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomCounts {
    /// CHATs the room ever recorded.
    pub chats: u64,
    /// Every member.
    pub members: HashMap<UserId, Member>,
    /// The last event Redis applied to the room: one at or below it is a redelivery, which
    /// gets its recorded outcome, not a new one.
    pub applied: u64,
    /// The room's newest published event: the next one's `Chat-Previous`.
    pub shown: u64,
    /// Every member's `mentionCount` that is not 0, when known: unknown after a DELETE (which
    /// lowers some) and after a load that undid unpublished outcomes, until the next CHAT's
    /// reply lists them all again.
    pub mentions: Option<HashMap<UserId, u64>>,
}

impl RoomCounts {
    /// Moves forward over an event's changes, leaving `chats` CHATs recorded.
    pub fn apply(&mut self, changes: &[Change], chats: u64) {
        for change in changes {
            set(&mut self.members, &change.user, change.after);
        }
        self.chats = chats;
    }

    /// Moves back over an event's changes, to `chats` CHATs recorded before it.
    pub fn undo(&mut self, changes: &[Change], chats: u64) {
        for change in changes.iter().rev() {
            set(&mut self.members, &change.user, change.before);
        }
        self.chats = chats;
    }

    /// Every member with their unread count in the room.
    pub fn unread_counts(&self) -> Vec<(UserId, u64)> {
        self.members
            .iter()
            .map(|(user, member)| {
                let count = match member.position {
                    Position::Present => 0,
                    Position::ReadUpTo(_) => self.chats.saturating_sub(member.base),
                };
                (user.clone(), count)
            })
            .collect()
    }
}

fn set(members: &mut HashMap<UserId, Member>, user: &UserId, state: Option<Member>) {
    match state {
        Some(member) => {
            members.insert(user.clone(), member);
        }
        None => {
            members.remove(user);
        }
    }
}

/// The rooms held in memory, at most [`RoomCache::CAPACITY`]; past that the cache starts over
/// and rooms load again as they are used.
#[derive(Debug, Default)]
pub struct RoomCache {
    rooms: HashMap<RoomId, RoomCounts>,
}

impl RoomCache {
    /// Most rooms held: a room of 10,000 members takes about a megabyte.
    pub const CAPACITY: usize = 10_000;

    /// Whether `room` is held.
    pub fn contains(&self, room: &RoomId) -> bool {
        self.rooms.contains_key(room)
    }

    /// Holds `counts` for `room`.
    pub fn insert(&mut self, room: RoomId, counts: RoomCounts) {
        if self.rooms.len() >= Self::CAPACITY && !self.rooms.contains_key(&room) {
            self.rooms.clear();
        }
        self.rooms.insert(room, counts);
    }

    /// The counts of `room`, when held.
    pub fn get(&self, room: &RoomId) -> Option<&RoomCounts> {
        self.rooms.get(room)
    }

    /// The counts of `room`, when held, to move.
    pub fn get_mut(&mut self, room: &RoomId) -> Option<&mut RoomCounts> {
        self.rooms.get_mut(room)
    }

    /// Forgets `room`: after a failed write nobody knows how much of it Redis applied.
    pub fn forget(&mut self, room: &RoomId) {
        self.rooms.remove(room);
    }

    /// Forgets every room.
    pub fn clear(&mut self) {
        self.rooms.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> UserId {
        UserId::parse(s).expect("valid")
    }

    fn absent(at: u64, base: u64) -> Option<Member> {
        Some(Member {
            position: Position::ReadUpTo(at),
            base,
        })
    }

    #[test]
    fn counts_follow_changes_forward_and_back() {
        let mut room = RoomCounts::default();
        let joined = [
            Change {
                user: user("ann"),
                before: None,
                after: absent(1, 0),
            },
            Change {
                user: user("bob"),
                before: None,
                after: Some(Member {
                    position: Position::Present,
                    base: 0,
                }),
            },
        ];
        room.apply(&joined, 0);
        room.apply(&[], 3);
        let mut counts = room.unread_counts();
        counts.sort();
        assert_eq!(counts, [(user("ann"), 3), (user("bob"), 0)]);
        let left = [Change {
            user: user("ann"),
            before: absent(1, 0),
            after: None,
        }];
        room.apply(&left, 3);
        assert_eq!(room.unread_counts(), [(user("bob"), 0)]);
        room.undo(&left, 3);
        room.undo(&[], 0);
        room.undo(&joined, 0);
        assert_eq!(room, RoomCounts::default());
        assert_eq!(Position::parse("inf"), Some(Position::Present));
        assert_eq!(Position::parse("42"), Some(Position::ReadUpTo(42)));
        assert_eq!(Position::parse("x"), None);
    }
}
