//! `bench chaos`: steady STOMP load over every edge of the local cluster (`scripts/cluster`)
//! while one node after another is killed or frozen and brought back, checking after each fault
//! that nothing acknowledged was lost or stored twice, that every client's live stream has every
//! message once and in order, that unread counts converge and that every CHAT is pushed once to
//! each device of a member away from the room; and measuring how long writes
//! and live delivery stalled and how long recovery took. `scripts/chaos` runs it;
//! docs/durability.md ("Chaos results") holds the last results.

mod check;
mod client;
mod faults;
mod options;
mod push;
mod report;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

use crate::load::edge_load::token;
use check::{Findings, History};
use client::{Gaps, Record, Run, User};
use faults::Fault;
pub use options::{Options, USAGE};
use report::Row;

/// Load after a check before the next fault hits, so the fault meets steady traffic.
const STEADY: Duration = Duration::from_secs(5);

/// Load after recovery before the window closes.
const SETTLE: Duration = Duration::from_secs(5);

/// Longest wait for every edge to be ready and every client to be served again.
const RECOVERY_PATIENCE: Duration = Duration::from_secs(180);

/// Longest wait for outstanding RECEIPTs once sending paused.
const DRAIN_PATIENCE: Duration = Duration::from_secs(20);

/// Longest wait for the history to hold every acknowledged message on every edge.
const HISTORY_PATIENCE: Duration = Duration::from_secs(90);

/// Longest wait for unread counts to converge.
const UNREAD_PATIENCE: Duration = Duration::from_secs(30);

/// Time for the last live deliveries after the last RECEIPT.
const DRAIN_LIVE: Duration = Duration::from_secs(3);

/// Runs `bench chaos`.
pub fn main(options: Options) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(chaos(options))
}

/// Everything the checks need besides the record.
struct Cluster {
    http: reqwest::Client,
    /// The edges' HTTP base URLs.
    bases: Vec<String>,
    run: Arc<Run>,
    /// Active members (user indexes) by room.
    members: Vec<Vec<usize>>,
    /// Tokens of the active users, by index.
    users: Vec<String>,
    /// Per room: the token of its watcher, a member who never opens it.
    watchers: Vec<String>,
    /// The token of the member of every room who never opens one.
    wall: String,
    /// CHATs in each room's history so far.
    chats: Vec<u64>,
    /// The watchers' and the member of every room's devices.
    devices: push::Devices,
}

async fn chaos(options: Options) -> anyhow::Result<()> {
    let endpoints = options::read_endpoints(&options.endpoints)?;
    let secret = endpoints
        .get("CHAT_JWT_SECRET")
        .ok_or_else(|| anyhow!("no CHAT_JWT_SECRET in {}", options.endpoints.display()))?
        .clone();
    let bases: Vec<String> = endpoints
        .get("CHAT_HTTP_URLS")
        .ok_or_else(|| anyhow!("no CHAT_HTTP_URLS in {}", options.endpoints.display()))?
        .split(',')
        .map(str::to_owned)
        .collect();
    let edges = bases
        .iter()
        .map(|base| {
            base.trim_start_matches("http://")
                .parse::<SocketAddr>()
                .with_context(|| format!("edge address {base}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let fcm = endpoints
        .get("CHAT_NOTIFIER__FCM_BASE_URL")
        .ok_or_else(|| {
            anyhow!(
                "no CHAT_NOTIFIER__FCM_BASE_URL in {}",
                options.endpoints.display()
            )
        })?
        .clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;

    let tag = format!(
        "{:x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
    );
    let names: Vec<String> = (0..options.users)
        .map(|j| format!("chaos{tag}-u{j}"))
        .collect();
    let watcher_names: Vec<String> = (0..options.rooms)
        .map(|k| format!("chaos{tag}-w{k}"))
        .collect();
    let wall_name = format!("chaos{tag}-all");
    // Room k: 2s consecutive users from k * s on (s = users / rooms), so each user is in two.
    let share = options.users / options.rooms;
    let members: Vec<Vec<usize>> = (0..options.rooms)
        .map(|k| {
            (0..2 * share)
                .map(|i| (k * share + i) % options.users)
                .collect()
        })
        .collect();
    let tokens = |names: &[String]| -> anyhow::Result<Vec<String>> {
        names.iter().map(|name| token(&secret, name)).collect()
    };
    let users = tokens(&names)?;
    let watchers = tokens(&watcher_names)?;
    let wall = token(&secret, &wall_name)?;

    println!(
        "chaos {tag}: {} users in {} rooms over {} edges, a CHAT every {} ms each",
        options.users,
        options.rooms,
        bases.len(),
        options.interval.as_millis()
    );
    // Shaped like FCM registration tokens (32 or more of [A-Za-z0-9_:-]), which FCM checks.
    let device = |name: &str| format!("{name}:APA91b-chaos-device-token");
    let devices = push::Devices {
        fcm,
        watchers: watcher_names.iter().map(|name| device(name)).collect(),
        wall: device(&wall_name),
    };
    for (user, device) in watchers.iter().zip(&devices.watchers) {
        push::register(&http, &bases[0], user, device).await?;
    }
    push::register(&http, &bases[0], &wall, &devices.wall).await?;
    let mut rooms = Vec::new();
    let mut origins = Vec::new();
    for (k, room_members) in members.iter().enumerate() {
        let mut invited: Vec<&str> = room_members[1..]
            .iter()
            .map(|&j| names[j].as_str())
            .collect();
        invited.push(&watcher_names[k]);
        invited.push(&wall_name);
        let base = &bases[k % bases.len()];
        let creator = &users[room_members[0]];
        let room = create_room(&http, base, creator, &format!("chaos {k}"), &invited).await?;
        let first = check::history(&http, base, creator, &room, 0).await?;
        let origin = first
            .entries
            .last()
            .map(|(id, _)| *id)
            .ok_or_else(|| anyhow!("room {room} has no INVITE"))?;
        rooms.push(room);
        origins.push(origin);
    }

    let run = Arc::new(Run {
        edges,
        secret: secret.clone(),
        rooms,
        origins: origins.clone(),
        interval: options.interval,
        sending: true.into(),
        record: Record::new(options.users).into(),
        tag: tag.clone(),
    });
    let stop = CancellationToken::new();
    let mut players = Vec::new();
    for (j, name) in names.iter().enumerate() {
        let user = User {
            index: j,
            name: name.clone(),
            rooms: (0..options.rooms)
                .filter(|&k| members[k].contains(&j))
                .collect(),
            home: j % bases.len(),
        };
        let offset = options.interval * u32::try_from(j).unwrap_or(0) / 30;
        let (run, stop) = (run.clone(), stop.clone());
        players.push(tokio::spawn(async move {
            sleep(offset).await;
            client::play(run, user, stop).await;
        }));
    }

    let mut cluster = Cluster {
        http,
        bases,
        run: run.clone(),
        members,
        users,
        watchers,
        wall,
        chats: vec![0; options.rooms],
        devices,
    };
    let mut rows = Vec::new();
    let mut after = origins.clone();

    // Window 0: the load alone, to show what the checks and gaps look like without a fault,
    // measured once every user is connected.
    let began = Instant::now();
    while run.record().connects.contains(&0) {
        if began.elapsed() > RECOVERY_PATIENCE {
            bail!("users could not connect: {:?}", run.record().drops);
        }
        sleep(Duration::from_millis(100)).await;
    }
    resume(&run, 0);
    sleep(options.warmup).await;
    let (receipt, live) = gaps(&run);
    let findings = pause_and_check(&mut cluster, &HashSet::from([0]), &mut after, false).await?;
    rows.push(Row::new("none (load only)", "-", findings, receipt, live));

    for (i, fault) in options.faults.iter().enumerate() {
        let window = i + 1;
        resume(&run, window);
        sleep(STEADY).await;
        let mut row = inflict(&cluster, &options, *fault).await;
        let windows = HashSet::from([window]);
        row.findings = pause_and_check(&mut cluster, &windows, &mut after, false).await?;
        println!("{}", report::line(&row));
        rows.push(row);
    }

    // A last full read of every room from its start, through every edge.
    let windows: HashSet<usize> = (0..=options.faults.len()).collect();
    let mut from_start = origins;
    let findings = pause_and_check(&mut cluster, &windows, &mut from_start, true).await?;
    rows.push(Row::new(
        "all (whole history)",
        "-",
        findings,
        Duration::ZERO,
        Duration::ZERO,
    ));

    stop.cancel();
    for player in players {
        player.await.ok();
    }
    let drops = run.record().drops.clone();
    let table = report::table(&rows, &options, &tag, &drops);
    println!("\n{table}");
    if let Some(doc) = &options.doc {
        report::write(doc, &table)?;
        println!("written to {}", doc.display());
    }
    if rows.iter().any(|row| row.is_bad()) {
        bail!("acknowledged messages were lost or duplicated, or a live stream was wrong");
    }
    Ok(())
}

/// Prints a progress line with the time of day, so a slow phase shows where it is.
fn progress(what: &str) {
    let now = time::OffsetDateTime::now_utc();
    println!(
        "    {:02}:{:02}:{:02} {what}",
        now.hour(),
        now.minute(),
        now.second()
    );
}

/// Creates a GROUP room named `name` with the caller and `invited`; retries while the edge
/// answers 503 (the projector catching up).
async fn create_room(
    http: &reqwest::Client,
    base: &str,
    creator: &str,
    name: &str,
    invited: &[&str],
) -> anyhow::Result<String> {
    let body = json!({"type": "GROUP", "name": name, "userIds": invited});
    for _ in 0..20 {
        let response = http
            .post(format!("{base}/api/rooms"))
            .bearer_auth(creator)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {base}/api/rooms"))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return answer["roomId"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("POST /api/rooms answered without roomId: {answer}"));
        }
        if status.as_u16() != 503 {
            bail!("POST {base}/api/rooms: {status} {answer}");
        }
        sleep(Duration::from_secs(1)).await;
    }
    bail!("POST {base}/api/rooms: still 503 after 20 tries")
}

/// Opens window `window`: users send again, gaps are measured from now.
fn resume(run: &Run, window: usize) {
    let mut record = run.record();
    record.window = window;
    let now = Instant::now();
    for gaps in &mut record.gaps {
        *gaps = Gaps::new(now);
    }
    drop(record);
    run.sending.store(true, Ordering::Relaxed);
}

/// The longest RECEIPT gap and live stall any user had in the current window, up to now.
fn gaps(run: &Run) -> (Duration, Duration) {
    let now = Instant::now();
    run.record()
        .gaps
        .iter()
        .map(|g| g.until(now))
        .fold((Duration::ZERO, Duration::ZERO), |(r, l), (gr, gl)| {
            (r.max(gr), l.max(gl))
        })
}

/// Applies `fault`, brings the node back and waits for recovery. The findings are filled in
/// by the check that follows.
async fn inflict(cluster: &Cluster, options: &Options, fault: Fault) -> Row {
    let run = &cluster.run;
    progress(&format!("{}: finding the victim", fault.name()));
    let node = match fault.victim(&cluster.http).await {
        Ok(node) => node,
        Err(e) => {
            let (receipt, live) = gaps(run);
            let mut row = Row::new(fault.name(), "?", Findings::default(), receipt, live);
            row.notes.push(format!("no victim: {e:#}"));
            return row;
        }
    };
    println!("{}: {node}", fault.name());
    let mut notes = Vec::new();
    let signal = if fault.freezes() { "STOP" } else { "KILL" };
    if let Err(e) = faults::signal(&options.cluster, &node, signal).await {
        notes.push(format!("{e:#}"));
    }
    progress(&format!("{}: sent {signal} to {node}", fault.name()));
    sleep(faults::outage(fault, options.down, options.freeze)).await;
    progress(&format!("{}: bringing {node} back", fault.name()));
    let restarted = Instant::now();
    let back = if fault.freezes() {
        faults::signal(&options.cluster, &node, "CONT").await
    } else {
        faults::start(&options.cluster, &node).await
    };
    let node_ready = restarted.elapsed();
    if let Err(e) = back {
        // The script's answer ends with the node's log tail: the table keeps the message only.
        let message = format!("{e:#}");
        let message: Vec<&str> = message
            .lines()
            .take_while(|line| !line.starts_with("--- last lines"))
            .collect();
        notes.push(format!("restart: {}", message.join(" ")));
    }
    progress(&format!("{}: waiting for recovery", fault.name()));
    let recovered = recover(cluster).await;
    if recovered.is_none() {
        notes.push(format!(
            "not recovered within {} s",
            RECOVERY_PATIENCE.as_secs()
        ));
    }
    sleep(SETTLE).await;
    let (receipt, live) = gaps(run);
    let mut row = Row::new(fault.name(), &node, Findings::default(), receipt, live);
    row.down = faults::outage(fault, options.down, options.freeze);
    row.node_ready = Some(node_ready);
    row.recovered = recovered.map(|at| at - restarted);
    row.notes.extend(notes);
    row
}

/// Waits until every edge is ready and then every user got a RECEIPT and a live CHAT again;
/// returns when, or `None` after [`RECOVERY_PATIENCE`].
async fn recover(cluster: &Cluster) -> Option<Instant> {
    let began = Instant::now();
    while !faults::edges_ready(&cluster.http, &cluster.bases).await {
        if began.elapsed() > RECOVERY_PATIENCE {
            return None;
        }
        sleep(Duration::from_millis(250)).await;
    }
    let ready = Instant::now();
    loop {
        let served = cluster
            .run
            .record()
            .gaps
            .iter()
            .all(|g| g.last_receipt > ready && g.last_delivery > ready);
        if served {
            return Some(Instant::now());
        }
        if began.elapsed() > RECOVERY_PATIENCE {
            return None;
        }
        sleep(Duration::from_millis(50)).await;
    }
}

/// Stops sending, waits for outstanding RECEIPTs and live deliveries, then checks `windows`
/// against the histories newer than `after` read through every edge; advances `after` unless
/// `full` (a re-read of what earlier checks saw).
async fn pause_and_check(
    cluster: &mut Cluster,
    windows: &HashSet<usize>,
    after: &mut Vec<u64>,
    full: bool,
) -> anyhow::Result<Findings> {
    let run = cluster.run.clone();
    run.sending.store(false, Ordering::Relaxed);
    progress("paused; checking");
    let began = Instant::now();
    while client::unacknowledged(&run.record()) > 0 && began.elapsed() < DRAIN_PATIENCE {
        sleep(Duration::from_millis(100)).await;
    }
    sleep(DRAIN_LIVE).await;

    // The history follows the log through the projector: when it lags behind the RECEIPTs,
    // read again until it holds every acknowledged message on every edge, or give up.
    let checking = Instant::now();
    let (histories, mut findings) = loop {
        let (histories, disagree) = read_everywhere(cluster, after).await?;
        let mut findings =
            check::compare(&run.record(), &cluster.members, windows, after, &histories);
        findings.edges_disagree = disagree;
        let complete = findings.lost.is_empty() && findings.edges_disagree.is_empty();
        if complete || checking.elapsed() > HISTORY_PATIENCE {
            break (histories, findings);
        }
        sleep(Duration::from_secs(2)).await;
    };
    findings.history_complete = findings.lost.is_empty().then(|| checking.elapsed());
    let chats: Vec<u64> = histories
        .iter()
        .map(|h| h.entries.iter().filter(|(_, e)| e.kind == "CHAT").count() as u64)
        .collect();
    if full {
        cluster.chats = chats;
    } else {
        for (total, new) in cluster.chats.iter_mut().zip(&chats) {
            *total += new;
        }
    }
    progress("history read; checking unread counts");
    unread(cluster, after, &mut findings).await?;
    progress("unread counts checked; checking pushes");
    push::check(&cluster.http, &cluster.devices, &histories, &mut findings).await?;
    if !full {
        *after = check::newest(after, &histories);
    }
    Ok(findings)
}

/// Reads the history newer than `after` of every room through every edge. Returns the first
/// edge's, and the rooms where another edge's differs.
async fn read_everywhere(
    cluster: &Cluster,
    after: &[u64],
) -> anyhow::Result<(Vec<History>, Vec<String>)> {
    let mut reference: Option<Vec<History>> = None;
    let mut disagree = Vec::new();
    for base in &cluster.bases {
        let mut histories = Vec::new();
        for (k, room) in cluster.run.rooms.iter().enumerate() {
            let token = &cluster.watchers[k];
            histories.push(check::history(&cluster.http, base, token, room, after[k]).await?);
        }
        match &reference {
            None => reference = Some(histories),
            Some(first) => {
                for (k, (a, b)) in first.iter().zip(&histories).enumerate() {
                    if !check::same(a, b) {
                        disagree.push(format!(
                            "room {k}: {base} differs from {}",
                            cluster.bases[0]
                        ));
                    }
                }
            }
        }
    }
    Ok((reference.ok_or_else(|| anyhow!("no edges"))?, disagree))
}

/// Waits for the unread counts to match what the log implies, and notes what does not: each
/// room's watcher (a member who never opens it) has every CHAT of the room unread, the member
/// of every room the sum as badge, the users (all in their rooms now) nothing, and every CHAT
/// newer than `after` is unread for exactly those two members.
async fn unread(cluster: &Cluster, after: &[u64], findings: &mut Findings) -> anyhow::Result<()> {
    let began = Instant::now();
    let mut attempt = 0;
    loop {
        let base = &cluster.bases[attempt % cluster.bases.len()];
        attempt += 1;
        let mut problems = Vec::new();
        for (k, room) in cluster.run.rooms.iter().enumerate() {
            let token = &cluster.watchers[k];
            let url = format!("{base}/api/rooms/{room}");
            let answer = check::get_json::<Value>(&cluster.http, &url, token).await?;
            let count = answer["unreadCount"].as_u64();
            if count != Some(cluster.chats[k]) {
                problems.push(format!(
                    "room {k}: watcher has {count:?} unread, the log {}",
                    cluster.chats[k]
                ));
            }
            let history = check::history(&cluster.http, base, token, room, after[k]).await?;
            let off = history
                .entries
                .iter()
                .filter(|(_, e)| e.kind == "CHAT" && e.unread_count != Some(2))
                .count();
            if off > 0 {
                problems.push(format!(
                    "room {k}: {off} CHATs not unread for exactly its 2 absent members"
                ));
            }
        }
        let total: u64 = cluster.chats.iter().sum();
        let url = format!("{base}/api/users/me/unread");
        let badge = check::get_json::<Value>(&cluster.http, &url, &cluster.wall).await?
            ["unreadCount"]
            .as_u64();
        if badge != Some(total) {
            problems.push(format!(
                "badge of the member of every room {badge:?}, the log {total}"
            ));
        }
        let mut present_unread = 0;
        for token in &cluster.users {
            let badge =
                check::get_json::<Value>(&cluster.http, &url, token).await?["unreadCount"].as_u64();
            if badge != Some(0) {
                present_unread += 1;
            }
        }
        if present_unread > 0 {
            problems.push(format!(
                "{present_unread} users in their rooms have a badge above 0"
            ));
        }
        if problems.is_empty() {
            findings.unread_converged = Some(began.elapsed());
            return Ok(());
        }
        if began.elapsed() > UNREAD_PATIENCE {
            findings.unread = problems;
            return Ok(());
        }
        sleep(Duration::from_secs(1)).await;
    }
}
