//! What an answer of `messages:send` means for the notifier, following FCM's documented error
//! codes (`details[].errorCode`).

use std::time::Duration;

use serde::Deserialize;

/// What to do after one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// FCM accepted the message.
    Delivered,
    /// The token is dead (UNREGISTERED, or INVALID_ARGUMENT about the token): delete it.
    DeadToken(String),
    /// Worth trying again later (QUOTA_EXCEEDED, UNAVAILABLE, INTERNAL), after at least
    /// `retry_after` when FCM said so.
    Retry {
        /// The error code.
        code: String,
        /// FCM's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// No answer came (a timeout, a connection lost after the request left): FCM may have
    /// accepted the message, so it is worth trying again, marked as a possible repeat.
    Unanswered(String),
    /// The access token was refused (401 without an FCM code): refresh it and try once more.
    Reauthenticate,
    /// Will not succeed by retrying (SENDER_ID_MISMATCH, THIRD_PARTY_AUTH_ERROR, other 4xx).
    Rejected(String),
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorStatus,
}

#[derive(Deserialize)]
struct ErrorStatus {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    details: Vec<Detail>,
}

#[derive(Deserialize)]
struct Detail {
    #[serde(rename = "errorCode")]
    error_code: Option<String>,
    #[serde(rename = "fieldViolations", default)]
    field_violations: Vec<FieldViolation>,
}

#[derive(Deserialize)]
struct FieldViolation {
    #[serde(default)]
    field: String,
}

/// Classifies an answer from its status, its `Retry-After` header and its body.
pub fn classify(status: u16, retry_after: Option<&str>, body: &[u8]) -> SendOutcome {
    if (200..300).contains(&status) {
        return SendOutcome::Delivered;
    }
    let parsed: Option<ErrorStatus> = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.error);
    let code = parsed
        .as_ref()
        .and_then(|e| e.details.iter().find_map(|d| d.error_code.clone()));
    let retry_after = retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let describe = |fallback: &str| {
        parsed.as_ref().map_or_else(
            || format!("HTTP {status}: {fallback}"),
            |e| format!("HTTP {status} {}: {}", e.status, e.message),
        )
    };
    match code.as_deref() {
        Some("UNREGISTERED") => SendOutcome::DeadToken("UNREGISTERED".into()),
        Some("INVALID_ARGUMENT") if about_the_token(parsed.as_ref()) => {
            SendOutcome::DeadToken("INVALID_ARGUMENT".into())
        }
        Some(code @ ("QUOTA_EXCEEDED" | "UNAVAILABLE" | "INTERNAL")) => SendOutcome::Retry {
            code: code.to_owned(),
            retry_after,
        },
        Some(code) => SendOutcome::Rejected(format!("{code}: {}", describe(code))),
        None => match status {
            401 => SendOutcome::Reauthenticate,
            429 | 500 | 502 | 503 | 504 => SendOutcome::Retry {
                code: format!("HTTP {status}"),
                retry_after,
            },
            _ => SendOutcome::Rejected(describe("unexpected answer")),
        },
    }
}

/// Whether an INVALID_ARGUMENT names the registration token (rather than the payload).
fn about_the_token(error: Option<&ErrorStatus>) -> bool {
    error.is_some_and(|e| {
        e.details
            .iter()
            .flat_map(|d| &d.field_violations)
            .any(|v| v.field == "message.token")
            || e.message.contains("registration token")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(status: &str, code: &str, extra: &str) -> Vec<u8> {
        format!(
            r#"{{"error":{{"code":0,"message":"m","status":"{status}","details":[{{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"{code}"}}{extra}]}}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn fcm_codes_map_to_what_the_notifier_does() {
        assert_eq!(classify(200, None, b"{}"), SendOutcome::Delivered);
        assert_eq!(
            classify(404, None, &body("NOT_FOUND", "UNREGISTERED", "")),
            SendOutcome::DeadToken("UNREGISTERED".into())
        );
        let token_violation = r#",{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.token","description":"Invalid registration token"}]}"#;
        assert_eq!(
            classify(
                400,
                None,
                &body("INVALID_ARGUMENT", "INVALID_ARGUMENT", token_violation)
            ),
            SendOutcome::DeadToken("INVALID_ARGUMENT".into())
        );
        assert!(matches!(
            classify(400, None, &body("INVALID_ARGUMENT", "INVALID_ARGUMENT", "")),
            SendOutcome::Rejected(_)
        ));
        assert_eq!(
            classify(
                429,
                Some("7"),
                &body("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "")
            ),
            SendOutcome::Retry {
                code: "QUOTA_EXCEEDED".into(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert!(matches!(
            classify(503, None, &body("UNAVAILABLE", "UNAVAILABLE", "")),
            SendOutcome::Retry { .. }
        ));
        assert!(matches!(
            classify(
                403,
                None,
                &body("PERMISSION_DENIED", "SENDER_ID_MISMATCH", "")
            ),
            SendOutcome::Rejected(_)
        ));
        assert!(matches!(
            classify(
                401,
                None,
                &body("UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "")
            ),
            SendOutcome::Rejected(_)
        ));
        let no_code = br#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#;
        assert_eq!(classify(401, None, no_code), SendOutcome::Reauthenticate);
    }
}
