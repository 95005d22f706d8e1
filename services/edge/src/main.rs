//! `edge`: serve the chat API, or `edge mint-token USER [TTL_SECONDS]` to print a development
//! token signed with the configured HS256 secret.

use std::time::Duration;

use anyhow::{bail, Context};
use chat_platform::{shutdown, telemetry};
use chat_schemas::UserId;
use edge::{auth, AppState, Settings};

/// How long shutdown waits for WebSocket connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// How long shutdown waits for the last OUT events to be stored.
const PRESENCE_GRACE: Duration = Duration::from_secs(1);

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
    chat_platform::metrics::install("edge").context("installing the metrics recorder")?;
    let state = AppState::connect(&settings).await?;
    edge::web::announce(&settings.edge);
    let listener = listen(&settings.edge.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.edge.listen))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        edge = state.presence.edge_id(),
        "edge listening"
    );
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
    state.presence.finish(PRESENCE_GRACE).await;
    tracing::info!("edge stopped");
    Ok(())
}

/// Binds with a deep accept queue: std's default of 128 drops SYNs when thousands of clients
/// reconnect at once after an edge restart.
async fn listen(address: &str) -> std::io::Result<tokio::net::TcpListener> {
    const BACKLOG: u32 = 4096;
    let mut last_error = None;
    for addr in tokio::net::lookup_host(address).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "address resolves to nothing",
        )
    }))
}
