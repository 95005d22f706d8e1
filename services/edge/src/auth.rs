//! Access tokens: JWTs whose `sub` is the user id and whose `exp` is required and enforced.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_schemas::UserId;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::settings::Settings;

/// The claims the edge reads.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` credentials at all.
    #[error("missing bearer token")]
    Missing,
    /// The token's `exp` has passed.
    #[error("token expired")]
    Expired,
    /// Bad signature, shape, algorithm, or claims.
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// The token keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The RS256 public key file could not be read.
    #[error("cannot read JWT public key file {path}: {source}")]
    Read {
        /// The configured path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not an RSA public key in PEM form.
    #[error("JWT public key file {path} is not an RSA PEM key: {source}")]
    Parse {
        /// The configured path.
        path: String,
        /// What the parser said.
        source: jsonwebtoken::errors::Error,
    },
    /// The development login mints HS256 tokens, which an RS256 edge would refuse.
    #[error("edge.dev_login needs HS256 tokens, but CHAT_JWT_PUBLIC_KEY_FILE selects RS256")]
    DevLoginNeedsHs256,
}

/// Verifies access tokens with the configured key.
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
    /// The HS256 secret, kept only when the development login may mint tokens with it.
    dev_secret: Option<String>,
}

impl Authenticator {
    /// RS256 with the public key file when one is configured, else HS256 with the secret.
    pub fn from_settings(settings: &Settings) -> Result<Self, KeyError> {
        let rs256 = matches!(&settings.jwt_public_key_file, Some(path) if !path.is_empty());
        if rs256 && settings.edge.dev_login {
            return Err(KeyError::DevLoginNeedsHs256);
        }
        let dev_secret = settings.edge.dev_login.then(|| settings.jwt_secret.clone());
        let (key, algorithm) = match &settings.jwt_public_key_file {
            Some(path) if !path.is_empty() => {
                let pem = std::fs::read(path).map_err(|source| KeyError::Read {
                    path: path.clone(),
                    source,
                })?;
                let key = DecodingKey::from_rsa_pem(&pem).map_err(|source| KeyError::Parse {
                    path: path.clone(),
                    source,
                })?;
                (key, Algorithm::RS256)
            }
            _ => (
                DecodingKey::from_secret(settings.jwt_secret.as_bytes()),
                Algorithm::HS256,
            ),
        };
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 0;
        validation.validate_aud = false;
        Ok(Self {
            key,
            validation,
            dev_secret,
        })
    }

    /// A token for `user` from the development login, or `None` when it is turned off.
    pub fn mint_dev(
        &self,
        user: &UserId,
        ttl: Duration,
    ) -> Option<Result<String, jsonwebtoken::errors::Error>> {
        self.dev_secret
            .as_deref()
            .map(|secret| mint(secret, user, ttl))
    }

    /// The user a token was issued to.
    pub fn verify(&self, token: &str) -> Result<UserId, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token.as_bytes(), &self.key, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid(e.to_string()),
            })?;
        UserId::parse(&data.claims.sub).map_err(|e| AuthError::Invalid(e.to_string()))
    }

    /// The user named by an `Authorization` header value (`Bearer <token>`).
    pub fn verify_header(&self, header: Option<&str>) -> Result<UserId, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| AuthError::Invalid("expected `Bearer <token>`".into()))?;
        self.verify(token.trim())
    }
}

/// An HS256 token for `user`, valid for `ttl`: what `edge mint-token` prints for development.
pub fn mint(
    secret: &str,
    user: &UserId,
    ttl: Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let claims = Claims {
        sub: user.to_string(),
        exp: (now + ttl).as_secs(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
}
