//! `receipts`: runs the receipts worker (the default), or rebuilds the read state from the log.
//!
//! ```text
//! receipts [run]
//! receipts rebuild
//! ```

use anyhow::Context;
use chat_platform::{shutdown, telemetry};
use receipts::Settings;

const USAGE: &str = "usage: receipts [run]\n       receipts rebuild";

/// One thread: the worker's loop, its database clients and its health server only wait on
/// I/O, and on one thread they hand work to each other without waking another thread
/// (docs/benchmarks.md, "One thread per worker").
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rebuild = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["run"] => false,
        ["rebuild"] => true,
        ["-h" | "--help"] => {
            println!("{USAGE}");
            return Ok(());
        }
        _ => {
            eprintln!("unexpected arguments: {}\n{USAGE}", args.join(" "));
            std::process::exit(2);
        }
    };
    let settings = Settings::load().context("loading receipts settings")?;
    telemetry::init(&settings.log);
    chat_platform::metrics::install("receipts").context("installing the metrics recorder")?;
    if rebuild {
        let report = receipts::rebuild(&settings)
            .await
            .context("rebuilding the read state")?;
        println!(
            "rebuilt the read state from {} events (up to sequence {}), {} old keys deleted, \
             in {:.2} s",
            report.events,
            report.last_seq,
            report.deleted_keys,
            report.elapsed.as_secs_f64()
        );
    } else {
        receipts::run(settings, shutdown::signal()).await?;
    }
    Ok(())
}
