//! Which worker applies a room: rooms are spread over partitions by their id, so each room has
//! exactly one writer and its events are applied in log order.

use chat_schemas::RoomId;

/// The partition of `room` out of `partitions` (at least 1).
pub fn partition_of(room: &RoomId, partitions: u32) -> u32 {
    let uuid = room.as_uuid();
    let bytes = uuid.as_bytes();
    let mut high = [0u8; 8];
    high.copy_from_slice(&bytes[..8]);
    let spread = u64::from_be_bytes(high) % u64::from(partitions.max(1));
    u32::try_from(spread).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_room_has_one_partition_and_all_partitions_get_rooms() {
        let mut seen = [0u32; 4];
        for _ in 0..400 {
            let room = RoomId::random();
            let p = partition_of(&room, 4);
            assert_eq!(p, partition_of(&room, 4));
            seen[usize::try_from(p).expect("small")] += 1;
        }
        assert!(seen.iter().all(|n| *n > 40), "{seen:?}");
        assert_eq!(partition_of(&RoomId::random(), 1), 0);
    }
}
