//! `chat-tail`: prints the chat log as JSON lines, one per event with its sequence — the example
//! to start from when writing an analytics consumer of the log.
//!
//! ```text
//! chat-tail [--room ROOM_ID] [--since-seq N | --since-time RFC3339] [--limit N]
//! ```
//!
//! Without `--since-*` it prints only events appended from now on. It reads with an ordered
//! ephemeral consumer: nothing is acked and nothing is left behind on the server.

use std::io::Write;

use anyhow::Context;
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use chat_platform::settings::{self, LogSettings, NatsSettings};
use chat_platform::{connect, shutdown, telemetry};
use chat_schemas::{ChatEvent, Envelope, RoomId};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const USAGE: &str =
    "usage: chat-tail [--room ROOM_ID] [--since-seq N | --since-time RFC3339] [--limit N]";

/// The settings chat-tail reads: only where the log is.
#[derive(Deserialize)]
struct TailSettings {
    log: LogSettings,
    nats: NatsSettings,
}

/// What the command line asks for.
#[derive(Debug, Default, PartialEq)]
struct Options {
    room: Option<RoomId>,
    since: Since,
    limit: Option<u64>,
}

/// Where in the log to start.
#[derive(Debug, Default, PartialEq)]
enum Since {
    #[default]
    Now,
    Seq(u64),
    Time(OffsetDateTime),
}

/// One output line: the sequence (also the message id) and the envelope's fields.
#[derive(Serialize)]
struct Line<'a> {
    seq: u64,
    #[serde(flatten)]
    envelope: &'a Envelope,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value"))
                .map(String::as_str)
        };
        match flag.as_str() {
            "--room" => {
                let room = value()?;
                options.room = Some(room.parse().map_err(|e| format!("--room {room}: {e}"))?);
            }
            "--since-seq" | "--since-time" if options.since != Since::Now => {
                return Err("give at most one of --since-seq and --since-time".into());
            }
            "--since-seq" => {
                let seq = value()?;
                let seq: u64 = seq
                    .parse()
                    .map_err(|_| format!("--since-seq {seq}: not a number"))?;
                options.since = Since::Seq(seq.max(1));
            }
            "--since-time" => {
                let at = value()?;
                let at = OffsetDateTime::parse(at, &Rfc3339)
                    .map_err(|e| format!("--since-time {at}: {e}"))?;
                options.since = Since::Time(at);
            }
            "--limit" => {
                let limit = value()?;
                options.limit = Some(
                    limit
                        .parse()
                        .map_err(|_| format!("--limit {limit}: not a number"))?,
                );
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let options = match parse(&args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let settings: TailSettings = settings::load("").context("loading settings")?;
    telemetry::init(&settings.log);
    tokio::select! {
        result = tail(&settings.nats, &options) => result,
        () = shutdown::signal() => Ok(()),
    }
}

async fn tail(nats: &NatsSettings, options: &Options) -> anyhow::Result<()> {
    let log = nats.event_log();
    let (_client, jetstream) = connect::nats(nats).await?;
    let stream = jetstream
        .get_stream(log.stream_name())
        .await
        .with_context(|| format!("opening stream {}", log.stream_name()))?;
    let filter_subject = match &options.room {
        Some(room) => log.room_subject(room),
        None => log.all_rooms(),
    };
    let deliver_policy = match options.since {
        Since::Now => DeliverPolicy::New,
        Since::Seq(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
        Since::Time(start_time) => DeliverPolicy::ByStartTime { start_time },
    };
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject,
            deliver_policy,
            ..Default::default()
        })
        .await
        .context("creating the consumer")?;
    let mut messages = consumer.messages().await.context("reading the log")?;
    let mut stdout = std::io::stdout().lock();
    let mut printed = 0_u64;
    while options.limit.is_none_or(|limit| printed < limit) {
        let Some(message) = messages.next().await else {
            break;
        };
        let message = message.context("reading the log")?;
        let seq = message
            .info()
            .map_err(anyhow::Error::from_boxed)?
            .stream_sequence;
        let envelope = match chat_schemas::decode(&message.payload) {
            Ok(envelope) if envelope.event != ChatEvent::Unknown => envelope,
            Ok(_) => {
                tracing::warn!(seq, "event of an unknown type skipped");
                continue;
            }
            Err(error) => {
                tracing::warn!(seq, %error, "undecodable event skipped");
                continue;
            }
        };
        let line = serde_json::to_string(&Line {
            seq,
            envelope: &envelope,
        })?;
        let written = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
        match written {
            Ok(()) => printed += 1,
            // The reader went away (`chat-tail | head`): that is the end, not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(e).context("writing to stdout"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_parse() {
        assert_eq!(parse(&args("")), Ok(Options::default()));
        let room = RoomId::random();
        let parsed = parse(&args(&format!("--room {room} --since-seq 42 --limit 3")));
        assert_eq!(
            parsed,
            Ok(Options {
                room: Some(room),
                since: Since::Seq(42),
                limit: Some(3),
            })
        );
        let parsed = parse(&args("--since-time 2024-05-01T12:00:00Z")).map(|o| o.since);
        assert!(matches!(parsed, Ok(Since::Time(t)) if t.unix_timestamp() == 1_714_564_800));
        assert!(parse(&args("--since-seq 1 --since-time 2024-05-01T12:00:00Z")).is_err());
        assert!(parse(&args("--room nope")).is_err());
        assert!(parse(&args("--limit")).is_err());
        assert!(parse(&args("--verbose")).is_err());
    }
}
