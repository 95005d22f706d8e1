//! `projector`: runs the projector (the default), or replays the whole log into a new keyspace.
//!
//! ```text
//! projector [run]
//! projector replay --keyspace NAME
//! ```

use anyhow::Context;
use chat_platform::{shutdown, telemetry};
use projector::Settings;

const USAGE: &str = "usage: projector [run]\n       projector replay --keyspace NAME";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Run,
    Replay { keyspace: String },
    Help,
}

fn parse(args: &[String]) -> Result<Command, String> {
    match args {
        [] => Ok(Command::Run),
        [run] if run == "run" => Ok(Command::Run),
        [help] if help == "-h" || help == "--help" => Ok(Command::Help),
        [replay, flag, keyspace] if replay == "replay" && flag == "--keyspace" => {
            Ok(Command::Replay {
                keyspace: keyspace.clone(),
            })
        }
        _ => Err(format!("unexpected arguments: {}", args.join(" "))),
    }
}

/// One thread: the worker's loop, its database clients and its health server only wait on
/// I/O, and on one thread they hand work to each other without waking another thread
/// (docs/benchmarks.md, "One thread per worker").
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse(&args) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            return Ok(());
        }
        Ok(command) => command,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let settings = Settings::load().context("loading projector settings")?;
    telemetry::init(&settings.log);
    chat_platform::metrics::install("projector").context("installing the metrics recorder")?;
    match command {
        Command::Run => projector::run(settings, shutdown::signal()).await?,
        Command::Replay { keyspace } => {
            let report = projector::replay(&settings, &keyspace, shutdown::signal())
                .await
                .with_context(|| format!("replaying into keyspace {keyspace}"))?;
            println!(
                "replayed {} events (up to sequence {}) into keyspace {keyspace} \
                 in {:.2} s: {:.0} events/s",
                report.events,
                report.last_seq,
                report.elapsed.as_secs_f64(),
                report.events_per_second()
            );
        }
        Command::Help => {}
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
    fn commands_parse() {
        assert_eq!(parse(&args("")), Ok(Command::Run));
        assert_eq!(parse(&args("run")), Ok(Command::Run));
        assert_eq!(parse(&args("--help")), Ok(Command::Help));
        assert_eq!(
            parse(&args("replay --keyspace chat_rebuilt")),
            Ok(Command::Replay {
                keyspace: "chat_rebuilt".into()
            })
        );
        assert!(parse(&args("replay")).is_err());
        assert!(parse(&args("replay --keyspace")).is_err());
        assert!(parse(&args("serve")).is_err());
    }
}
