//! `bench push`: how fast the notifier turns a burst of messages in a room of 1,000 members into
//! FCM pushes, beside the raw capacity of the local FCM emulator measured in the same run.
//!
//! ```text
//! bench push [--messages N] [--members M]
//! ```
//!
//! Run it from the workspace root with the servers up (`scripts/servers up`):
//!
//! ```text
//! cargo build --release -p bench
//! target/release/bench push
//! ```
//!
//! Everything but the servers runs in this process, as in the integration tests: a projector, a
//! receipts worker and an edge (`TestApp`) on an isolated stream, keyspace and Redis prefix
//! (removed again at the end), the strict FCM emulator (`PushKit`) and the notifier.
//!
//! 1. **Setup**: a GROUP room of `--members` (1,000: the creator and 999 others), one android
//!    device token per member registered with `PUT /api/users/me/push-tokens`, 32 at a time.
//!    Nobody is subscribed to the room, so every member but the sender is owed a push per
//!    message.
//! 2. **Notifier**: the notifier starts with its default settings (`[notifier] concurrency`: 64
//!    requests to FCM at once), then the creator sends `--messages` (20) CHATs with
//!    `POST /api/rooms/{id}/messages`, one after the other as fast as the edge answers. Timed
//!    from the first send until the emulator has accepted all `messages × (members − 1)` pushes
//!    (`GET /admin/stats` `sendsAccepted`, polled every 10 ms). Latencies come from the
//!    deliveries' `receivedAt` against each message's send time: per push, and per message until
//!    its first and its last push (over the newest 100,000 pushes, all the emulator keeps). The
//!    CPU seconds this process (the bench and every service above), Cassandra, Redis and NATS
//!    used meanwhile, and their sum per push, show where the time went (likewise in 3 and 4).
//! 3. **Raw emulator**: `POST /admin/reset`, then the same number of sends straight to
//!    `messages:send` over plain HTTP/1.1 (reqwest), as many at once as the notifier's
//!    concurrency, with bodies the notifier sent (eight recorded messages, the token varied over
//!    the members) and one access token fetched from the emulator's `/token` as the notifier does
//!    (gcp_auth). The bodies are built before the clock starts.
//! 4. **Recipient reads alone**: what the notifier reads before it sends (mutes and device
//!    tokens from Cassandra, one query each per 100 recipients; each recipient's badge from the
//!    Redis unread counts), for the same number of recipients, without sending anything.
//!
//! Settings load as for the services (`config/default.toml`, `CHAT_CONFIG`, `CHAT_*`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, ensure, Context, Result};
use chat_tests::push::PushKit;
use chat_tests::TestApp;
use futures::StreamExt;
use gcp_auth::{CustomServiceAccount, TokenProvider};
use reqwest::Method;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::harness::cpu::{CpuTimes, CpuUse};
use crate::harness::stats::{ms, per_second, percentile};
use crate::harness::{cli, env};

/// Printed for `--help` and after a bad argument.
pub const USAGE: &str = "usage: bench push [--messages N] [--members M]";

/// Token registrations in flight at once during the setup.
const REGISTER_AT_ONCE: usize = 32;

/// Recipients of one event the notifier works on at once (its `USERS_AT_ONCE`).
const USERS_AT_ONCE: usize = 32;

/// Recorded messages reused as bodies of the raw sends.
const TEMPLATES: usize = 8;

/// Longest wait without a single new push before the bench gives up.
const STALL: Duration = Duration::from_secs(60);

/// What to measure.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    /// CHATs sent.
    messages: usize,
    /// Members of the room, the sender included.
    members: usize,
}

/// Reads the flags: at least one message, at least two members.
fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        messages: 20,
        members: 1_000,
    };
    for pair in cli::numeric_flags(args) {
        let (flag, value) = pair?;
        match flag {
            "--messages" if value >= 1 => options.messages = value,
            "--members" if value >= 2 => options.members = value,
            "--messages" | "--members" => return Err(format!("{flag}: too small")),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

/// Runs `bench push` with the arguments after the subcommand.
pub fn main(args: &[String]) -> Result<()> {
    match cli::options(args, USAGE, parse) {
        Some(options) => env::runtime(measure(options))?,
        None => Ok(()),
    }
}

/// Starts the services and the emulator on an isolated stream, keyspace and Redis prefix
/// (`TestApp`, `PushKit`), measures, and stops them again.
async fn measure(options: Options) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    println!(
        "push-bench: {} messages in a GROUP room of {} members, nobody present",
        options.messages, options.members
    );
    println!(
        "machine: {cores} cores, shared with NATS, Redis and Cassandra; this process runs the \
         edge, projector, receipts worker, notifier and FCM emulator besides the bench"
    );
    println!();

    let members = options.members;
    let mut app =
        TestApp::start_with(|s| s.edge.max_room_size = s.edge.max_room_size.max(members)).await;
    let kit = PushKit::start().await;
    let outcome = run(&mut app, &kit, &options).await;
    app.stop_notifier().await;
    drop(kit);
    drop(app);
    outcome
}

/// The three measurements in order, each printed as soon as it is done.
async fn run(app: &mut TestApp, kit: &PushKit, options: &Options) -> Result<()> {
    let users: Vec<String> = (0..options.members)
        .map(|i| format!("bench{i:04}"))
        .collect();
    let room = setup(app, &users).await?;
    let expected = options.messages * (users.len() - 1);

    let settings = kit.notifier_settings(&app.env);
    let concurrency = settings.notifier.concurrency;
    app.start_notifier(settings).await;
    let notified = notify(app, kit, &users[0], &room, options.messages, expected).await?;
    app.stop_notifier().await;
    let pushes_per_second = per_second(expected, notified.elapsed);
    println!(
        "(2) notifier, {} messages x {} recipients = {expected} pushes, [notifier] concurrency {concurrency}",
        options.messages,
        users.len() - 1
    );
    println!(
        "    sending the {} messages took {:.0} ms ({:.1} ms each)",
        options.messages,
        ms(notified.sending),
        ms(notified.sending) / options.messages as f64
    );
    println!(
        "    all pushes accepted after {:.2} s: {pushes_per_second:.0} pushes/s",
        notified.elapsed.as_secs_f64()
    );
    print_latencies(&notified.latencies);
    println!(
        "    CPU meanwhile: {}",
        notified.cpu.describe(notified.elapsed, expected, "push")
    );
    println!();

    let raw = raw_sends(kit, &users, &notified.templates, expected, concurrency).await?;
    let raw_per_second = per_second(expected, raw.elapsed);
    println!(
        "(3) raw emulator, {expected} sends of recorded bodies, {concurrency} at once (reqwest, HTTP/1.1)"
    );
    println!(
        "    {:.2} s: {raw_per_second:.0} requests/s",
        raw.elapsed.as_secs_f64()
    );
    println!(
        "    CPU meanwhile: {}",
        raw.cpu.describe(raw.elapsed, expected, "request")
    );
    println!(
        "    notifier / raw: {:.2}",
        pushes_per_second / raw_per_second
    );
    println!();

    let lookups = options.messages * USERS_AT_ONCE;
    let reads = recipient_reads(app, &users, &room, expected, lookups).await?;
    println!(
        "(4) recipient reads alone (mutes + tokens from Cassandra per 100 recipients, badge \
         from Redis), {expected} recipients, {lookups} at once"
    );
    println!(
        "    {:.2} s: {:.0} recipients/s",
        reads.elapsed.as_secs_f64(),
        per_second(expected, reads.elapsed)
    );
    println!(
        "    CPU meanwhile: {}",
        reads.cpu.describe(reads.elapsed, expected, "recipient")
    );
    Ok(())
}

/// A device token in FCM's format for `user`.
fn device_token(user: &str) -> String {
    format!("{user}:{}", "A1b2C3d4".repeat(8))
}

/// Creates the room and registers one token per member; returns the room id.
async fn setup(app: &TestApp, users: &[String]) -> Result<String> {
    let started = Instant::now();
    let (status, room) = app
        .post(
            &users[0],
            "/api/rooms",
            json!({"type": "GROUP", "name": "Push bench", "userIds": &users[1..]}),
        )
        .await;
    ensure!(status == 201, "creating the room: {status} {room}");
    let room = room["roomId"]
        .as_str()
        .context("the created room has no roomId")?
        .to_owned();
    let created = started.elapsed();

    let started = Instant::now();
    let answers: Vec<(&String, u16, Value)> = futures::stream::iter(users)
        .map(|user| async move {
            let (status, body) = app
                .call(
                    Method::PUT,
                    Some(user),
                    "/api/users/me/push-tokens",
                    Some(json!({"token": device_token(user), "platform": "android"})),
                )
                .await;
            (user, status, body)
        })
        .buffer_unordered(REGISTER_AT_ONCE)
        .collect()
        .await;
    let registered = started.elapsed();
    if let Some((user, status, body)) = answers.iter().find(|(_, status, _)| *status != 200) {
        bail!("registering {user}'s token: {status} {body}");
    }
    println!(
        "(1) setup: room of {} created in {:.0} ms; {} tokens registered, {REGISTER_AT_ONCE} at once, in {:.2} s ({:.0}/s)",
        users.len(),
        ms(created),
        users.len(),
        registered.as_secs_f64(),
        per_second(users.len(), registered)
    );
    println!();
    Ok(room)
}

/// What the notifier part measured.
struct Notified {
    /// Sending the messages through the edge.
    sending: Duration,
    /// From the first send until every push was accepted.
    elapsed: Duration,
    /// CPU used meanwhile.
    cpu: CpuUse,
    /// From the sends to the pushes.
    latencies: Latencies,
    /// Messages the notifier sent, as bodies for the raw sends.
    templates: Vec<Value>,
}

/// Sends `messages` CHATs from `sender` and waits until the emulator accepted `expected` pushes.
async fn notify(
    app: &TestApp,
    kit: &PushKit,
    sender: &str,
    room: &str,
    messages: usize,
    expected: usize,
) -> Result<Notified> {
    let path = format!("/api/rooms/{room}/messages");
    let mut sent_at: HashMap<String, SystemTime> = HashMap::new();
    let cpu = CpuTimes::now();
    let started = Instant::now();
    for i in 0..messages {
        let at = SystemTime::now();
        let (status, sent) = app
            .post(
                sender,
                &path,
                json!({"content": format!("Push bench message {i}: dinner at 7, who is in?")}),
            )
            .await;
        ensure!(status == 201, "sending message {i}: {status} {sent}");
        let id = sent["messageId"]
            .as_str()
            .context("the sent message has no messageId")?;
        sent_at.insert(id.to_owned(), at);
    }
    let sending = started.elapsed();
    wait_accepted(kit, expected).await?;
    let elapsed = started.elapsed();
    let cpu = cpu.until_now();

    let deliveries = kit.deliveries().await;
    let kept = expected.min(fcm_emulator::state::DEFAULT_MAX_DELIVERIES);
    ensure!(
        deliveries.len() == kept,
        "the emulator holds {} deliveries, not {kept}",
        deliveries.len()
    );
    let latencies = latencies(&deliveries, &sent_at)?;
    let templates = (0..TEMPLATES)
        .map(|i| deliveries[i * deliveries.len() / TEMPLATES]["message"].clone())
        .collect();
    Ok(Notified {
        sending,
        elapsed,
        cpu,
        latencies,
        templates,
    })
}

/// Polls the emulator's counters until `expected` sends were accepted.
async fn wait_accepted(kit: &PushKit, expected: usize) -> Result<()> {
    let mut seen = 0;
    let mut progress = Instant::now();
    loop {
        let stats = kit.admin("/stats", None).await;
        let rejected = stats["sendsRejected"].as_u64().unwrap_or(0);
        ensure!(rejected == 0, "the emulator rejected sends: {stats}");
        let accepted = stats["sendsAccepted"]
            .as_u64()
            .context("no sendsAccepted in the emulator's stats")?;
        let accepted = usize::try_from(accepted)?;
        if accepted >= expected {
            ensure!(
                accepted == expected,
                "{accepted} pushes accepted, {expected} expected"
            );
            return Ok(());
        }
        if accepted > seen {
            seen = accepted;
            progress = Instant::now();
        } else if progress.elapsed() > STALL {
            bail!("no push for {STALL:?}: {accepted} of {expected} accepted; stats {stats}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Latencies in milliseconds from a message's send to its pushes, each sorted.
struct Latencies {
    /// Of every push.
    per_push: Vec<f64>,
    /// Of each message's first push.
    first_push: Vec<f64>,
    /// Of each message's last push.
    last_push: Vec<f64>,
}

/// The latencies of `deliveries`, against the send time of their messages.
fn latencies(deliveries: &[Value], sent_at: &HashMap<String, SystemTime>) -> Result<Latencies> {
    let mut per_push = Vec::with_capacity(deliveries.len());
    let mut per_message: HashMap<&str, (f64, f64)> = HashMap::new();
    for delivery in deliveries {
        let id = delivery["message"]["data"]["messageId"]
            .as_str()
            .ok_or_else(|| anyhow!("a delivery without data.messageId: {delivery}"))?;
        let sent = OffsetDateTime::from(
            *sent_at
                .get(id)
                .ok_or_else(|| anyhow!("a push for message {id}, which the bench did not send"))?,
        );
        let received = delivery["receivedAt"]
            .as_str()
            .context("a delivery without receivedAt")?;
        let received = OffsetDateTime::parse(received, &Rfc3339)
            .with_context(|| format!("receivedAt {received}"))?;
        let latency = (received - sent).as_seconds_f64() * 1_000.0;
        per_push.push(latency);
        let span = per_message.entry(id).or_insert((latency, latency));
        span.0 = span.0.min(latency);
        span.1 = span.1.max(latency);
    }
    let mut first_push: Vec<f64> = per_message.values().map(|s| s.0).collect();
    let mut last_push: Vec<f64> = per_message.values().map(|s| s.1).collect();
    for values in [&mut per_push, &mut first_push, &mut last_push] {
        values.sort_by(f64::total_cmp);
    }
    Ok(Latencies {
        per_push,
        first_push,
        last_push,
    })
}

/// p50, p99 and max of each kind of latency.
fn print_latencies(latencies: &Latencies) {
    let line = |what: &str, values: &[f64]| {
        println!(
            "    {what:<34} p50 {:>7.0} ms  p99 {:>7.0} ms  max {:>7.0} ms",
            percentile(values, 0.50).unwrap_or(f64::NAN),
            percentile(values, 0.99).unwrap_or(f64::NAN),
            values.last().copied().unwrap_or(f64::NAN)
        );
    };
    line("send -> push, per push:", &latencies.per_push);
    line("send -> first push, per message:", &latencies.first_push);
    line("send -> last push, per message:", &latencies.last_push);
}

/// What the raw part and the recipient reads measured.
struct Timed {
    /// Wall time.
    elapsed: Duration,
    /// CPU used meanwhile.
    cpu: CpuUse,
}

/// Sends `count` recorded bodies (tokens varied) straight to the emulator, `concurrency` at once.
async fn raw_sends(
    kit: &PushKit,
    users: &[String],
    templates: &[Value],
    count: usize,
    concurrency: usize,
) -> Result<Timed> {
    kit.admin("/reset", Some(json!({}))).await;
    let account = CustomServiceAccount::from_file(&kit.key_file).context("the test key")?;
    let project = account
        .project_id()
        .context("the test key has no project_id")?
        .to_owned();
    let access = account
        .token(&[notifier::fcm::auth::SCOPE])
        .await
        .context("an access token from the emulator")?;
    let access: Arc<str> = Arc::from(access.as_str());
    let endpoint: Arc<str> = Arc::from(format!("{}/v1/projects/{project}/messages:send", kit.url));

    let recipients = &users[1..];
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..count)
            .map(|i| {
                let mut message = templates[i % templates.len()].clone();
                message["token"] = Value::from(device_token(&recipients[i % recipients.len()]));
                json!({ "message": message }).to_string()
            })
            .collect(),
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .context("HTTP client")?;

    let next = Arc::new(AtomicUsize::new(0));
    let cpu = CpuTimes::now();
    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, endpoint, access, bodies, next) = (
            client.clone(),
            endpoint.clone(),
            access.clone(),
            bodies.clone(),
            next.clone(),
        );
        senders.spawn(async move {
            while let Some(body) = bodies.get(next.fetch_add(1, Ordering::Relaxed)) {
                let response = client
                    .post(&*endpoint)
                    .bearer_auth(&access)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .context("raw send")?;
                let status = response.status();
                let answer = response.bytes().await.context("raw send's answer")?;
                if !status.is_success() {
                    bail!(
                        "raw send answered {status}: {}",
                        String::from_utf8_lossy(&answer)
                    );
                }
            }
            Ok(())
        });
    }
    while let Some(sender) = senders.join_next().await {
        sender.context("raw sender task")??;
    }
    let elapsed = started.elapsed();
    let cpu = cpu.until_now();
    let stats = kit.admin("/stats", None).await;
    ensure!(
        stats["sendsAccepted"].as_u64() == Some(u64::try_from(count)?),
        "the emulator did not accept every raw send: {stats}"
    );
    Ok(Timed { elapsed, cpu })
}

/// Recipients per mute and token query, as the notifier reads them.
const LOOKUP_CHUNK: usize = 100;

/// Reads what the notifier reads for `count` recipients, about `at_once` recipients at a time:
/// mutes and tokens in one query per 100 recipients, and each badge.
async fn recipient_reads(
    app: &TestApp,
    users: &[String],
    room: &str,
    count: usize,
    at_once: usize,
) -> Result<Timed> {
    let directory = notifier::directory::Directory::prepare(
        app.env.cassandra.clone(),
        &app.env.cassandra_settings.keyspace,
    )
    .await?;
    let unread = chat_read_state::UnreadCounts::new(
        app.env.redis.clone(),
        chat_read_state::ReadKeys::new(app.env.redis_settings.key_prefix.clone()),
    );
    let room: uuid::Uuid = room.parse().context("room id")?;
    let recipients = &users[1..];
    ensure!(!recipients.is_empty(), "no recipients");
    let picked: Vec<String> = (0..count)
        .map(|i| recipients[i % recipients.len()].clone())
        .collect();
    let chunks: Vec<&[String]> = picked.chunks(LOOKUP_CHUNK).collect();
    let (directory, unread) = (&directory, &unread);

    let cpu = CpuTimes::now();
    let started = Instant::now();
    let results: Vec<Result<usize>> = futures::stream::iter(chunks)
        .map(|chunk| async move {
            let muted = directory.muted(chunk, room).await?;
            let tokens = directory.tokens(chunk).await?;
            ensure!(muted.is_empty(), "unexpected mutes: {muted:?}");
            let mut badges = 0;
            for user in chunk {
                ensure!(
                    tokens.get(user).is_some_and(|t| t.len() == 1),
                    "{user}: no token"
                );
                let rooms: Vec<chat_schemas::RoomId> = directory
                    .user_rooms(user)
                    .await?
                    .into_iter()
                    .map(chat_schemas::RoomId::from)
                    .collect();
                badges += unread
                    .total(&chat_schemas::UserId::parse(user)?, &rooms)
                    .await?;
            }
            Ok(usize::try_from(badges)?)
        })
        .buffer_unordered((at_once / LOOKUP_CHUNK).max(1))
        .collect()
        .await;
    let elapsed = started.elapsed();
    let cpu = cpu.until_now();
    for result in results {
        result?;
    }
    Ok(Timed { elapsed, cpu })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(
            parse(&args("")),
            Ok(Options {
                messages: 20,
                members: 1_000
            })
        );
        assert_eq!(
            parse(&args("--messages 5 --members 10")),
            Ok(Options {
                messages: 5,
                members: 10
            })
        );
        assert!(parse(&args("--members 1")).is_err());
        assert!(parse(&args("--messages")).is_err());
        assert!(parse(&args("--rooms 3")).is_err());
    }

    #[test]
    fn device_tokens_have_fcm_format() {
        let token = device_token("bench0999");
        assert!((32..=4096).contains(&token.len()));
        assert!(token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-')));
    }
}
