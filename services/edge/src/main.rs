//! The edge: the HTTP API (and, later, STOMP over WebSocket) that clients talk to.
//!
//! An edge keeps no state another edge needs: writes become events in the JetStream log, reads
//! come from the Cassandra projections, so any number of edges run side by side.

mod settings;

use anyhow::Context;
use axum::routing::get;
use axum::Router;
use chat_platform::{connect, shutdown, telemetry};

use crate::settings::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load().context("loading edge settings")?;
    telemetry::init(&settings.log);

    let (_nats, jetstream) = connect::nats(&settings.nats).await?;
    connect::event_stream(&jetstream, &settings.nats.event_log()).await?;
    let _cassandra = connect::cassandra(&settings.cassandra).await?;

    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ready" }));
    let listener = tokio::net::TcpListener::bind(&settings.edge.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.edge.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "edge listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown::signal())
        .await
        .context("serving HTTP")?;
    Ok(())
}
