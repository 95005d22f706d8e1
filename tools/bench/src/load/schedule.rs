//! Who sends which message when: a fixed total rate, spread evenly over rooms and senders.
//!
//! Message `i` is due `i / rate` seconds after the start. It goes to room `i % rooms`, from the
//! member `(i / rooms) % senders` of that room (the first `senders` members send, the others
//! only read), so consecutive messages visit every room once before any room gets its next one,
//! and each room's senders take turns. Every sender then sends `rate / (rooms * senders)`
//! messages per second, evenly spaced, never in bursts.

use std::ops::Range;
use std::time::Duration;

/// The sending plan of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate: f64,
    rooms: usize,
    senders: usize,
    total: u64,
}

impl Schedule {
    /// `rate` messages per second in total for `seconds`, over `rooms` rooms, sent by the
    /// first `senders` members of each.
    pub fn new(rate: f64, rooms: usize, senders: usize, seconds: f64) -> Self {
        let total = if rate > 0.0 && seconds > 0.0 && rooms > 0 && senders > 0 {
            // Whole messages that fit in the time.
            (rate * seconds).floor() as u64
        } else {
            0
        };
        Self {
            rate,
            rooms,
            senders,
            total,
        }
    }

    /// When message `i` is due, after the start.
    pub fn due(&self, i: u64) -> Duration {
        due_at(self.rate, i)
    }

    /// The room (global index) of message `i`.
    pub fn room(&self, i: u64) -> usize {
        usize::try_from(i % self.rooms as u64).unwrap_or(0)
    }

    /// The member (index within its room) that sends message `i`.
    pub fn member(&self, i: u64) -> usize {
        usize::try_from((i / self.rooms as u64) % self.senders as u64).unwrap_or(0)
    }

    /// SEND frames per second that each sending connection sustains.
    pub fn per_sender_rate(&self) -> f64 {
        let senders = (self.rooms * self.senders) as f64;
        self.rate / senders
    }

    /// The messages, in order, whose room lies in `rooms`.
    pub fn messages_of(&self, rooms: Range<usize>) -> impl Iterator<Item = u64> + '_ {
        let per_round = self.rooms as u64;
        let rounds = self.total.div_ceil(per_round.max(1));
        (0..rounds).flat_map(move |round| {
            rooms
                .clone()
                .map(move |room| round * per_round + room as u64)
                .filter(move |&i| i < self.total)
        })
    }
}

/// When message `i` of a schedule of `rate` messages per second is due, after the start.
pub fn due_at(rate: f64, i: u64) -> Duration {
    // Exact: f64 holds integers up to 2^53.
    Duration::from_secs_f64(i as f64 / rate)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn spreads_messages_evenly_over_rooms_and_members() {
        let schedule = Schedule::new(4.0, 3, 2, 3.0);
        assert_eq!(schedule.messages_of(0..3).count(), 12);
        assert_eq!(schedule.due(0), Duration::ZERO);
        assert_eq!(schedule.due(6), Duration::from_millis(1500));
        let targets: Vec<(usize, usize)> = (0..7)
            .map(|i| (schedule.room(i), schedule.member(i)))
            .collect();
        assert_eq!(
            targets,
            [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (0, 0)]
        );
        assert!((schedule.per_sender_rate() - 4.0 / 6.0).abs() < 1e-9);
    }

    #[test]
    fn only_the_first_senders_of_each_room_send() {
        let schedule = Schedule::new(10.0, 2, 2, 1.0);
        let members: HashSet<usize> = (0..10).map(|i| schedule.member(i)).collect();
        assert_eq!(members, HashSet::from([0, 1]));
        assert_eq!(schedule.member(2), 1);
        assert!((schedule.per_sender_rate() - 2.5).abs() < 1e-9);
    }

    #[test]
    fn workers_together_send_every_message_once() {
        let schedule = Schedule::new(10.0, 5, 3, 2.3);
        let mut all: Vec<u64> = schedule
            .messages_of(0..2)
            .chain(schedule.messages_of(2..5))
            .collect();
        let first: Vec<u64> = schedule.messages_of(0..2).collect();
        assert!(first.windows(2).all(|w| w[0] < w[1]), "in order: {first:?}");
        assert!(first.iter().all(|&i| schedule.room(i) < 2));
        all.sort_unstable();
        assert_eq!(all, (0..23).collect::<Vec<_>>());
    }

    #[test]
    fn nothing_to_send_without_rate_or_time() {
        assert_eq!(Schedule::new(0.0, 5, 3, 10.0).messages_of(0..5).count(), 0);
        assert_eq!(Schedule::new(10.0, 5, 3, 0.0).messages_of(0..5).count(), 0);
    }
}
