//! Command-line options of `bench load`.

use std::str::FromStr;

use anyhow::{anyhow, bail, Context};

use super::schedule::Schedule;

/// Usage text (the values in brackets are the defaults).
pub const USAGE: &str = "\
usage: bench load --url http://127.0.0.1:PORT [options]
  --url URL               the edge's HTTP base URL (needed unless --mode raw)
  --nats-url URL          NATS for the raw baseline            [nats://127.0.0.1:4222]
  --mode both|edge|raw    what to measure                      [both]
  --connections N         simulated users, one connection each [19000]
  --room-size N           members per GROUP room               [10]
  --senders N             members of each room that send       [all]
  --rate R                messages sent per second, in total   [200]
  --duration S            measured seconds                     [30]
  --warmup S              seconds of sending before measuring  [5]
  --drain S               seconds to wait for late deliveries  [5]
  --payload N             characters of content per message    [100]
  --client-message-id B   whether SENDs carry a clientMessageId [true]
  --heart-beat-ms N       STOMP heart-beats asked and sent     [10000]
  --feeds B               edge connections also hold their feed    [false]
  --per-process N         most connections per worker process  [5000]
  --connect-concurrency N connections opened at once, per worker [64]
  --connect-timeout S     longest set-up of one connection     [30]
  --send-limit R          the edge's SEND limit per connection [20]
  --edge-pid PID          the edge, for its memory and CPU time
  --nats-pid PID          the NATS server, for the raw baseline's memory and CPU time
  --watch NAME=PID,...    more processes whose CPU time to report
  --hop-subject SUBJECT   room views to time each hop of a CHAT from (their
                          Chat-Hop-Times header; receipts' hop_timing on)
The token secret comes from CHAT_JWT_SECRET, as for the edge.";

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The edge, then the raw baseline.
    Both,
    /// Only the edge.
    Edge,
    /// Only plain NATS.
    Raw,
}

/// Options of one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The edge's HTTP base URL.
    pub url: String,
    /// NATS for the baseline.
    pub nats_url: String,
    /// What to measure.
    pub mode: Mode,
    /// Simulated users.
    pub connections: usize,
    /// Members per room.
    pub room_size: usize,
    /// Members of each room that send; `None`: all of them.
    pub senders: Option<usize>,
    /// Messages per second in total.
    pub rate: f64,
    /// Measured seconds.
    pub duration: f64,
    /// Seconds of sending before measuring.
    pub warmup: f64,
    /// Seconds to wait for late deliveries.
    pub drain: f64,
    /// Content characters per message.
    pub payload: usize,
    /// Whether messages carry a `clientMessageId`.
    pub client_message_id: bool,
    /// Heart-beat interval, 0 for none.
    pub heart_beat_ms: u64,
    /// Whether every edge connection also holds its user's room-list feed, as the apps do
    /// while the room list is on screen.
    pub feeds: bool,
    /// Most connections per worker process.
    pub per_process: usize,
    /// Connections opened at once per worker.
    pub connect_concurrency: usize,
    /// Longest set-up of one connection, seconds.
    pub connect_timeout: f64,
    /// The edge's per-connection SEND rate limit.
    pub send_limit: f64,
    /// The edge process.
    pub edge_pid: Option<u32>,
    /// The NATS server process.
    pub nats_pid: Option<u32>,
    /// More processes to report CPU time of.
    pub watch: Vec<(String, u32)>,
    /// Room views (on `nats_url`) whose `Chat-Hop-Times` time each hop of a CHAT.
    pub hop_subject: Option<String>,
    /// HS256 token secret.
    pub secret: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            url: String::new(),
            nats_url: "nats://127.0.0.1:4222".into(),
            mode: Mode::Both,
            connections: 19_000,
            room_size: 10,
            senders: None,
            rate: 200.0,
            duration: 30.0,
            warmup: 5.0,
            drain: 5.0,
            payload: 100,
            client_message_id: true,
            heart_beat_ms: 10_000,
            feeds: false,
            per_process: 5_000,
            connect_concurrency: 64,
            connect_timeout: 30.0,
            send_limit: 20.0,
            edge_pid: None,
            nats_pid: None,
            watch: Vec::new(),
            hop_subject: None,
            secret: std::env::var("CHAT_JWT_SECRET")
                .unwrap_or_else(|_| "dev-only-secret-change-me".into()),
        }
    }
}

impl Options {
    /// Parses `--name value` pairs and checks them.
    pub fn parse(args: &[String]) -> anyhow::Result<Self> {
        let mut o = Self::default();
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            if flag == "--help" || flag == "-h" {
                bail!("{USAGE}");
            }
            let value = args
                .next()
                .ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))?;
            match flag.as_str() {
                "--url" => o.url = value.trim_end_matches('/').to_owned(),
                "--nats-url" => o.nats_url = value.clone(),
                "--mode" => {
                    o.mode = match value.as_str() {
                        "both" => Mode::Both,
                        "edge" => Mode::Edge,
                        "raw" => Mode::Raw,
                        _ => bail!("--mode is both, edge or raw"),
                    }
                }
                "--connections" => o.connections = parsed(flag, value)?,
                "--room-size" => o.room_size = parsed(flag, value)?,
                "--senders" => o.senders = Some(parsed(flag, value)?),
                "--rate" => o.rate = parsed(flag, value)?,
                "--duration" => o.duration = parsed(flag, value)?,
                "--warmup" => o.warmup = parsed(flag, value)?,
                "--drain" => o.drain = parsed(flag, value)?,
                "--payload" => o.payload = parsed(flag, value)?,
                "--client-message-id" => o.client_message_id = parsed(flag, value)?,
                "--heart-beat-ms" => o.heart_beat_ms = parsed(flag, value)?,
                "--feeds" => o.feeds = parsed(flag, value)?,
                "--per-process" => o.per_process = parsed(flag, value)?,
                "--connect-concurrency" => o.connect_concurrency = parsed(flag, value)?,
                "--connect-timeout" => o.connect_timeout = parsed(flag, value)?,
                "--send-limit" => o.send_limit = parsed(flag, value)?,
                "--edge-pid" => o.edge_pid = Some(parsed(flag, value)?),
                "--nats-pid" => o.nats_pid = Some(parsed(flag, value)?),
                "--hop-subject" => o.hop_subject = Some(value.clone()),
                "--watch" => {
                    for pair in value.split(',').filter(|p| !p.is_empty()) {
                        let (name, pid) = pair
                            .split_once('=')
                            .ok_or_else(|| anyhow!("--watch wants NAME=PID, got {pair:?}"))?;
                        o.watch.push((name.to_owned(), parsed(flag, pid)?));
                    }
                }
                _ => bail!("unknown option {flag}\n{USAGE}"),
            }
        }
        o.check()?;
        Ok(o)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.mode != Mode::Raw && self.url.is_empty() {
            bail!("--url is needed to load the edge\n{USAGE}");
        }
        if self.room_size == 0 || self.connections < self.room_size {
            bail!("--connections must be at least --room-size, which must be at least 1");
        }
        if self.per_process < self.room_size {
            bail!("--per-process must hold at least one room");
        }
        if !(self.rate > 0.0 && self.duration > 0.0 && self.warmup >= 0.0 && self.drain >= 0.0) {
            bail!("--rate and --duration must be positive, --warmup and --drain not negative");
        }
        if !(1..=self.room_size).contains(&self.senders()) {
            bail!("--senders must be 1 to --room-size");
        }
        let schedule = Schedule::new(self.rate, self.rooms(), self.senders(), self.duration);
        let per_sender = schedule.per_sender_rate();
        if per_sender > self.send_limit {
            bail!(
                "each sender would send {per_sender:.1} messages/s, over the edge's limit \
                 of {} (raise it with CHAT_EDGE__SEND_RATE_PER_SECOND and --send-limit)",
                self.send_limit
            );
        }
        Ok(())
    }

    /// Members of each room that send.
    pub fn senders(&self) -> usize {
        self.senders.unwrap_or(self.room_size)
    }

    /// Rooms of the run; connections beyond whole rooms are left out.
    pub fn rooms(&self) -> usize {
        self.connections / self.room_size
    }
}

/// A flag's value parsed as `T` (numbers, `true`/`false`).
fn parsed<T: FromStr>(flag: &str, value: &str) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    value
        .parse()
        .with_context(|| format!("{flag}: {value:?} is not a valid value"))
}
