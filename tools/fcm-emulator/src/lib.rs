//! `fcm-emulator`: a local, strict emulator of Firebase Cloud Messaging's HTTP v1 API.
//!
//! It serves, on one address:
//! - `POST /token`: Google's OAuth2 token endpoint for service accounts (JWT-bearer grant,
//!   RS256 assertions verified against the service account's public key), see [`oauth`];
//! - `POST /v1/projects/{projectId}/messages:send`: FCM's send endpoint, with FCM's validation and
//!   error bodies, see [`send`], [`validate`] and [`errors`];
//! - `/admin/...`: programs failures and shows what was delivered, see [`admin`];
//! - `GET /`: the last deliveries as plain text, for a developer with `curl`.
//!
//! Run it in-process with [`serve`] (or [`start`]) on a listener bound to `127.0.0.1:0`, or as the
//! `fcm-emulator` binary.

#![warn(missing_docs)]

pub mod admin;
pub mod config;
pub mod errors;
pub mod oauth;
pub mod send;
pub mod state;
pub mod validate;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::{ConfigError, EmulatorConfig};
pub use state::EmulatorState;

/// Why the emulator could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// Builds the emulator's router for a server bound to `bound` (which sets the default token URL,
/// `http://{bound}/token`, when `config.token_url` is `None`).
pub fn router(config: &EmulatorConfig, bound: SocketAddr) -> Result<Router, ConfigError> {
    let state = Arc::new(EmulatorState::new(
        config.project_id.clone(),
        config.client_email.clone(),
        config.effective_token_url(bound),
        config.decoding_key()?,
        config.max_deliveries,
    ));
    Ok(Router::new()
        .route("/", get(admin::home))
        .route("/token", post(oauth::token_endpoint))
        .route(
            "/v1/projects/{project_id}/messages:send",
            post(send::send_endpoint),
        )
        .nest("/admin", admin::routes())
        .with_state(state))
}

/// Serves the emulator on `listener` until the task is dropped or the server fails.
pub async fn serve(listener: TcpListener, config: EmulatorConfig) -> Result<(), ServeError> {
    serve_with_shutdown(listener, config, std::future::pending()).await
}

/// Serves the emulator on `listener` until `shutdown` completes, then finishes the requests in
/// flight and returns.
pub async fn serve_with_shutdown<F>(
    listener: TcpListener,
    config: EmulatorConfig,
    shutdown: F,
) -> Result<(), ServeError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let bound = listener.local_addr()?;
    let app = router(&config, bound)?;
    tracing::info!(
        %bound,
        project = %config.project_id,
        token_url = %config.effective_token_url(bound),
        "fcm-emulator serving"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// An emulator running on a background task, as returned by [`start`].
#[derive(Debug)]
pub struct RunningEmulator {
    /// The bound address.
    pub addr: SocketAddr,
    /// The server task; abort it to stop the emulator.
    pub handle: JoinHandle<Result<(), ServeError>>,
}

impl RunningEmulator {
    /// The base URL, `http://{addr}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Binds `config.listen` (port 0 picks a free port), then serves on a spawned task.
pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, ServeError> {
    config.check()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    let handle = tokio::spawn(serve(listener, config));
    Ok(RunningEmulator { addr, handle })
}
