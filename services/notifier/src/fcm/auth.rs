//! OAuth2 access tokens for FCM from a service account key, through `gcp_auth` (which signs the
//! JWT assertion and caches the token until it expires). A refused token is replaced by a new
//! provider with an empty cache, which fetches a fresh one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use gcp_auth::{CustomServiceAccount, TokenProvider};

/// The scope FCM's `messages:send` needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// The service account could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The key file is missing or not a service account key.
    #[error("cannot use the FCM service account key {path}: {source}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: gcp_auth::Error,
    },
    /// The key has no project id.
    #[error("the FCM service account key {0} has no project_id")]
    NoProject(PathBuf),
    /// The token endpoint refused or could not be reached.
    #[error("cannot get an FCM access token: {0}")]
    Token(gcp_auth::Error),
}

/// Access tokens for one service account.
pub struct Credentials {
    path: PathBuf,
    provider: RwLock<Arc<CustomServiceAccount>>,
    project_id: String,
}

impl Credentials {
    /// Loads the key at `path`; the project id comes from the key.
    pub fn from_file(path: &Path) -> Result<Self, AuthError> {
        let provider = load(path)?;
        let project_id = provider
            .project_id()
            .ok_or_else(|| AuthError::NoProject(path.to_owned()))?
            .to_owned();
        Ok(Self {
            path: path.to_owned(),
            provider: RwLock::new(Arc::new(provider)),
            project_id,
        })
    }

    /// The key's project id, which names the FCM endpoint.
    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    /// A valid access token (cached until it expires).
    pub async fn token(&self) -> Result<String, AuthError> {
        let provider = self
            .provider
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let token = provider.token(&[SCOPE]).await.map_err(AuthError::Token)?;
        Ok(token.as_str().to_owned())
    }

    /// Forgets the cached token, so the next [`Credentials::token`] asks for a new one.
    pub fn refresh(&self) -> Result<(), AuthError> {
        let fresh = Arc::new(load(&self.path)?);
        *self
            .provider
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(())
    }
}

fn load(path: &Path) -> Result<CustomServiceAccount, AuthError> {
    CustomServiceAccount::from_file(path).map_err(|source| AuthError::Key {
        path: path.to_owned(),
        source,
    })
}
