//! Google's OAuth2 token endpoint for service accounts (`POST /token`, JWT-bearer grant).
//!
//! The client signs an RS256 JWT assertion with the service account's private key; the emulator
//! verifies it with the configured public key and the same claim rules as Google, then issues an
//! opaque access token that the send endpoint accepts for [`ACCESS_TOKEN_TTL_SECS`] seconds.
//!
//! Base64url segments are accepted with or without `=` padding, as Google does: the `gcp_auth`
//! crate pads them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::state::{EmulatorState, ACCESS_TOKEN_TTL_SECS};

/// The only accepted `grant_type`.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The scope FCM's HTTP v1 API requires.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The broad scope that FCM's HTTP v1 API accepts as well.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Longest accepted assertion lifetime (`exp - iat`), in seconds.
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 3600;
/// How far in the future `iat` may be (clock skew), in seconds.
pub const MAX_IAT_SKEW_SECS: i64 = 60;

const TIMEFRAME_MESSAGE: &str = "Invalid JWT: Token must be a short-lived token (60 minutes) and \
in a reasonable timeframe. Check your iat and exp values in the JWT claim.";

/// Base64url that accepts segments with or without padding.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An OAuth2 error answer: `{"error": code, "error_description": message}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// A parameter is missing or the body is not a form.
    #[error("{0}")]
    InvalidRequest(String),
    /// `grant_type` is not the JWT-bearer grant.
    #[error("Invalid grant_type: {0}")]
    UnsupportedGrantType(String),
    /// The assertion is malformed, badly signed, or its claims are wrong.
    #[error("{0}")]
    InvalidGrant(String),
    /// The assertion asks for no scope, or for none that covers FCM.
    #[error("{0}")]
    InvalidScope(String),
    /// The assertion asks to impersonate a user (`sub`), which needs domain-wide delegation.
    #[error("{0}")]
    UnauthorizedClient(String),
}

impl OAuthError {
    /// The OAuth2 `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::UnsupportedGrantType(_) => "unsupported_grant_type",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::InvalidScope(_) => "invalid_scope",
            Self::UnauthorizedClient(_) => "unauthorized_client",
        }
    }

    /// The HTTP status Google answers with.
    pub fn http_status(&self) -> StatusCode {
        match self {
            Self::UnauthorizedClient(_) => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.code(), "error_description": self.to_string()});
        (self.http_status(), Json(body)).into_response()
    }
}

/// What an assertion must satisfy.
#[derive(Debug, Clone, Copy)]
pub struct AssertionRules<'a> {
    /// The key verifying the RS256 signature.
    pub key: &'a DecodingKey,
    /// The required `iss` (the service account's email).
    pub client_email: &'a str,
    /// The required `aud` (the token endpoint's URL).
    pub token_url: &'a str,
    /// The current time, seconds since the Unix epoch.
    pub now: i64,
}

#[derive(Debug, Deserialize)]
struct JwtHeader {
    alg: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: Option<Value>,
    aud: Option<Value>,
    exp: Option<Value>,
    iat: Option<Value>,
    sub: Option<Value>,
    scope: Option<Value>,
}

/// Verifies a JWT-bearer assertion the way Google's token endpoint does.
pub fn verify_assertion(assertion: &str, rules: AssertionRules<'_>) -> Result<(), OAuthError> {
    let malformed = |why: &str| OAuthError::InvalidGrant(format!("Invalid JWT: {why}"));
    let mut parts = assertion.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("expected three dot-separated segments"));
    };
    let header: JwtHeader = decode_segment(header_b64).ok_or_else(|| malformed("bad header"))?;
    if header.alg.as_deref() != Some("RS256") {
        return Err(malformed("the header's alg must be RS256"));
    }
    let signing_input = &assertion[..header_b64.len() + 1 + claims_b64.len()];
    let signature_ok = jsonwebtoken::crypto::verify(
        signature_b64.trim_end_matches('='),
        signing_input.as_bytes(),
        rules.key,
        Algorithm::RS256,
    )
    .unwrap_or(false);
    if !signature_ok {
        return Err(OAuthError::InvalidGrant(
            "Invalid JWT Signature.".to_owned(),
        ));
    }
    let claims: Claims = decode_segment(claims_b64).ok_or_else(|| malformed("bad claims"))?;

    if claims.iss.as_ref().and_then(Value::as_str) != Some(rules.client_email) {
        return Err(OAuthError::InvalidGrant(
            "Invalid grant: account not found".to_owned(),
        ));
    }
    if claims.aud.as_ref().and_then(Value::as_str) != Some(rules.token_url) {
        return Err(OAuthError::InvalidGrant(format!(
            "Invalid JWT: Failed audience check. The expected audience is {}.",
            rules.token_url
        )));
    }
    let timeframe = |why: String| OAuthError::InvalidGrant(format!("{TIMEFRAME_MESSAGE} ({why})"));
    let exp =
        numeric_date(claims.exp.as_ref()).ok_or_else(|| timeframe("no numeric exp".into()))?;
    let iat =
        numeric_date(claims.iat.as_ref()).ok_or_else(|| timeframe("no numeric iat".into()))?;
    if exp <= rules.now {
        return Err(timeframe(format!(
            "exp is {} s in the past",
            rules.now - exp
        )));
    }
    if exp <= iat || exp - iat > MAX_ASSERTION_LIFETIME_SECS {
        return Err(timeframe(format!(
            "exp - iat is {} s, must be in 1..={MAX_ASSERTION_LIFETIME_SECS}",
            exp - iat
        )));
    }
    if iat > rules.now + MAX_IAT_SKEW_SECS {
        return Err(timeframe(format!(
            "iat is {} s in the future",
            iat - rules.now
        )));
    }
    match claims.sub.as_ref() {
        None | Some(Value::Null) => {}
        Some(Value::String(sub)) if sub == rules.client_email => {}
        Some(_) => {
            return Err(OAuthError::UnauthorizedClient(
                "Client is unauthorized to retrieve access tokens using this method, or client \
                 not authorized for any of the scopes requested."
                    .to_owned(),
            ))
        }
    }
    let scope = claims.scope.as_ref().and_then(Value::as_str).unwrap_or("");
    if scope.split_whitespace().next().is_none() {
        return Err(OAuthError::InvalidScope(
            "Empty or missing scope not allowed.".to_owned(),
        ));
    }
    if !scope
        .split_whitespace()
        .any(|s| s == FCM_SCOPE || s == CLOUD_PLATFORM_SCOPE)
    {
        return Err(OAuthError::InvalidScope(format!(
            "Invalid OAuth scope or ID token audience provided. (The emulator issues tokens only \
             for {FCM_SCOPE} or {CLOUD_PLATFORM_SCOPE}.)"
        )));
    }
    Ok(())
}

fn decode_segment<T: serde::de::DeserializeOwned>(segment: &str) -> Option<T> {
    let bytes = B64.decode(segment).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn numeric_date(value: Option<&Value>) -> Option<i64> {
    let number = value?.as_number()?;
    number
        .as_i64()
        .or_else(|| number.as_f64().map(|f| f.floor() as i64))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `POST /token`: exchanges a signed assertion for an access token.
pub async fn token_endpoint(
    State(state): State<Arc<EmulatorState>>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    match issue(&state, form) {
        Ok(token) => {
            tracing::info!("issued an access token");
            let body = json!({
                "access_token": token,
                "expires_in": ACCESS_TOKEN_TTL_SECS,
                "token_type": "Bearer",
            });
            let mut response = (StatusCode::OK, Json(body)).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => {
            tracing::warn!(error = error.code(), description = %error, "token request rejected");
            state.record_token_rejection();
            error.into_response()
        }
    }
}

fn issue(
    state: &EmulatorState,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<String, OAuthError> {
    let Form(form) = form.map_err(|rejection| {
        OAuthError::InvalidRequest(format!(
            "The body must be application/x-www-form-urlencoded: {rejection}"
        ))
    })?;
    let grant_type = form.get("grant_type").ok_or_else(|| {
        OAuthError::InvalidRequest("Missing required parameter: grant_type".to_owned())
    })?;
    if grant_type != JWT_BEARER_GRANT {
        return Err(OAuthError::UnsupportedGrantType(grant_type.clone()));
    }
    let assertion = form.get("assertion").ok_or_else(|| {
        OAuthError::InvalidRequest("Missing required parameter: assertion".to_owned())
    })?;
    verify_assertion(
        assertion,
        AssertionRules {
            key: &state.decoding_key,
            client_email: &state.client_email,
            token_url: &state.token_url,
            now: unix_now(),
        },
    )?;
    Ok(state.issue_access_token())
}

/// The bearer token of an `Authorization` header, if there is one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
