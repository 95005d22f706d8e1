//! `edge`: serve the chat API, or `edge mint-token USER [TTL_SECONDS]` to print a development
//! token signed with the configured HS256 secret.

use std::time::Duration;

use anyhow::{bail, Context};
use chat_platform::{shutdown, telemetry};
use chat_schemas::UserId;
use edge::{auth, AppState, Settings};

/// How long shutdown waits for WebSocket connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load().context("loading edge settings")?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["serve"] => serve(settings).await,
        ["mint-token", user, rest @ ..] => {
            let ttl = match rest {
                [] => 24 * 3600,
                [ttl] => ttl.parse().context("TTL_SECONDS must be a number")?,
                _ => bail!("usage: edge mint-token USER [TTL_SECONDS]"),
            };
            let user = UserId::parse(user).context("invalid user id")?;
            println!(
                "{}",
                auth::mint(&settings.jwt_secret, &user, Duration::from_secs(ttl))?
            );
            Ok(())
        }
        _ => bail!("usage: edge [serve] | edge mint-token USER [TTL_SECONDS]"),
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    telemetry::init(&settings.log);
    let state = AppState::connect(&settings).await?;
    let listener = tokio::net::TcpListener::bind(&settings.edge.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.edge.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "edge listening");
    let stopping = state.shutdown.clone();
    axum::serve(listener, state.router())
        .with_graceful_shutdown(async move {
            shutdown::signal().await;
            stopping.cancel();
        })
        .await
        .context("serving HTTP")?;
    state.connections.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, state.connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period");
    }
    tracing::info!("edge stopped");
    Ok(())
}
