//! The tables of every scenario, in the form `docs/benchmarks.md` quotes.

use std::time::Duration;

use crate::harness::stats::{ms, per_second, percentile};

use super::bench::Bench;
use super::{Options, Results, ROOM_KINDS, SMALL_ROOM, STATE_KINDS};

/// The middle element of a sorted, non-empty slice (the upper one of an even count).
fn median(sorted: &[Duration]) -> Duration {
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// Prints every table in the form `docs/benchmarks.md` quotes.
pub(super) fn print_results(bench: &Bench, options: &Options, r: &Results) {
    println!(
        "receipts-bench: Redis {} ({}), batch {}, key prefix {}",
        r.version, r.persistence, options.batch, bench.prefix
    );
    println!();
    println!("(1) CHAT throughput, half of the members present, random senders");
    println!("| room           | CHATs  | receipts (fenced) | raw pipeline | receipts / raw | receipts unfenced |");
    println!("|----------------|-------:|------------------:|-------------:|---------------:|------------------:|");
    for t in &r.throughput {
        let fenced = per_second(t.events, t.fenced.elapsed);
        let raw = per_second(t.events, t.raw.elapsed);
        println!(
            "| {:>6} members | {:>6} | {:>10.0} ev/s   | {:>7.0} ev/s | {:>14.2} | {:>10.0} ev/s   |",
            t.members,
            t.events,
            fenced,
            raw,
            fenced / raw.max(1e-9),
            per_second(t.events, t.unfenced.elapsed)
        );
    }
    println!();
    println!("    where the time goes, µs per CHAT");
    println!("| room           | receipts wall | Redis CPU | in EVALSHA | feed counts (Rust) | freeing them | unfenced wall | unfenced Redis CPU | raw wall | raw Redis CPU | empty script wall | its Redis CPU | in EVALSHA | marking published |");
    println!("|----------------|--------------:|----------:|-----------:|-------------------:|-------------:|--------------:|-------------------:|---------:|--------------:|------------------:|--------------:|-----------:|------------------:|");
    for t in &r.throughput {
        let per = |us: f64| us / t.events.max(1) as f64;
        println!(
            "| {:>6} members | {:>13.1} | {:>9.1} | {:>10.1} | {:>18.1} | {:>12.1} | {:>13.1} | {:>18.1} | {:>8.1} | {:>13.1} | {:>17.1} | {:>13.1} | {:>10.1} | {:>17.1} |",
            t.members,
            t.fenced.per_event_us(t.events),
            per(t.fenced.redis.cpu_us),
            per(t.fenced.redis.script_us as f64),
            t.feed_counts.as_secs_f64() * 1e6 / t.events.max(1) as f64,
            t.feed_counts_freed.as_secs_f64() * 1e6 / t.events.max(1) as f64,
            t.unfenced.per_event_us(t.events),
            per(t.unfenced.redis.cpu_us),
            t.raw.per_event_us(t.events),
            per(t.raw.redis.cpu_us),
            t.floor.per_event_us(t.events),
            per(t.floor.redis.cpu_us),
            per(t.floor.redis.script_us as f64),
            t.fenced.marking.as_secs_f64() * 1e6 / t.events.max(1) as f64
        );
    }
    println!();
    println!("    the room's state after its CHATs (outcomes marked published)");
    for t in &r.throughput {
        let s = &t.state;
        let members = t.members as f64;
        println!(
            "  {} members: {:.0} B in all (MEMORY USAGE); per member {:.1} B (positions + \
             bases), per present member +{:.1} B (presence + edge); per unread message {:.1} B \
             ({} entries); per room {} B (room hash + fence), outcomes left {} B",
            t.members,
            s.usage.of(&STATE_KINDS) as f64,
            s.usage.of(&["positions", "bases"]) as f64 / members,
            s.usage.of(&["presence", "edge"]) as f64 / s.present.max(1) as f64,
            s.usage.of(&["unread"]) as f64 / s.unread.max(1) as f64,
            s.unread,
            s.usage.of(&ROOM_KINDS),
            s.usage.of(&["outcomes"])
        );
    }
    println!();
    println!(
        "(2) entering a room of {SMALL_ROOM} with {} unread messages ({} read), {} times: \
         min / median / p99 / max",
        options.backlog,
        r.entering.first().map_or(0, |e| e.read),
        options.repeats
    );
    println!("| case                                  | receipts (one INFO)              | raw pipeline                     | median receipts / raw |");
    println!("|---------------------------------------|----------------------------------|----------------------------------|----------------------:|");
    for e in &r.entering {
        let case = if e.sole_absent {
            "only absent member (entries forgotten)"
        } else {
            "4 others absent too (entries stay)"
        };
        let span = |d: &[Duration]| {
            format!(
                "{:.3} / {:.3} / {:.3} / {:.3} ms",
                ms(d.first().copied().unwrap_or_default()),
                ms(median(d)),
                ms(percentile(d, 0.99).unwrap_or_default()),
                ms(d.last().copied().unwrap_or_default())
            )
        };
        println!(
            "| {case:<37} | {:>32} | {:>32} | {:>21.2} |",
            span(&e.receipts),
            span(&e.raw),
            ms(median(&e.receipts)) / ms(median(&e.raw)).max(1e-9)
        );
    }
    println!();
    println!("(3) memory per room and per member, nothing unread, then half of each room present");
    println!("| members per room | rooms  | per room (room hash + fence) | per member, absent (positions + bases) | used_memory / member | per present member, + | used_memory / present member, + |");
    println!("|-----------------:|-------:|-----------------------------:|---------------------------------------:|---------------------:|----------------------:|--------------------------------:|");
    for m in &r.rooms {
        println!(
            "| {:>16} | {:>6} | {:>24.0} B   | {:>34.1} B   | {:>16.1} B   | {:>17.1} B   | {:>28.1} B   |",
            m.size,
            m.rooms,
            m.absent.of(&ROOM_KINDS) as f64 / m.rooms as f64,
            m.absent.of(&["positions", "bases"]) as f64 / m.members(),
            m.absent_info as f64 / m.members(),
            m.presence.total() as f64 / m.present_members(),
            m.presence_info as f64 / m.present_members()
        );
    }
    for m in &r.rooms {
        let encodings: Vec<String> = m
            .encodings
            .iter()
            .map(|(name, encoding)| format!("{name} {encoding}"))
            .collect();
        println!(
            "  rooms of {}: absent, per member: {}; present, per present member: {}; \
             encodings: {}",
            m.size,
            m.absent.by_kind(m.members()),
            m.presence.by_kind(m.present_members()),
            encodings.join(", ")
        );
    }
    println!();
    println!("(4) memory per message, rooms of {SMALL_ROOM}, one present member sends");
    println!("| rooms x messages | absent | while unread: MEMORY USAGE / message | used_memory / message | recorded outcome / CHAT, until marked | after everyone read: MEMORY USAGE / message | used_memory / message |");
    println!("|------------------|-------:|-------------------------------------:|----------------------:|--------------------------------------:|--------------------------------------------:|----------------------:|");
    for u in &r.messages {
        let n = u.messages();
        println!(
            "| {:>16} | {:>6} | {:>32.1} B   | {:>17.1} B   | {:>33.1} B   | {:>39.1} B   | {:>17.1} B   |",
            format!("{} x {}", u.rooms, u.depth),
            u.absent,
            u.unread.total() as f64 / n,
            u.unread_info as f64 / n,
            u.recorded.of(&["outcomes"]) as f64 / n,
            u.read.total() as f64 / n,
            u.read_info as f64 / n
        );
    }
    for u in &r.messages {
        let encodings: Vec<String> = u
            .encodings
            .iter()
            .map(|(name, encoding)| format!("{name} {encoding}"))
            .collect();
        println!(
            "  {} x {}, {} absent: while unread, per message: {}; after: {}; encodings: {}",
            u.rooms,
            u.depth,
            u.absent,
            u.unread.by_kind(u.messages()),
            u.read.by_kind(u.messages()),
            encodings.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_picks_the_middle() {
        let sorted: Vec<Duration> = (1..=5).map(Duration::from_millis).collect();
        assert_eq!(median(&sorted), Duration::from_millis(3));
        assert_eq!(median(&[]), Duration::ZERO);
        assert_eq!(percentile(&sorted, 0.99), Some(Duration::from_millis(5)));
    }
}
