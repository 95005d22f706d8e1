//! The notifier worker: sends FCM pushes to members who are not in the room.
//!
//! This build only starts up: it loads its settings, connects to NATS and Redis (exiting with a
//! clear message when either is unreachable) and runs until SIGTERM. Its event handling lands
//! with the push issue (see the open issues and README's status section).

use anyhow::Context;
use chat_platform::settings::{self, LogSettings, NatsSettings, RedisSettings};
use chat_platform::{connect, shutdown, telemetry};
use serde::Deserialize;

/// Everything the notifier worker reads from configuration.
#[derive(Debug, Deserialize)]
struct Settings {
    log: LogSettings,
    nats: NatsSettings,
    redis: RedisSettings,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: Settings = settings::load("").context("loading notifier settings")?;
    telemetry::init(&settings.log);
    let (_nats, jetstream) = connect::nats(&settings.nats).await?;
    connect::event_stream(&jetstream, &settings.nats.event_log()).await?;
    let _redis = connect::redis(&settings.redis).await?;
    tracing::info!("notifier running (connected to NATS and Redis)");
    shutdown::signal().await;
    tracing::info!("notifier stopped");
    Ok(())
}
