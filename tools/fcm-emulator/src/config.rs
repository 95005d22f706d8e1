//! Emulator configuration: the address, the project and the service account it trusts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use jsonwebtoken::DecodingKey;
use serde::Deserialize;

use crate::state::DEFAULT_MAX_DELIVERIES;

/// The default listen address (loopback, so the unauthenticated admin API stays local).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9099";
/// The default service-account key file, relative to the repository root.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "infra/fcm-emulator/service-account.json";
/// The default public key file (of the service account's key), relative to the repository root.
pub const DEFAULT_PUBLIC_KEY: &str = "infra/fcm-emulator/public-key.pem";

/// Why a configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The service-account file is not a service-account key JSON.
    #[error("{path} is not a service-account key file: {source}")]
    ServiceAccount {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A required service-account field is empty.
    #[error("the service account has an empty {0}")]
    EmptyField(&'static str),
    /// The emulator would keep no delivery to show.
    #[error("max_deliveries must be at least 1")]
    NoDeliveriesKept,
    /// The public key is not an RSA public key in PEM form.
    #[error("the public key is not an RSA PEM public key: {0}")]
    PublicKey(jsonwebtoken::errors::Error),
}

/// What the emulator needs to know: where to listen, which project it serves, and which service
/// account (email and public key) may obtain access tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorConfig {
    /// The address the binary binds (a listener handed to [`crate::serve`] is used as is).
    pub listen: SocketAddr,
    /// The only project id accepted in `/v1/projects/{projectId}/messages:send`.
    pub project_id: String,
    /// The only `iss` accepted in token assertions.
    pub client_email: String,
    /// The PEM public key that verifies the RS256 assertions.
    pub public_key_pem: String,
    /// The `aud` every assertion must carry; `None`: `http://{bound address}/token`.
    pub token_url: Option<String>,
    /// How many deliveries are kept for `GET /admin/deliveries` (the oldest go first).
    pub max_deliveries: usize,
}

/// The fields of a Google service-account key file the emulator uses.
#[derive(Debug, Deserialize)]
struct ServiceAccountFile {
    project_id: String,
    client_email: String,
}

impl EmulatorConfig {
    /// Builds a configuration from a service-account key file (for `project_id` and
    /// `client_email`) and the PEM file of its public key. `token_url` stays `None`,
    /// `max_deliveries` is [`DEFAULT_MAX_DELIVERIES`].
    pub fn from_files(
        listen: SocketAddr,
        service_account: impl AsRef<Path>,
        public_key: impl AsRef<Path>,
    ) -> Result<Self, ConfigError> {
        let service_account = service_account.as_ref();
        let public_key = public_key.as_ref();
        let text = read(service_account)?;
        let account: ServiceAccountFile =
            serde_json::from_str(&text).map_err(|source| ConfigError::ServiceAccount {
                path: service_account.to_path_buf(),
                source,
            })?;
        let config = Self {
            listen,
            project_id: account.project_id,
            client_email: account.client_email,
            public_key_pem: read(public_key)?,
            token_url: None,
            max_deliveries: DEFAULT_MAX_DELIVERIES,
        };
        config.check()?;
        Ok(config)
    }

    /// Sets the `aud` that assertions must carry.
    pub fn with_token_url(mut self, token_url: impl Into<String>) -> Self {
        self.token_url = Some(token_url.into());
        self
    }

    /// Keeps the last `max_deliveries` deliveries instead of [`DEFAULT_MAX_DELIVERIES`].
    pub fn with_max_deliveries(mut self, max_deliveries: usize) -> Self {
        self.max_deliveries = max_deliveries;
        self
    }

    /// The `aud` assertions must carry when the emulator is bound to `bound`.
    pub fn effective_token_url(&self, bound: SocketAddr) -> String {
        self.token_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}/token"))
    }

    /// Checks the fields and parses the public key.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.decoding_key().map(|_| ())
    }

    /// The key that verifies assertions.
    pub(crate) fn decoding_key(&self) -> Result<DecodingKey, ConfigError> {
        if self.project_id.is_empty() {
            return Err(ConfigError::EmptyField("project_id"));
        }
        if self.client_email.is_empty() {
            return Err(ConfigError::EmptyField("client_email"));
        }
        if self.max_deliveries == 0 {
            return Err(ConfigError::NoDeliveriesKept);
        }
        DecodingKey::from_rsa_pem(self.public_key_pem.as_bytes()).map_err(ConfigError::PublicKey)
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infra(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../infra/fcm-emulator")
            .join(name)
    }

    #[test]
    fn reads_the_repository_defaults() -> Result<(), ConfigError> {
        let listen: SocketAddr = ([127, 0, 0, 1], 9099).into();
        let config = EmulatorConfig::from_files(
            listen,
            infra("service-account.json"),
            infra("public-key.pem"),
        )?;
        assert_eq!(config.project_id, "didihouse-local");
        assert!(config.client_email.ends_with(".iam.gserviceaccount.com"));
        assert_eq!(
            config.effective_token_url(listen),
            "http://127.0.0.1:9099/token"
        );
        Ok(())
    }

    #[test]
    fn rejects_a_bad_public_key() {
        let listen: SocketAddr = ([127, 0, 0, 1], 9099).into();
        let result = EmulatorConfig::from_files(
            listen,
            infra("service-account.json"),
            infra("service-account.json"),
        );
        assert!(matches!(result, Err(ConfigError::PublicKey(_))));
    }
}
