//! `notifier`: sends FCM pushes for the chat log until SIGTERM.

use anyhow::Context;
use chat_platform::{shutdown, telemetry};
use notifier::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load().context("loading notifier settings")?;
    telemetry::init(&settings.log);
    chat_platform::metrics::install("notifier").context("installing the metrics recorder")?;
    notifier::run(settings, shutdown::signal()).await?;
    Ok(())
}
