//! End-to-end tests: the emulator runs in-process on 127.0.0.1:0 and is driven over HTTP, with
//! assertions signed by the test service account in `infra/fcm-emulator/`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fcm_emulator::{start, EmulatorConfig, RunningEmulator};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
const DEVICE: &str =
    "fGx3cT2bRkWZ8nY0q4m7aB:APA91bHtestdevicetoken_0123456789-abcdefghijklmnopqrstuvwxyz";
const OTHER_DEVICE: &str =
    "eHw2bS1aQjVY7mX9p3l6zA:APA91bGotherdevicetoken_9876543210-zyxwvutsrqponmlkjihgfedcba";

fn infra(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../infra/fcm-emulator")
        .join(name)
}

fn service_account() -> Result<Value, Box<dyn std::error::Error>> {
    Ok(serde_json::from_str(&std::fs::read_to_string(infra(
        "service-account.json",
    ))?)?)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

struct Emu {
    running: RunningEmulator,
    http: reqwest::Client,
    account: Value,
}

impl Emu {
    async fn start() -> Result<Self, Box<dyn std::error::Error>> {
        Self::keeping(fcm_emulator::state::DEFAULT_MAX_DELIVERIES).await
    }

    /// An emulator that keeps the last `max_deliveries` deliveries.
    async fn keeping(max_deliveries: usize) -> Result<Self, Box<dyn std::error::Error>> {
        let listen: SocketAddr = ([127, 0, 0, 1], 0).into();
        let config = EmulatorConfig::from_files(
            listen,
            infra("service-account.json"),
            infra("public-key.pem"),
        )?
        .with_max_deliveries(max_deliveries);
        let running = start(config).await?;
        Ok(Self {
            running,
            http: reqwest::Client::new(),
            account: service_account()?,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.url())
    }

    fn send_url(&self) -> String {
        self.url("/v1/projects/didihouse-local/messages:send")
    }

    fn claims(&self) -> Value {
        let iat = now();
        json!({
            "iss": self.account["client_email"],
            "aud": self.url("/token"),
            "exp": iat + 3595,
            "iat": iat,
            "sub": null,
            "scope": FCM_SCOPE,
        })
    }

    fn sign(&self, claims: &Value) -> Result<String, Box<dyn std::error::Error>> {
        let pem = self.account["private_key"]
            .as_str()
            .ok_or("no private_key")?;
        let key = EncodingKey::from_rsa_pem(pem.as_bytes())?;
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            claims,
            &key,
        )?)
    }

    async fn token_request(
        &self,
        grant_type: &str,
        assertion: &str,
    ) -> Result<(StatusCode, Value), Box<dyn std::error::Error>> {
        let form = format!(
            "grant_type={}&assertion={}",
            grant_type.replace(':', "%3A"),
            assertion.replace('=', "%3D")
        );
        let response = self
            .http
            .post(self.url("/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await?;
        Ok((response.status(), response.json().await?))
    }

    async fn exchange(
        &self,
        claims: &Value,
    ) -> Result<(StatusCode, Value), Box<dyn std::error::Error>> {
        let assertion = self.sign(claims)?;
        self.token_request("urn:ietf:params:oauth:grant-type:jwt-bearer", &assertion)
            .await
    }

    async fn access_token(&self) -> Result<String, Box<dyn std::error::Error>> {
        let (status, body) = self.exchange(&self.claims()).await?;
        assert_eq!(status, StatusCode::OK, "{body}");
        Ok(body["access_token"]
            .as_str()
            .ok_or("no access_token")?
            .to_owned())
    }

    async fn send(
        &self,
        access_token: Option<&str>,
        body: &Value,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, Value), Box<dyn std::error::Error>> {
        let mut request = self.http.post(self.send_url()).json(body);
        if let Some(token) = access_token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        Ok((status, headers, response.json().await?))
    }

    async fn admin_post(
        &self,
        path: &str,
        body: Option<Value>,
    ) -> Result<StatusCode, Box<dyn std::error::Error>> {
        let mut request = self.http.post(self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        Ok(request.send().await?.status())
    }

    async fn get_json(&self, path: &str) -> Result<Value, Box<dyn std::error::Error>> {
        Ok(self.http.get(self.url(path)).send().await?.json().await?)
    }
}

fn push(token: &str) -> Value {
    json!({
        "message": {
            "token": token,
            "notification": {"title": "Alice", "body": "hello"},
            "data": {"room": "r1", "seq": "7"},
            "android": {"priority": "HIGH", "ttl": "3.5s", "collapse_key": "r1",
                        "notification": {"tag": "r1", "channel_id": "chat"}},
            "apns": {"headers": {"apns-priority": "10"},
                     "payload": {"aps": {"badge": 3, "thread-id": "r1"}}}
        }
    })
}

fn fcm_error_code(body: &Value) -> Option<&str> {
    body["error"]["details"]
        .as_array()?
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.firebase.fcm.v1.FcmError")?["errorCode"]
        .as_str()
}

#[tokio::test]
async fn a_valid_assertion_gets_an_access_token() -> TestResult {
    let emu = Emu::start().await?;
    let (status, body) = emu.exchange(&emu.claims()).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert!(body["access_token"].as_str().is_some_and(|t| t.len() > 20));
    let stats = emu.get_json("/admin/stats").await?;
    assert_eq!(stats["tokensIssued"], 1);
    Ok(())
}

#[tokio::test]
async fn bad_assertions_are_rejected() -> TestResult {
    let emu = Emu::start().await?;

    // Bad signature: the signature of another claim set.
    let good = emu.sign(&emu.claims())?;
    let mut other_claims = emu.claims();
    other_claims["scope"] = json!(format!(
        "{FCM_SCOPE} https://www.googleapis.com/auth/userinfo.email"
    ));
    let other = emu.sign(&other_claims)?;
    let (head_and_claims, _) = good.rsplit_once('.').ok_or("jwt")?;
    let (_, foreign_signature) = other.rsplit_once('.').ok_or("jwt")?;
    let forged = format!("{head_and_claims}.{foreign_signature}");
    let (status, body) = emu
        .token_request("urn:ietf:params:oauth:grant-type:jwt-bearer", &forged)
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "Invalid JWT Signature.");

    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "wrong scope",
            json!({"scope": "https://www.googleapis.com/auth/devstorage.read_only"}),
            "invalid_scope",
        ),
        ("no scope", json!({"scope": ""}), "invalid_scope"),
        (
            "expired",
            json!({"iat": now() - 4000, "exp": now() - 405}),
            "invalid_grant",
        ),
        (
            "too long",
            json!({"iat": now(), "exp": now() + 3601}),
            "invalid_grant",
        ),
        (
            "iat in the future",
            json!({"iat": now() + 120, "exp": now() + 1800}),
            "invalid_grant",
        ),
        (
            "wrong aud",
            json!({"aud": "https://oauth2.googleapis.com/token"}),
            "invalid_grant",
        ),
        (
            "wrong iss",
            json!({"iss": "intruder@didihouse-local.iam.gserviceaccount.com"}),
            "invalid_grant",
        ),
        (
            "sub",
            json!({"sub": "someone@example.com"}),
            "unauthorized_client",
        ),
    ];
    for (name, patch, expected) in cases {
        let mut claims = emu.claims();
        for (key, value) in patch.as_object().ok_or("patch")? {
            claims[key] = value.clone();
        }
        let (status, body) = emu.exchange(&claims).await?;
        assert!(status.is_client_error(), "{name}: {status}");
        assert_eq!(body["error"], expected, "{name}: {body}");
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{name}"
        );
    }
    let aud = {
        let mut claims = emu.claims();
        claims["aud"] = json!("https://oauth2.googleapis.com/token");
        emu.exchange(&claims).await?.1
    };
    assert!(aud["error_description"]
        .as_str()
        .is_some_and(|d| d.contains(&emu.url("/token"))));

    let (status, body) = emu.token_request("client_credentials", &good).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_grant_type");

    let (status, body) = emu
        .token_request("urn:ietf:params:oauth:grant-type:jwt-bearer", "not.a-jwt")
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    let stats = emu.get_json("/admin/stats").await?;
    assert_eq!(stats["tokensIssued"], 0);
    Ok(())
}

#[tokio::test]
async fn send_needs_a_valid_access_token() -> TestResult {
    let emu = Emu::start().await?;
    let expected = json!({"error": {
        "code": 401,
        "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        "status": "UNAUTHENTICATED"
    }});
    let (status, _, body) = emu.send(None, &push(DEVICE)).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, expected);
    let (status, _, body) = emu.send(Some("ya29.made-up"), &push(DEVICE)).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, expected);
    Ok(())
}

#[tokio::test]
async fn a_valid_send_is_accepted_and_recorded() -> TestResult {
    let emu = Emu::start().await?;
    let token = emu.access_token().await?;
    let message = push(DEVICE);
    let (status, _, body) = emu.send(Some(&token), &message).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let name = body["name"].as_str().ok_or("no name")?;
    assert!(
        name.starts_with("projects/didihouse-local/messages/"),
        "{name}"
    );

    // validate_only: accepted, not recorded.
    let mut dry = push(OTHER_DEVICE);
    dry["validate_only"] = json!(true);
    let (status, _, body) = emu.send(Some(&token), &dry).await?;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Topics and camelCase field names are accepted too.
    let topic = json!({"validateOnly": false, "message": {"topic": "news", "notification": {"title": "t"},
                       "android": {"notification": {"channelId": "c", "clickAction": "OPEN"}}}});
    let (status, _, body) = emu.send(Some(&token), &topic).await?;
    assert_eq!(status, StatusCode::OK, "{body}");

    let deliveries = emu.get_json("/admin/deliveries").await?;
    let list = deliveries["deliveries"].as_array().ok_or("no deliveries")?;
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["token"], DEVICE);
    assert_eq!(list[0]["message"], message["message"]);
    assert_eq!(list[0]["name"], name);
    assert!(list[0]["receivedAt"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(list[1]["token"], Value::Null);
    assert_eq!(list[1]["message"]["topic"], "news");

    let only = emu
        .get_json(&format!("/admin/deliveries?token={DEVICE}"))
        .await?;
    assert_eq!(only["deliveries"].as_array().map(Vec::len), Some(1));

    let stats = emu.get_json("/admin/stats").await?;
    assert_eq!(stats["sendsAccepted"], 2);
    assert_eq!(stats["sendsValidated"], 1);

    let text = emu.http.get(emu.url("/")).send().await?.text().await?;
    assert!(text.contains("2 deliveries stored"), "{text}");
    assert!(text.contains("\"Alice\" / \"hello\""), "{text}");
    assert!(text.contains("topic \"news\""), "{text}");
    Ok(())
}

#[tokio::test]
async fn deliveries_beyond_the_maximum_drop_the_oldest_and_are_counted() -> TestResult {
    let emu = Emu::keeping(2).await?;
    let token = emu.access_token().await?;
    for device in [DEVICE, OTHER_DEVICE, DEVICE] {
        let (status, _, body) = emu.send(Some(&token), &push(device)).await?;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let deliveries = emu.get_json("/admin/deliveries").await?;
    let tokens: Vec<&Value> = deliveries["deliveries"]
        .as_array()
        .ok_or("no deliveries")?
        .iter()
        .map(|delivery| &delivery["token"])
        .collect();
    assert_eq!(tokens, [OTHER_DEVICE, DEVICE]);
    let stats = emu.get_json("/admin/stats").await?;
    assert_eq!(stats["sendsAccepted"], 3);
    assert_eq!(stats["deliveriesDropped"], 1);
    Ok(())
}

#[tokio::test]
async fn invalid_messages_are_rejected_like_fcm() -> TestResult {
    let emu = Emu::start().await?;
    let token = emu.access_token().await?;

    let mut bad_data = push(DEVICE);
    bad_data["message"]["data"]["seq"] = json!(7);
    let (status, _, body) = emu.send(Some(&token), &bad_data).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(fcm_error_code(&body), Some("INVALID_ARGUMENT"));
    assert_eq!(
        body["error"]["message"],
        "Invalid value at 'message.data[1].value' (TYPE_STRING), 7"
    );

    let mut unknown = push(DEVICE);
    unknown["message"]["x"] = json!("y");
    let (status, _, body) = emu.send(Some(&token), &unknown).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"]["message"],
        "Invalid JSON payload received. Unknown name \"x\" at 'message': Cannot find field."
    );

    let mut nested = push(DEVICE);
    nested["message"]["apns"]["priority"] = json!("10");
    let (status, _, body) = emu.send(Some(&token), &nested).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"]["message"],
        "Invalid JSON payload received. Unknown name \"priority\" at 'message.apns': Cannot find field."
    );

    let mut oversize = push(DEVICE);
    oversize["message"]["data"]["blob"] = json!("x".repeat(4000));
    let (status, _, body) = emu.send(Some(&token), &oversize).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["message"], "Message is too big");
    assert_eq!(fcm_error_code(&body), Some("INVALID_ARGUMENT"));

    let mut reserved = push(DEVICE);
    reserved["message"]["data"]["google.sent_time"] = json!("1");
    let (status, _, _) = emu.send(Some(&token), &reserved).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let mut two_targets = push(DEVICE);
    two_targets["message"]["topic"] = json!("news");
    let (status, _, _) = emu.send(Some(&token), &two_targets).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, _, body) = emu.send(Some(&token), &push("not-a-token")).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error":{"code":400,"message":"The registration token is not a valid FCM registration token","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INVALID_ARGUMENT"},{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.token","description":"Invalid registration token"}]}]}})
    );

    let response = emu
        .http
        .post(emu.send_url())
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let wrong_project = emu
        .http
        .post(emu.url("/v1/projects/someone-else/messages:send"))
        .bearer_auth(&token)
        .json(&push(DEVICE))
        .send()
        .await?;
    assert_eq!(wrong_project.status(), StatusCode::NOT_FOUND);
    let body: Value = wrong_project.json().await?;
    assert_eq!(body["error"]["status"], "NOT_FOUND");
    assert_eq!(fcm_error_code(&body), None);

    let deliveries = emu.get_json("/admin/deliveries").await?;
    assert_eq!(deliveries["deliveries"].as_array().map(Vec::len), Some(0));
    let stats = emu.get_json("/admin/stats").await?;
    assert_eq!(stats["sendsRejectedByErrorCode"]["INVALID_ARGUMENT"], 8);
    assert_eq!(stats["sendsRejectedByStatus"]["NOT_FOUND"], 1);
    Ok(())
}

#[tokio::test]
async fn programmed_tokens_fail_with_their_error() -> TestResult {
    let emu = Emu::start().await?;
    let token = emu.access_token().await?;
    let status = emu
        .admin_post(&format!("/admin/tokens/{DEVICE}/unregister"), None)
        .await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = emu.send(Some(&token), &push(DEVICE)).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}})
    );
    // Other tokens are unaffected.
    let (status, _, _) = emu.send(Some(&token), &push(OTHER_DEVICE)).await?;
    assert_eq!(status, StatusCode::OK);

    emu.admin_post(
        &format!("/admin/tokens/{OTHER_DEVICE}/sender-mismatch"),
        None,
    )
    .await?;
    let (status, _, body) = emu.send(Some(&token), &push(OTHER_DEVICE)).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["status"], "PERMISSION_DENIED");
    assert_eq!(fcm_error_code(&body), Some("SENDER_ID_MISMATCH"));

    emu.admin_post(
        &format!("/admin/tokens/{OTHER_DEVICE}/third-party-auth-error"),
        None,
    )
    .await?;
    let (status, _, body) = emu.send(Some(&token), &push(OTHER_DEVICE)).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(fcm_error_code(&body), Some("THIRD_PARTY_AUTH_ERROR"));

    let stats = emu.get_json("/admin/stats").await?;
    assert_eq!(stats["sendsRejectedByErrorCode"]["UNREGISTERED"], 1);
    assert_eq!(stats["sendsAccepted"], 1);

    // Reset forgets the programming (and the counters).
    assert_eq!(
        emu.admin_post("/admin/reset", None).await?,
        StatusCode::NO_CONTENT
    );
    let (status, _, _) = emu.send(Some(&token), &push(DEVICE)).await?;
    assert_eq!(status, StatusCode::OK);
    let stats = emu.get_json("/admin/stats").await?;
    assert_eq!(stats["sendsAccepted"], 1);
    assert_eq!(stats["sendsRejected"], 0);
    Ok(())
}

#[tokio::test]
async fn programmed_faults_then_success() -> TestResult {
    let emu = Emu::start().await?;
    let token = emu.access_token().await?;
    let status = emu
        .admin_post(
            "/admin/faults",
            Some(json!({"status": 429, "count": 2, "retryAfterSeconds": 7})),
        )
        .await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for _ in 0..2 {
        let (status, headers, body) = emu.send(Some(&token), &push(DEVICE)).await?;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            headers.get("retry-after").and_then(|v| v.to_str().ok()),
            Some("7")
        );
        assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(fcm_error_code(&body), Some("QUOTA_EXCEEDED"));
    }
    let (status, _, _) = emu.send(Some(&token), &push(DEVICE)).await?;
    assert_eq!(status, StatusCode::OK);

    emu.admin_post("/admin/faults", Some(json!({"status": 503, "count": 1})))
        .await?;
    emu.admin_post("/admin/faults", Some(json!({"status": 500, "count": 1})))
        .await?;
    let (status, headers, body) = emu.send(Some(&token), &push(DEVICE)).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.get("retry-after").is_none());
    assert_eq!(fcm_error_code(&body), Some("UNAVAILABLE"));
    let (status, _, body) = emu.send(Some(&token), &push(DEVICE)).await?;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(fcm_error_code(&body), Some("INTERNAL"));
    let (status, _, _) = emu.send(Some(&token), &push(DEVICE)).await?;
    assert_eq!(status, StatusCode::OK);

    let bad = emu
        .admin_post("/admin/faults", Some(json!({"status": 404, "count": 1})))
        .await?;
    assert_eq!(bad, StatusCode::BAD_REQUEST);

    let stats = emu.get_json("/admin/stats").await?;
    assert_eq!(stats["sendsRejectedByErrorCode"]["QUOTA_EXCEEDED"], 2);
    assert_eq!(stats["sendsRejectedByStatus"]["RESOURCE_EXHAUSTED"], 2);
    assert_eq!(stats["sendsAccepted"], 2);
    Ok(())
}

#[tokio::test]
async fn delay_holds_back_the_answer_not_the_delivery() -> TestResult {
    let emu = Emu::start().await?;
    let token = emu.access_token().await?;
    emu.admin_post("/admin/delay", Some(json!({"ms": 300})))
        .await?;
    let started = Instant::now();
    let (status, _, _) = emu.send(Some(&token), &push(DEVICE)).await?;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A sender that stops waiting still delivered its push, as with FCM.
    let abandoned = emu
        .http
        .post(emu.send_url())
        .bearer_auth(&token)
        .timeout(Duration::from_millis(100))
        .json(&push(OTHER_DEVICE))
        .send()
        .await;
    assert!(abandoned.is_err_and(|e| e.is_timeout()));
    let delivered = emu
        .get_json(&format!("/admin/deliveries?token={OTHER_DEVICE}"))
        .await?;
    assert_eq!(delivered["deliveries"].as_array().map(Vec::len), Some(1));
    emu.admin_post("/admin/delay", Some(json!({"ms": 0})))
        .await?;
    Ok(())
}

#[tokio::test]
async fn revoked_access_tokens_get_401_until_refreshed() -> TestResult {
    let emu = Emu::start().await?;
    let token = emu.access_token().await?;
    let (status, _, _) = emu.send(Some(&token), &push(DEVICE)).await?;
    assert_eq!(status, StatusCode::OK);
    let status = emu.admin_post("/admin/revoke-access-tokens", None).await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = emu.send(Some(&token), &push(DEVICE)).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    assert!(body["error"].get("details").is_none());
    let fresh = emu.access_token().await?;
    let (status, _, _) = emu.send(Some(&fresh), &push(DEVICE)).await?;
    assert_eq!(status, StatusCode::OK);
    Ok(())
}

/// The real client the notifier uses: `gcp_auth`'s `CustomServiceAccount` signs its own
/// assertion (with padded base64url segments) and posts it to the key file's `token_uri`.
#[tokio::test]
async fn gcp_auth_custom_service_account_works() -> TestResult {
    use gcp_auth::TokenProvider;

    let emu = Emu::start().await?;
    let mut key = service_account()?;
    key["token_uri"] = json!(emu.url("/token"));
    let path = std::env::temp_dir().join(format!(
        "fcm-emulator-test-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&path, serde_json::to_vec_pretty(&key)?)?;
    let account = gcp_auth::CustomServiceAccount::from_file(&path);
    let _ = std::fs::remove_file(&path);
    let account = account?;
    assert_eq!(
        TokenProvider::project_id(&account).await?.as_ref(),
        "didihouse-local"
    );
    let token = account.token(&[FCM_SCOPE]).await?;
    let (status, _, body) = emu.send(Some(token.as_str()), &push(DEVICE)).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deliveries = emu.get_json("/admin/deliveries").await?;
    assert_eq!(deliveries["deliveries"][0]["token"], DEVICE);
    let stats = emu.get_json("/admin/stats").await?;
    assert_eq!(stats["tokensIssued"], 1);
    Ok(())
}
