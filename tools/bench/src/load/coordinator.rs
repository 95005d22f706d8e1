//! `bench load`: creates the rooms, starts worker processes that hold the connections, starts
//! the load at one agreed instant, samples memory and CPU time of the server processes, and
//! prints the edge's numbers next to the raw NATS baseline's.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::{sleep, sleep_until, timeout, Instant};

use super::hops::{Hops, Observer};
use super::http_probe::{self, Probe, ProbeResult};
use super::options::{Mode, Options};
use super::setup;
use super::wire::{user_name, Clock, ErrorTally, Go, Plan, Ready, Report, Target};
use crate::harness::procfs;
use crate::harness::stats::{format_ratio, format_us, Latencies};

/// How long after the last worker is ready the first message is due.
const LEAD: Duration = Duration::from_secs(1);

/// How long to wait for a memory reading after the connections closed.
const SETTLE: Duration = Duration::from_secs(2);

/// The name of the phase that loads the edge (and with it the whole pipeline).
const EDGE_PHASE: &str = "edge";

/// Runs the coordinator.
pub fn main(options: Options) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(options))
}

async fn run(o: Options) -> anyhow::Result<()> {
    let rooms = o.rooms();
    if rooms * o.room_size != o.connections {
        note(&format!(
            "using {} connections: whole rooms of {}",
            rooms * o.room_size,
            o.room_size
        ));
    }
    let clock = Clock::new();
    let mut phases = Vec::new();
    if o.mode != Mode::Raw {
        let addr = edge_addr(&o.url)?;
        note(&format!(
            "creating {rooms} GROUP rooms of {} through {}/api/rooms",
            o.room_size, o.url
        ));
        let started = Instant::now();
        // One room more than the load uses: the HTTP probe's, none of its members connected.
        let mut ids = setup::create_rooms(&o.url, &o.secret, rooms + 1, o.room_size).await?;
        let probe = ids.pop().map(|room| (user_name(rooms * o.room_size), room));
        note(&format!(
            "rooms created in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        let target = |worker: usize| Target::Edge {
            addr,
            source_ip: source_ip(worker),
            secret: o.secret.clone(),
            heart_beat_ms: o.heart_beat_ms,
            feeds: o.feeds,
        };
        let server = o.edge_pid.map(|pid| ("edge", pid));
        phases.push(run_phase(&o, &clock, EDGE_PHASE, server, target, ids, probe).await?);
    }
    if o.mode != Mode::Edge {
        check_loopback_url(&o.nats_url)?;
        let run_id = clock.now_ns() % 1_000_000_000;
        let subjects = (0..rooms)
            .map(|k| format!("bench.{run_id}.room.{k}"))
            .collect();
        let target = |_| Target::Raw {
            url: o.nats_url.clone(),
        };
        let server = o.nats_pid.map(|pid| ("nats-server", pid));
        phases.push(run_phase(&o, &clock, "raw NATS", server, target, subjects, None).await?);
    }
    for phase in &phases {
        phase.print(&o);
    }
    if let [edge, raw] = phases.as_slice() {
        compare(edge, raw);
    }
    Ok(())
}

fn note(message: &str) {
    eprintln!("loadgen: {message}");
}

/// The edge's address from its base URL; loopback only.
fn edge_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let addr: SocketAddr = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("--url must be http://IP:PORT"))?
        .parse()
        .context("--url must be http://IP:PORT")?;
    if !matches!(addr.ip(), IpAddr::V4(ip) if ip.is_loopback()) {
        bail!("the edge must listen on an IPv4 loopback address, not {addr}");
    }
    Ok(addr)
}

fn check_loopback_url(url: &str) -> anyhow::Result<()> {
    let host = url
        .split("://")
        .last()
        .and_then(|rest| rest.rsplit_once(':'))
        .map_or(url, |(host, _)| host);
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("NATS must be on a loopback address, not {url}");
    }
    Ok(())
}

/// Worker `w` connects from 127.0.0.(2 + w): each source address has its own ephemeral ports.
fn source_ip(worker: usize) -> IpAddr {
    let last = u8::try_from(2 + worker).unwrap_or(254);
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// One worker process.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    fn spawn() -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting a worker process")?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("worker stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("worker stdout"))?;
        Ok(Self {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    async fn send<T: Serialize>(&mut self, message: &T) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(message)?;
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        Ok(self.stdin.flush().await?)
    }

    async fn receive<T: DeserializeOwned>(&mut self, limit: Duration) -> anyhow::Result<T> {
        let line = timeout(limit, self.lines.next_line())
            .await
            .map_err(|_| anyhow!("a worker did not answer within {limit:?}"))??
            .ok_or_else(|| anyhow!("a worker exited early (see its messages above)"))?;
        Ok(serde_json::from_str(&line)?)
    }
}

/// What one phase (edge or raw) measured.
struct PhaseResult {
    name: &'static str,
    connections: usize,
    workers: usize,
    ready: Ready,
    /// Time per connection to be ready.
    connect_latencies: Latencies,
    /// Connection attempts dropped by full accept queues (machine-wide) while connecting.
    listen_overflows: Option<u64>,
    report: Report,
    /// Latencies of all deliveries.
    latencies: Latencies,
    /// Latencies of deliveries to the other members.
    others: Latencies,
    /// Latencies of the copies delivered back to the senders.
    own: Latencies,
    /// Latencies of the room-list feed entries (edge phase with `--feeds true`).
    feed: Latencies,
    go: Go,
    room_size: usize,
    /// The server's RSS in KiB: before connecting, all connected, after they closed.
    rss: [Option<u64>; 3],
    /// The workers' RSS in KiB, all connected.
    loadgen_rss: u64,
    /// Server CPU seconds spent while the connections were opened.
    connect_cpu: Option<f64>,
    /// CPU seconds per process (group) during the measured window.
    cpu: Vec<(String, f64)>,
    /// Where the time of the edge phase's CHATs went, with `--hop-subject`.
    hops: Option<Hops>,
    /// The edge phase's HTTP POSTs: how long read-your-writes took under this load.
    http: Option<ProbeResult>,
}

/// Opens the connections in worker processes, runs the load, gathers the reports; with
/// `probe` (a user and their room), POSTs over HTTP beside the load ([`http_probe`]).
async fn run_phase(
    o: &Options,
    clock: &Clock,
    name: &'static str,
    server: Option<(&str, u32)>,
    target: impl Fn(usize) -> Target,
    rooms: Vec<String>,
    probe: Option<(String, String)>,
) -> anyhow::Result<PhaseResult> {
    let rooms_per_process = o.per_process / o.room_size;
    let workers = rooms.len().div_ceil(rooms_per_process);
    let share = rooms.len().div_ceil(workers);
    let connections = rooms.len() * o.room_size;
    note(&format!(
        "{name}: opening {connections} connections from {workers} worker processes"
    ));
    let server_pid = server.map(|(_, pid)| pid);
    let overflows_before = procfs::listen_overflows();
    let rss_before = server_pid.and_then(procfs::rss_kib);
    let cpu_before = server_pid.and_then(procfs::cpu_seconds);

    let mut procs = Vec::with_capacity(workers);
    for (w, chunk) in rooms.chunks(share).enumerate() {
        let mut worker = Worker::spawn()?;
        worker
            .send(&Plan {
                target: target(w),
                first_room: w * share,
                rooms: chunk.to_vec(),
                room_size: o.room_size,
                connect_concurrency: o.connect_concurrency,
                connect_timeout_ms: (o.connect_timeout * 1000.0) as u64,
            })
            .await?;
        procs.push(worker);
    }
    let per_worker = share * o.room_size;
    let rounds = per_worker.div_ceil(o.connect_concurrency.max(1)) as f64;
    let connect_limit = Duration::from_secs_f64(o.connect_timeout * rounds + 30.0);
    let (ready, connect_latencies) = gather_ready(&mut procs, connect_limit).await?;
    let listen_overflows = procfs::listen_overflows()
        .zip(overflows_before)
        .map(|(after, before)| after.saturating_sub(before));
    let rss_connected = server_pid.and_then(procfs::rss_kib);
    let connect_cpu = server_pid
        .and_then(procfs::cpu_seconds)
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let worker_pids: Vec<u32> = procs.iter().filter_map(|w| w.child.id()).collect();
    let loadgen_rss = worker_pids.iter().filter_map(|&p| procfs::rss_kib(p)).sum();
    note(&format!(
        "{name}: {} connected, {} failed in {:.1} s; sending for {} s",
        ready.established,
        ready.failed,
        ready.seconds,
        o.warmup + o.duration
    ));

    let go = Go {
        start_ns: clock.now_ns() + LEAD.as_nanos() as u64,
        warmup_ms: (o.warmup * 1000.0) as u64,
        duration_ms: (o.duration * 1000.0) as u64,
        drain_ms: (o.drain * 1000.0) as u64,
        rate: o.rate,
        total_rooms: rooms.len(),
        senders: o.senders(),
        payload_bytes: o.payload,
        client_message_id: o.client_message_id,
    };
    let observer = match (&o.hop_subject, name == EDGE_PHASE) {
        (Some(subject), true) => Some(Observer::start(&o.nats_url, subject, *clock, go).await?),
        _ => None,
    };
    let probe = match probe {
        Some((user, room)) => Some(Probe::start(&o.url, &o.secret, &user, &room, *clock, go)?),
        None => None,
    };
    for worker in &mut procs {
        worker.send(&go).await?;
    }
    let mut watched: Vec<(String, Vec<u32>)> = Vec::new();
    if let Some((server, pid)) = server {
        watched.push((server.to_owned(), vec![pid]));
    }
    // The rest of the stack works only for the edge; the raw baseline is the NATS server alone.
    if name == EDGE_PHASE {
        for (watch, pid) in &o.watch {
            if Some(*pid) != server_pid {
                watched.push((watch.clone(), vec![*pid]));
            }
        }
    }
    watched.push(("loadgen".to_owned(), worker_pids));
    let cpu = cpu_in_window(clock, &go, &watched).await;

    let report_limit = Duration::from_millis(go.drain_ms) + Duration::from_secs(60);
    let (report, [latencies, others, own, feed]) = gather_reports(&mut procs, report_limit).await?;
    let hops = match observer {
        Some(observer) => Some(observer.finish().await?),
        None => None,
    };
    let http = match probe {
        Some(probe) => Some(probe.finish().await?),
        None => None,
    };
    for mut worker in procs {
        drop(worker.stdin);
        if timeout(Duration::from_secs(30), worker.child.wait())
            .await
            .is_err()
        {
            let _ = worker.child.kill().await;
        }
    }
    sleep(SETTLE).await;
    let rss_after = server_pid.and_then(procfs::rss_kib);
    Ok(PhaseResult {
        name,
        connections,
        workers,
        ready,
        report,
        latencies,
        others,
        own,
        feed,
        go,
        room_size: o.room_size,
        connect_latencies,
        listen_overflows,
        rss: [rss_before, rss_connected, rss_after],
        loadgen_rss,
        connect_cpu,
        cpu,
        hops,
        http,
    })
}

/// Every worker's [`Ready`], added up, and the connection set-up times.
async fn gather_ready(procs: &mut [Worker], limit: Duration) -> anyhow::Result<(Ready, Latencies)> {
    let mut ready = Ready::default();
    let mut errors = ErrorTally::default();
    let mut latencies = Latencies::default();
    for worker in procs {
        let r: Ready = worker.receive(limit).await?;
        ready.established += r.established;
        ready.failed += r.failed;
        ready.seconds = ready.seconds.max(r.seconds);
        errors.merge(&r.errors);
        latencies.add_buckets(&r.latency_us);
    }
    ready.errors = errors.into_vec();
    Ok((ready, latencies))
}

/// Every worker's [`Report`], added up, and the latencies of all deliveries, of those to the
/// other members and of those back to the senders.
async fn gather_reports(
    procs: &mut [Worker],
    limit: Duration,
) -> anyhow::Result<(Report, [Latencies; 4])> {
    let mut report = Report::default();
    let [mut all, mut others, mut own, mut feed] = <[Latencies; 4]>::default();
    let mut errors = ErrorTally::default();
    for worker in procs {
        let r: Report = worker.receive(limit).await?;
        report.held += r.held;
        report.dropped += r.dropped;
        report.sent += r.sent;
        report.skipped += r.skipped;
        report.delivered += r.delivered;
        report.delivered_outside += r.delivered_outside;
        all.add_buckets(&r.latency_us);
        all.add_buckets(&r.own_latency_us);
        others.add_buckets(&r.latency_us);
        own.add_buckets(&r.own_latency_us);
        report.feed_entries += r.feed_entries;
        feed.add_buckets(&r.feed_latency_us);
        errors.merge(&r.errors);
    }
    report.errors = errors.into_vec();
    Ok((report, [all, others, own, feed]))
}

/// CPU seconds each group of processes used during the measured window of `go`.
async fn cpu_in_window(
    clock: &Clock,
    go: &Go,
    watched: &[(String, Vec<u32>)],
) -> Vec<(String, f64)> {
    let (start, end) = go.window();
    sleep_until(clock.instant(start)).await;
    let before = cpu_of(watched);
    sleep_until(clock.instant(end)).await;
    let after = cpu_of(watched);
    watched
        .iter()
        .zip(before.iter().zip(&after))
        .map(|((name, _), (before, after))| (name.clone(), after - before))
        .collect()
}

/// CPU seconds so far of each group of processes.
fn cpu_of(watched: &[(String, Vec<u32>)]) -> Vec<f64> {
    watched
        .iter()
        .map(|(_, pids)| pids.iter().filter_map(|&p| procfs::cpu_seconds(p)).sum())
        .collect()
}

impl PhaseResult {
    fn window_seconds(&self) -> f64 {
        self.go.duration_ms as f64 / 1000.0
    }

    fn delivered_per_second(&self) -> f64 {
        self.report.delivered as f64 / self.window_seconds()
    }

    /// The server's RSS growth per connection, KiB.
    fn rss_per_connection(&self) -> Option<f64> {
        let [Some(before), Some(connected), _] = self.rss else {
            return None;
        };
        let held = self.ready.established.max(1) as f64;
        Some((connected as f64 - before as f64) / held)
    }

    /// Share of one core the whole stack (every watched process but the load generator) used
    /// in the window.
    fn stack_cpu(&self) -> Option<f64> {
        let stack: Vec<f64> = self
            .cpu
            .iter()
            .filter(|(name, _)| name != "loadgen")
            .map(|(_, seconds)| *seconds)
            .collect();
        (!stack.is_empty()).then(|| stack.iter().sum::<f64>() / self.window_seconds())
    }

    /// CPU milliseconds the whole stack spent per 1,000 deliveries.
    fn stack_cpu_ms_per_thousand(&self) -> Option<f64> {
        let per_second = self.delivered_per_second();
        self.stack_cpu()
            .filter(|_| per_second > 0.0)
            .map(|share| share * 1e6 / per_second)
    }

    /// Share of one core the first watched process (the server) used in the window.
    fn server_cpu(&self) -> Option<f64> {
        self.cpu
            .first()
            .filter(|(name, _)| name != "loadgen")
            .map(|(_, seconds)| seconds / self.window_seconds())
    }

    fn print(&self, o: &Options) {
        let window = self.window_seconds();
        let r = &self.report;
        let expected = r.sent * self.room_size as u64;
        println!();
        println!(
            "== {}: {} connections ({} rooms of {}) from {} worker processes",
            self.name,
            self.connections,
            self.connections / self.room_size,
            self.room_size,
            self.workers
        );
        println!(
            "   connected {}, failed {}, in {:.1} s; at the end held {}, dropped {}",
            self.ready.established, self.ready.failed, self.ready.seconds, r.held, r.dropped
        );
        let c = &self.connect_latencies;
        println!(
            "   per connection (TCP, upgrade, CONNECT, SUBSCRIBE receipt): p50 {}  p99 {}  max {}; \
             SYNs dropped by full accept queues: {}",
            format_us(c.quantile(0.5)),
            format_us(c.quantile(0.99)),
            format_us(c.max()),
            self.listen_overflows
                .map_or("-".to_owned(), |n| n.to_string())
        );
        for (reason, count) in &self.ready.errors {
            println!("   connect failure x{count}: {reason}");
        }
        if let [Some(before), Some(connected), after] = self.rss {
            println!(
                "   server RSS: {} before, {} connected, {} after they closed; {:.1} KiB per connection",
                mib(before),
                mib(connected),
                after.map_or("-".to_owned(), mib),
                self.rss_per_connection().unwrap_or(0.0)
            );
        }
        if let Some(cpu) = self.connect_cpu {
            println!(
                "   server CPU to open the connections: {cpu:.1} s ({:.0} µs per connection)",
                cpu * 1e6 / self.ready.established.max(1) as f64
            );
        }
        println!(
            "   loadgen RSS: {} ({:.1} KiB per connection)",
            mib(self.loadgen_rss),
            self.loadgen_rss as f64 / self.ready.established.max(1) as f64
        );
        println!(
            "   measured {window:.0} s after {:.0} s warm-up: sent {} ({:.1}/s, {:.3}/s per connection), not sent {}",
            o.warmup,
            r.sent,
            r.sent as f64 / window,
            r.sent as f64 / window / self.connections as f64,
            r.skipped
        );
        println!(
            "   delivered {} of {} expected ({:.2}%), {:.1} msgs/s (and {} of warm-up messages)",
            r.delivered,
            expected,
            100.0 * r.delivered as f64 / expected.max(1) as f64,
            self.delivered_per_second(),
            r.delivered_outside
        );
        for (label, l) in [
            ("all deliveries", &self.latencies),
            ("to the others", &self.others),
            ("back to sender", &self.own),
        ] {
            println!(
                "   latency, {label:<15} {}  max {:>8}",
                l.percentiles(),
                format_us(l.max())
            );
        }
        if r.feed_entries > 0 {
            println!(
                "   room-list feed entries {} ({:.2} per message sent), latency {}  max {:>8}",
                r.feed_entries,
                r.feed_entries as f64 / r.sent.max(1) as f64,
                self.feed.percentiles(),
                format_us(self.feed.max())
            );
        }
        if let Some(hops) = &self.hops {
            hops.print();
        }
        if let Some(http) = &self.http {
            println!(
                "   HTTP POST, {:.0}/s beside the load (answers once the projector stored it): {}  failed {}",
                http_probe::RATE,
                http.latencies.percentiles(),
                http.failed
            );
        }
        let cpu: Vec<String> = self
            .cpu
            .iter()
            .map(|(name, seconds)| format!("{name} {:.0}%", 100.0 * seconds / window))
            .collect();
        println!(
            "   CPU in the window, % of one core: {} (2 cores = 200%)",
            cpu.join(", ")
        );
        if let (Some(stack), Some(per_thousand)) =
            (self.stack_cpu(), self.stack_cpu_ms_per_thousand())
        {
            println!(
                "   whole stack (all but loadgen): {:.0}% of one core, {per_thousand:.0} ms of CPU per 1,000 deliveries",
                stack * 100.0
            );
        }
        for (reason, count) in &r.errors {
            println!("   problem x{count}: {reason}");
        }
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A number read off a phase's results.
type Metric = fn(&PhaseResult) -> u64;

/// The edge next to the baseline.
fn compare(edge: &PhaseResult, raw: &PhaseResult) {
    println!();
    println!("== edge vs raw NATS");
    println!(
        "   {:<26}{:>14}{:>14}{:>12}",
        "", "edge", "raw NATS", "edge/raw"
    );
    let row = |label: &str, a: String, b: String, ratio: String| {
        println!("   {label:<26}{a:>14}{b:>14}{ratio:>12}");
    };
    row(
        "connections held",
        edge.report.held.to_string(),
        raw.report.held.to_string(),
        String::new(),
    );
    let (d_edge, d_raw) = (edge.delivered_per_second(), raw.delivered_per_second());
    row(
        "delivered msgs/s",
        format!("{d_edge:.1}"),
        format!("{d_raw:.1}"),
        format_ratio(d_edge, d_raw),
    );
    let rows: [(&str, Metric); 6] = [
        ("latency p50", |p| p.latencies.quantile(0.5)),
        ("latency p99", |p| p.latencies.quantile(0.99)),
        ("latency p99.9", |p| p.latencies.quantile(0.999)),
        ("latency max", |p| p.latencies.max()),
        ("  to the others p50", |p| p.others.quantile(0.5)),
        ("  to the others p99", |p| p.others.quantile(0.99)),
    ];
    for (label, value) in rows {
        let (a, b) = (value(edge), value(raw));
        row(
            label,
            format_us(a),
            format_us(b),
            format_ratio(a as f64, b as f64),
        );
    }
    if let (Some(a), Some(b)) = (edge.rss_per_connection(), raw.rss_per_connection()) {
        row(
            "server KiB per connection",
            format!("{a:.1}"),
            format!("{b:.1}"),
            format_ratio(a, b),
        );
    }
    if let (Some(a), Some(b)) = (edge.server_cpu(), raw.server_cpu()) {
        row(
            "server CPU, % of a core",
            format!("{:.0}%", a * 100.0),
            format!("{:.0}%", b * 100.0),
            format_ratio(a, b),
        );
    }
    if let (Some(a), Some(b)) = (edge.stack_cpu(), raw.stack_cpu()) {
        row(
            "stack CPU, % of a core",
            format!("{:.0}%", a * 100.0),
            format!("{:.0}%", b * 100.0),
            format_ratio(a, b),
        );
    }
    if let (Some(a), Some(b)) = (
        edge.stack_cpu_ms_per_thousand(),
        raw.stack_cpu_ms_per_thousand(),
    ) {
        row(
            "CPU ms / 1,000 deliveries",
            format!("{a:.0}"),
            format!("{b:.0}"),
            format_ratio(a, b),
        );
    }
    println!("   (server: the edge process vs the nats-server process; stack: every watched");
    println!("   process of the pipeline vs the nats-server process alone)");
}
