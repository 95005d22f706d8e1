//! `notifier`: sends FCM pushes for the chat log until SIGTERM.

use anyhow::Context;
use chat_platform::{shutdown, telemetry};
use notifier::Settings;

/// One thread: the worker's loop, its database clients and its health server only wait on
/// I/O, and on one thread they hand work to each other without waking another thread
/// (docs/benchmarks.md, "One thread per worker").
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load().context("loading notifier settings")?;
    telemetry::init(&settings.log);
    chat_platform::metrics::install("notifier").context("installing the metrics recorder")?;
    notifier::run(settings, shutdown::signal()).await?;
    Ok(())
}
