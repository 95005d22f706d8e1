//! `bench projector`: how fast the projector applies the log compared with raw Cassandra inserts,
//! and how fast a history page reads, against the running servers.
//!
//! ```text
//! bench projector [--events N] [--rooms R] [--pages P]
//! ```
//!
//! Uses a throwaway stream, subject prefix and keyspace, removed again at the end. The
//! projector's `[projector]` settings (batch size, in-flight bound) apply to both measurements.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use async_nats::jetstream;
use chat_platform::connect;
use chat_schemas::{encode, ChatEvent, Envelope, RoomId, UserId};
use futures::stream::{self, StreamExt, TryStreamExt};
use projector::plan::{time_bucket, MessageKind, Op, Write};
use projector::store::Store;
use projector::Settings;
use scylla::client::session::Session;
use uuid::Uuid;

use crate::harness::stats::{ms, per_second, percentile};
use crate::harness::{cli, env};

/// Printed for `--help` and after a bad argument.
pub const USAGE: &str = "usage: bench projector [--events N] [--rooms R] [--pages P]";

/// Publishes in flight at once while filling the log.
const PUBLISH_IN_FLIGHT: usize = 256;

/// How long the projector may take before the bench gives up.
const APPLY_TIMEOUT: Duration = Duration::from_secs(600);

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Options {
    events: usize,
    rooms: usize,
    pages: usize,
}

/// Reads the flags; every value is a positive number.
fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        events: 20_000,
        rooms: 100,
        pages: 2_000,
    };
    for pair in cli::numeric_flags(args) {
        let (flag, value) = pair?;
        if value == 0 {
            return Err(format!("{flag}: must be positive"));
        }
        match flag {
            "--events" => options.events = value,
            "--rooms" => options.rooms = value,
            "--pages" => options.pages = value,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

/// The measured numbers.
struct Results {
    raw_rows_per_s: f64,
    publish_per_s: f64,
    startup: Duration,
    apply_per_s: f64,
    steady_per_s: f64,
    page_p50: Duration,
    page_p99: Duration,
    page_rows: usize,
}

/// Runs `bench projector` with the arguments after the subcommand.
pub fn main(args: &[String]) -> anyhow::Result<()> {
    match cli::options(args, USAGE, parse) {
        Some(options) => env::runtime(measure(options))?,
        None => Ok(()),
    }
}

/// Measures on a throwaway stream and keyspace, removes them, then prints the results.
async fn measure(options: Options) -> anyhow::Result<()> {
    let mut settings = Settings::load().context("loading settings")?;
    let id = &env::run_id(10);
    settings.nats.stream = format!("BENCH_{}", id.to_uppercase());
    settings.nats.subject_prefix = format!("bench{id}.");
    settings.cassandra.keyspace = format!("bench_{id}");
    settings.projector.name = "bench".to_owned();
    // The bench's projector runs beside any other on this machine.
    settings.projector.health_listen = String::new();

    let (client, js) = connect::nats(&settings.nats).await?;
    let session = connect::cassandra(&settings.cassandra).await?;
    let outcome = bench(&settings, &options, &client, &js, &session).await;

    if let Err(e) = js.delete_stream(&settings.nats.stream).await {
        eprintln!(
            "cleanup: cannot delete stream {}: {e}",
            settings.nats.stream
        );
    }
    let drop_keyspace = format!("DROP KEYSPACE IF EXISTS {}", settings.cassandra.keyspace);
    if let Err(e) = session.query_unpaged(drop_keyspace, ()).await {
        eprintln!(
            "cleanup: cannot drop keyspace {}: {e}",
            settings.cassandra.keyspace
        );
    }
    let results = outcome?;
    print_table(&settings, &options, &results);
    Ok(())
}

/// Fills the log, then measures (a) raw inserts, (b) the projector and (c) history pages.
async fn bench(
    settings: &Settings,
    options: &Options,
    client: &async_nats::Client,
    js: &jetstream::Context,
    session: &Arc<Session>,
) -> anyhow::Result<Results> {
    let log = settings.nats.event_log();
    let keyspace = &settings.cassandra.keyspace;
    connect::event_stream(js, &log).await?;
    connect::apply_schema(session, keyspace, &settings.cassandra).await?;
    let store = Store::prepare(Arc::clone(session), keyspace).await?;
    let max_in_flight = settings.projector.max_in_flight;

    // (a) The baseline: the projector's own message insert, straight to Cassandra.
    let now = chat_schemas::Timestamp::now().millis();
    let bucket = time_bucket(now, settings.projector.bucket_millis());
    let raw_rooms: Vec<Uuid> = (0..options.rooms).map(|_| Uuid::new_v4()).collect();
    let writes: Vec<Write> = (0..options.events)
        .map(|i| Write {
            room: raw_rooms[i % raw_rooms.len()],
            seq: i64::try_from(i + 1).unwrap_or(i64::MAX),
            op: Op::Message {
                bucket,
                kind: MessageKind::Chat,
                sender: "bench".to_owned(),
                content: Some(text(i)),
                user_ids: None,
                sent_at: now,
                client_message_id: None,
                reply: None,
                mentions: None,
            },
        })
        .collect();
    let started = Instant::now();
    let failed = store.execute_all(writes, max_in_flight).await;
    let raw_elapsed = started.elapsed();
    if let Some((_, error)) = failed.first() {
        let writes: usize = failed.iter().map(|(group, _)| group.len()).sum();
        bail!("{writes} raw inserts failed, e.g. {error}");
    }
    let raw_rows_per_s = per_second(options.events, raw_elapsed);

    // (b) The same number of CHAT events through the log and the projector.
    let rooms: Vec<RoomId> = (0..options.rooms).map(|_| RoomId::random()).collect();
    let sender = UserId::parse("bench").context("bench user id")?;
    let started = Instant::now();
    let last_seq = stream::iter(0..options.events)
        .map(|i| {
            let envelope = Envelope::new(
                rooms[i % rooms.len()],
                sender.clone(),
                ChatEvent::Chat {
                    content: text(i),
                    client_message_id: None,
                    reply_to: None,
                    mentions: Vec::new(),
                },
            );
            let subject = log.room_subject(&envelope.room_id);
            async move {
                let payload = encode(&envelope)?;
                let ack = js.publish(subject, payload.into()).await?.await?;
                anyhow::Ok(ack.sequence)
            }
        })
        .buffer_unordered(PUBLISH_IN_FLIGHT)
        .try_fold(0_u64, |max, seq| async move { Ok(max.max(seq)) })
        .await?;
    let publish_per_s = per_second(options.events, started.elapsed());

    let mut progress = client
        .subscribe(log.progress_subject(&settings.projector.name))
        .await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let running = tokio::spawn(projector::run(settings.clone(), async move {
        let _ = stopped.await;
    }));
    let mut first: Option<(Instant, u64)> = None;
    let finished = tokio::time::timeout(APPLY_TIMEOUT, async {
        while let Some(message) = progress.next().await {
            let seq: u64 = std::str::from_utf8(&message.payload)?.parse()?;
            first.get_or_insert((Instant::now(), seq));
            if seq >= last_seq {
                return anyhow::Ok(Instant::now());
            }
        }
        bail!("progress subscription ended")
    })
    .await
    .context("the projector did not catch up in time")??;
    let _ = stop.send(());
    running.await??;
    let (first_at, first_seq) = first.context("no progress seen")?;
    let startup = first_at - started;
    let apply_per_s = per_second(options.events, finished - started);
    let steady = usize::try_from(last_seq - first_seq).unwrap_or(usize::MAX);
    let steady_per_s = per_second(steady, finished - first_at);

    // (c) History pages: the newest 50 rows of one room's current bucket.
    let page = session
        .prepare(format!(
            "SELECT message_id, kind, sender_id, content, user_ids, deleted, sent_at, \
             client_message_id FROM {keyspace}.messages WHERE room_id = ? AND bucket = ? LIMIT 50"
        ))
        .await?;
    let mut buckets = Vec::with_capacity(rooms.len());
    for room in &rooms {
        let start = store
            .latest_bucket(room.as_uuid())
            .await?
            .context("a projected room has a bucket")?;
        buckets.push((room.as_uuid(), start.bucket));
    }
    let mut latencies = Vec::with_capacity(options.pages);
    let mut page_rows = usize::MAX;
    for i in 0..options.pages {
        let started = Instant::now();
        let result = session
            .execute_unpaged(&page, buckets[i % buckets.len()])
            .await?;
        latencies.push(started.elapsed());
        page_rows = page_rows.min(result.into_rows_result()?.rows_num());
    }
    let expected = (options.events / options.rooms).min(50);
    ensure!(
        page_rows >= expected,
        "a page held {page_rows} rows, expected {expected}"
    );
    latencies.sort_unstable();
    Ok(Results {
        raw_rows_per_s,
        publish_per_s,
        startup,
        apply_per_s,
        steady_per_s,
        page_p50: percentile(&latencies, 0.50).unwrap_or_default(),
        page_p99: percentile(&latencies, 0.99).unwrap_or_default(),
        page_rows,
    })
}

/// The content of CHAT `i`, alike in size for the raw inserts and the events.
fn text(i: usize) -> String {
    format!("benchmark message {i}: the quick brown fox jumps over the lazy dog")
}

/// Prints the results as the table `docs/benchmarks.md` quotes.
fn print_table(settings: &Settings, options: &Options, r: &Results) {
    println!(
        "projector-bench: {} events over {} rooms, batch_size {}, max_in_flight {}",
        options.events,
        options.rooms,
        settings.projector.batch_size,
        settings.projector.max_in_flight
    );
    println!("| measurement                                   | result             |");
    println!("|-----------------------------------------------|--------------------|");
    println!(
        "| (a) raw message inserts (prepared, bounded)   | {:>10.0} rows/s  |",
        r.raw_rows_per_s
    );
    println!(
        "| publish CHAT events to JetStream              | {:>10.0} ev/s    |",
        r.publish_per_s
    );
    println!(
        "| (b) projector, end to end incl. start-up      | {:>10.0} ev/s    |",
        r.apply_per_s
    );
    println!(
        "| (b) projector, after the first batch          | {:>10.0} ev/s    |",
        r.steady_per_s
    );
    println!(
        "| projector start-up to first batch applied     | {:>10.1} ms      |",
        ms(r.startup)
    );
    println!(
        "| projector / raw (after the first batch)       | {:>10.2}         |",
        r.steady_per_s / r.raw_rows_per_s.max(1e-9)
    );
    let p50 = format!(
        "(c) history page p50 ({} pages of {})",
        options.pages, r.page_rows
    );
    println!("| {p50:<45} | {:>10.2} ms      |", ms(r.page_p50));
    println!(
        "| (c) history page p99                          | {:>10.2} ms      |",
        ms(r.page_p99)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_with_defaults() {
        let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(parse(&args("")).map(|o| o.events), Ok(20_000));
        assert_eq!(
            parse(&args("--events 500 --rooms 5 --pages 10")),
            Ok(Options {
                events: 500,
                rooms: 5,
                pages: 10
            })
        );
        assert!(parse(&args("--events 0")).is_err());
        assert!(parse(&args("--events")).is_err());
        assert!(parse(&args("--fast 1")).is_err());
    }
}
