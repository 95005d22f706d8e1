//! Command-line options of `bench chaos`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use super::faults::Fault;

/// Usage text (the values in brackets are the defaults).
pub const USAGE: &str = "\
usage: bench chaos [options]       (scripts/chaos starts the cluster and runs this)
  --endpoints FILE     the cluster's endpoints          [.local/cluster/endpoints.env]
  --cluster FILE       the script that kills and starts nodes  [scripts/cluster]
  --doc FILE           where the results table goes, between the chaos markers
                       (nothing is written without it)
  --users N            simulated app users, one STOMP connection each  [30]
  --rooms N            GROUP rooms; each user is in two of them        [10]
  --interval-ms N      each user sends a CHAT this often               [200]
  --down S             seconds a killed node stays down                [15]
  --freeze S           seconds a frozen node stays stopped             [20]
  --warmup S           seconds of load before the first fault          [10]
  --faults LIST        comma-separated, in this order by default:
                       nats-kill,cassandra-kill,redis-master-kill,edge-kill,projector-kill,
                       receipts-kill,notifier-kill,nats-freeze,cassandra-freeze,
                       receipts-freeze";

/// Options of one chaos run.
#[derive(Debug, Clone)]
pub struct Options {
    /// `KEY=VALUE` lines written by `scripts/cluster up`.
    pub endpoints: PathBuf,
    /// `scripts/cluster`, run as `kill NAME SIGNAL` and `start NAME`.
    pub cluster: PathBuf,
    /// The markdown file to put the results table in.
    pub doc: Option<PathBuf>,
    /// Simulated users.
    pub users: usize,
    /// GROUP rooms.
    pub rooms: usize,
    /// Time between two CHATs of one user.
    pub interval: Duration,
    /// How long a killed node stays down.
    pub down: Duration,
    /// How long a frozen node stays stopped.
    pub freeze: Duration,
    /// Load before the first fault.
    pub warmup: Duration,
    /// The faults, in order.
    pub faults: Vec<Fault>,
}

impl Options {
    /// Parses the arguments after `chaos`.
    pub fn parse(args: &[String]) -> anyhow::Result<Self> {
        let mut options = Self {
            endpoints: PathBuf::from(".local/cluster/endpoints.env"),
            cluster: PathBuf::from("scripts/cluster"),
            doc: None,
            users: 30,
            rooms: 10,
            interval: Duration::from_millis(200),
            down: Duration::from_secs(15),
            freeze: Duration::from_secs(20),
            warmup: Duration::from_secs(10),
            faults: Fault::ALL.to_vec(),
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))?;
            match flag.as_str() {
                "--endpoints" => options.endpoints = PathBuf::from(value),
                "--cluster" => options.cluster = PathBuf::from(value),
                "--doc" => options.doc = Some(PathBuf::from(value)),
                "--users" => options.users = number(flag, value)?,
                "--rooms" => options.rooms = number(flag, value)?,
                "--interval-ms" => options.interval = Duration::from_millis(number(flag, value)?),
                "--down" => options.down = Duration::from_secs(number(flag, value)?),
                "--freeze" => options.freeze = Duration::from_secs(number(flag, value)?),
                "--warmup" => options.warmup = Duration::from_secs(number(flag, value)?),
                "--faults" => {
                    options.faults = value
                        .split(',')
                        .map(Fault::from_str)
                        .collect::<anyhow::Result<_>>()?;
                }
                _ => bail!("unknown option {flag}\n{USAGE}"),
            }
        }
        if options.rooms == 0 || options.users < 2 * options.rooms {
            bail!("--users must be at least twice --rooms (each room needs two senders)");
        }
        if options.users % options.rooms != 0 {
            bail!("--users must be a multiple of --rooms");
        }
        Ok(options)
    }
}

/// `value` of `flag` as a number.
fn number<T: FromStr>(flag: &str, value: &str) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    value
        .parse()
        .with_context(|| format!("{flag} {value}: not a number"))
}

/// The cluster's endpoints file: `KEY=VALUE` lines, `#` comments.
pub fn read_endpoints(path: &std::path::Path) -> anyhow::Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {} (run scripts/cluster up)", path.display()))?;
    Ok(text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect())
}
