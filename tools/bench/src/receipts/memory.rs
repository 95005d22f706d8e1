//! Scenarios 3 and 4: memory per room and member, and per unread message.

use anyhow::ensure;
use chat_read_state::ReadKeys;
use chat_schemas::RoomId;
use receipts::Outcome;

use super::bench::{mark_published, Bench};
use super::usage::Usage;
use super::SMALL_ROOM;

/// Memory of rooms of one size without unread messages.
pub(super) struct RoomMemory {
    /// Members per room.
    pub(super) size: usize,
    /// Rooms measured.
    pub(super) rooms: usize,
    /// Members present in each room in the second step.
    pub(super) present: usize,
    /// The rooms with every member absent.
    pub(super) absent: Usage,
    /// `used_memory` growth for them.
    pub(super) absent_info: i64,
    /// What the presence of half of the members added.
    pub(super) presence: Usage,
    /// `used_memory` growth for it.
    pub(super) presence_info: i64,
    /// Encodings of one room's keys once half are present.
    pub(super) encodings: Vec<(&'static str, String)>,
}

impl RoomMemory {
    /// Members over all rooms.
    pub(super) fn members(&self) -> f64 {
        (self.rooms * self.size) as f64
    }

    /// Present members over all rooms.
    pub(super) fn present_members(&self) -> f64 {
        (self.rooms * self.present) as f64
    }
}

/// Creates `rooms` rooms of `size` with nobody present, then lets half of each room in,
/// measuring both steps.
pub(super) async fn measure_rooms(
    bench: &mut Bench,
    size: usize,
    rooms: usize,
) -> anyhow::Result<RoomMemory> {
    let scope = bench.scope(&format!("rooms{size}"));
    let fence = bench.fence(&scope).await?;
    let mut state = bench.state(&scope);
    let present = size / 2;
    let mut created = Vec::with_capacity(rooms);
    let mut entered = Vec::with_capacity(rooms * present);
    let mut sample = None;
    for _ in 0..rooms {
        let room = RoomId::random();
        let members = bench.members(size)?;
        created.push(bench.created(room, &members));
        for user in &members[..present] {
            entered.push(bench.entered(room, user));
        }
        sample.get_or_insert(room);
    }
    let base = bench.usage(&scope).await?;
    let before = bench.used_memory().await?;
    bench.apply_all(&mut state, &created, &fence).await?;
    let after_created = bench.used_memory().await?;
    let absent = bench.usage(&scope).await?.minus(&base);
    bench.apply_all(&mut state, &entered, &fence).await?;
    let after_entered = bench.used_memory().await?;
    let presence = bench.usage(&scope).await?.minus(&base).minus(&absent);
    let mut encodings = Vec::new();
    if let Some(room) = sample {
        encodings = bench
            .encodings(&ReadKeys::new(scope.as_str()).room(&room))
            .await?;
    }
    bench.clear(&scope).await?;
    Ok(RoomMemory {
        size,
        rooms,
        present,
        absent,
        absent_info: after_created - before,
        presence,
        presence_info: after_entered - after_created,
        encodings,
    })
}

/// Memory of unread messages at one depth.
pub(super) struct MessageMemory {
    /// Rooms measured.
    pub(super) rooms: usize,
    /// Unread messages per room.
    pub(super) depth: usize,
    /// Members absent from each room: the readers each message is missing.
    pub(super) absent: usize,
    /// What the CHATs added while their outcomes were recorded, not yet marked published.
    pub(super) recorded: Usage,
    /// What they added once marked: while the absent members have not read them.
    pub(super) unread: Usage,
    /// `used_memory` growth for that.
    pub(super) unread_info: i64,
    /// What is left once every absent member entered and left again (read everything).
    pub(super) read: Usage,
    /// `used_memory` growth for that, from before the CHATs.
    pub(super) read_info: i64,
    /// Encodings of one room's keys while its messages are unread.
    pub(super) encodings: Vec<(&'static str, String)>,
}

impl MessageMemory {
    /// Messages over all rooms.
    pub(super) fn messages(&self) -> f64 {
        (self.rooms * self.depth) as f64
    }
}

/// In `rooms` rooms of 10 where `absent` members are away, one present member sends `depth`
/// CHATs; measures them recorded, then marked published, then after everyone has read them.
pub(super) async fn measure_messages(
    bench: &mut Bench,
    rooms: usize,
    depth: usize,
    absent: usize,
) -> anyhow::Result<MessageMemory> {
    let scope = bench.scope(&format!("messages{depth}-{absent}"));
    let present = SMALL_ROOM - absent;
    let fence = bench.fence(&scope).await?;
    let mut state = bench.state(&scope);
    let mut setup = Vec::with_capacity(rooms * (1 + present));
    let mut chats = Vec::with_capacity(rooms * depth);
    let mut reads = Vec::with_capacity(rooms * absent * 2);
    let mut sample = None;
    for _ in 0..rooms {
        let room = RoomId::random();
        let members = bench.members(SMALL_ROOM)?;
        setup.push(bench.created(room, &members));
        for user in &members[..present] {
            setup.push(bench.entered(room, user));
        }
        for _ in 0..depth {
            chats.push(bench.chat(room, &members[0]));
        }
        for user in &members[present..] {
            reads.push(bench.entered(room, user));
            reads.push(bench.exited(room, user));
        }
        sample.get_or_insert(room);
    }
    bench.apply_all(&mut state, &setup, &fence).await?;
    let before = bench.used_memory().await?;
    let base = bench.usage(&scope).await?;
    let mut entries = 0;
    for batch in chats.chunks(bench.batch) {
        for outcome in state.apply(batch, Some(&fence), 0).await? {
            match outcome {
                Outcome::Chat { unread, .. } => entries += unread,
                other => anyhow::bail!("a CHAT gave {other:?}"),
            }
        }
    }
    let expected = (rooms * depth * absent) as u64;
    ensure!(
        entries == expected,
        "{entries} unread in all, expected {expected}"
    );
    let recorded = bench.usage(&scope).await?.minus(&base);
    mark_published(&mut state, &chats, &fence).await?;
    let unread_info = bench.used_memory().await? - before;
    let unread = bench.usage(&scope).await?.minus(&base);
    let mut encodings = Vec::new();
    if let Some(room) = sample {
        encodings = bench
            .encodings(&ReadKeys::new(scope.as_str()).room(&room))
            .await?;
    }
    for outcome in bench.apply_all(&mut state, &reads, &fence).await? {
        ensure!(
            matches!(outcome, Outcome::Info { read_count, .. } if read_count == depth as u64)
                || matches!(outcome, Outcome::Out { .. }),
            "reading gave {outcome:?}, expected {depth} messages read"
        );
    }
    let read_info = bench.used_memory().await? - before;
    let read = bench.usage(&scope).await?.minus(&base);
    bench.clear(&scope).await?;
    Ok(MessageMemory {
        rooms,
        depth,
        absent,
        recorded,
        unread,
        unread_info,
        read,
        read_info,
        encodings,
    })
}
