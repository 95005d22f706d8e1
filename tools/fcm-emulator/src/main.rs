//! The `fcm-emulator` binary: runs the FCM HTTP v1 emulator until SIGTERM or ctrl-c.
//!
//! ```text
//! fcm-emulator [--listen 127.0.0.1:9099]
//!              [--service-account infra/fcm-emulator/service-account.json]
//!              [--public-key infra/fcm-emulator/public-key.pem]
//!              [--token-url URL] [--max-deliveries N]
//! ```
//! Paths are relative to the current directory. Logs go to stderr (`RUST_LOG` filters, default
//! `info`).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use fcm_emulator::config::{DEFAULT_LISTEN, DEFAULT_PUBLIC_KEY, DEFAULT_SERVICE_ACCOUNT};
use fcm_emulator::state::DEFAULT_MAX_DELIVERIES;
use fcm_emulator::{serve_with_shutdown, EmulatorConfig};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

const USAGE: &str = "\
usage: fcm-emulator [--listen ADDR] [--service-account FILE] [--public-key FILE] [--token-url URL]
                    [--max-deliveries N]

  --listen ADDR            address to listen on (default 127.0.0.1:9099)
  --service-account FILE   service-account key JSON: project_id, client_email
                           (default infra/fcm-emulator/service-account.json)
  --public-key FILE        PEM public key of that service account
                           (default infra/fcm-emulator/public-key.pem)
  --token-url URL          the aud token assertions must carry (default http://ADDR/token)
  --max-deliveries N       deliveries kept for GET /admin/deliveries, oldest dropped first
                           (default 100000)";

/// Parsed command line.
#[derive(Debug)]
struct Options {
    listen: SocketAddr,
    service_account: PathBuf,
    public_key: PathBuf,
    token_url: Option<String>,
    max_deliveries: usize,
}

/// Parses the arguments (without the program name); `Ok(None)` asks for the usage text.
fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let mut listen = DEFAULT_LISTEN.to_owned();
    let mut service_account = PathBuf::from(DEFAULT_SERVICE_ACCOUNT);
    let mut public_key = PathBuf::from(DEFAULT_PUBLIC_KEY);
    let mut token_url = None;
    let mut max_deliveries = DEFAULT_MAX_DELIVERIES;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        if matches!(flag, "-h" | "--help") {
            return Ok(None);
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| iter.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "--listen" => listen = value()?,
            "--service-account" => service_account = value()?.into(),
            "--public-key" => public_key = value()?.into(),
            "--token-url" => token_url = Some(value()?),
            "--max-deliveries" => {
                let text = value()?;
                max_deliveries = text
                    .parse()
                    .map_err(|e| format!("--max-deliveries {text}: {e}"))?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let listen = listen
        .parse()
        .map_err(|e| format!("--listen {listen}: {e}"))?;
    Ok(Some(Options {
        listen,
        service_account,
        public_key,
        token_url,
        max_deliveries,
    }))
}

/// Registers the ctrl-c and SIGTERM handlers now (so a signal that arrives once "listening" is
/// printed is always handled) and returns a future that completes on either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (mut interrupt, mut terminate) = signals;
            let interrupt = async {
                match interrupt.as_mut() {
                    Some(stream) => {
                        stream.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let terminate = async {
                match terminate.as_mut() {
                    Some(stream) => {
                        stream.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = interrupt => {}
                () = terminate => {}
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        tracing::info!("shutting down");
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse(&args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("fcm-emulator: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = match EmulatorConfig::from_files(
        options.listen,
        &options.service_account,
        &options.public_key,
    ) {
        Ok(config) => {
            let config = config.with_max_deliveries(options.max_deliveries);
            match options.token_url {
                Some(url) => config.with_token_url(url),
                None => config,
            }
        }
        Err(error) => {
            eprintln!("fcm-emulator: {error}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(options.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("fcm-emulator: cannot listen on {}: {error}", options.listen);
            return ExitCode::FAILURE;
        }
    };
    let shutdown = shutdown_signal();
    let addr = listener.local_addr().unwrap_or(options.listen);
    println!("fcm-emulator listening on {addr}");
    tracing::info!(%addr, "fcm-emulator listening");
    match serve_with_shutdown(listener, config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fcm-emulator: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn defaults_and_flags() -> Result<(), String> {
        let defaults = parse(&[])?.ok_or("usage")?;
        assert_eq!(defaults.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(
            defaults.service_account,
            PathBuf::from(DEFAULT_SERVICE_ACCOUNT)
        );
        let set = parse(&args(&[
            "--listen=127.0.0.1:0",
            "--token-url",
            "http://x/token",
            "--max-deliveries=500000",
        ]))?
        .ok_or("usage")?;
        assert_eq!(defaults.max_deliveries, DEFAULT_MAX_DELIVERIES);
        assert_eq!(set.max_deliveries, 500_000);
        assert!(parse(&args(&["--max-deliveries", "many"])).is_err());
        assert_eq!(set.listen.port(), 0);
        assert_eq!(set.token_url.as_deref(), Some("http://x/token"));
        assert!(parse(&args(&["--bogus"])).is_err());
        assert!(parse(&args(&["--listen"])).is_err());
        assert!(parse(&args(&["--help"]))?.is_none());
        Ok(())
    }
}
