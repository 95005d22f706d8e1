//! Push notifications end to end: the notifier over the real servers, sending to the strict FCM
//! emulator (HTTP v1, OAuth2 through gcp_auth).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chat_tests::push::PushKit;
use chat_tests::stomp::StompClient;
use chat_tests::{ServiceProcess, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

/// An app with a notifier sending to a fresh emulator.
async fn start() -> (TestApp, PushKit) {
    let mut app = TestApp::start().await;
    let kit = PushKit::start().await;
    app.start_notifier(kit.notifier_settings(&app.env)).await;
    (app, kit)
}

/// A token in FCM's format for `user`'s `device`.
fn token(user: &str, device: &str) -> String {
    format!("{user}-{device}:{}", "A1b2C3d4".repeat(8))
}

async fn register(app: &TestApp, user: &str, device: &str) -> String {
    let token = token(user, device);
    let (status, body) = app
        .call(
            Method::PUT,
            Some(user),
            "/api/users/me/push-tokens",
            Some(json!({"token": token, "platform": "android"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    token
}

async fn group(app: &TestApp, creator: &str, name: &str, others: &[&str]) -> String {
    let (status, room) = app
        .post(
            creator,
            "/api/rooms",
            json!({"type": "GROUP", "name": name, "userIds": others}),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    room["roomId"].as_str().expect("roomId").to_owned()
}

async fn send(app: &TestApp, user: &str, room: &str, content: &str) -> String {
    let (status, sent) = app
        .post(
            user,
            &format!("/api/rooms/{room}/messages"),
            json!({"content": content}),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    sent["messageId"].as_str().expect("id").to_owned()
}

/// Waits until the emulator holds `count` deliveries whose `data` matches `filter`, then a
/// little longer to see that no more come; returns them.
async fn deliveries_of(kit: &PushKit, filter: impl Fn(&Value) -> bool, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got: Vec<Value> = kit
            .deliveries()
            .await
            .into_iter()
            .filter(|d| filter(&d["message"]))
            .collect();
        if got.len() >= count || Instant::now() > deadline {
            if got.len() == count {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let again = kit
                    .deliveries()
                    .await
                    .into_iter()
                    .filter(|d| filter(&d["message"]))
                    .count();
                assert_eq!(again, count, "no further pushes");
            }
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn for_message(id: &str) -> impl Fn(&Value) -> bool + '_ {
    move |m: &Value| m["data"]["messageId"] == id
}

#[tokio::test]
async fn absent_members_get_one_push_per_device_and_nobody_else_does() {
    let (app, kit) = start().await;
    let room = group(&app, "alice", "Housemates", &["bob", "carol", "dave"]).await;
    register(&app, "alice", "phone").await;
    register(&app, "bob", "phone").await;
    let carol_phone = register(&app, "carol", "phone").await;
    let carol_tablet = register(&app, "carol", "tablet").await;
    register(&app, "dave", "phone").await;
    let (status, body) = app
        .call(
            Method::PUT,
            Some("dave"),
            &format!("/api/rooms/{room}/mute"),
            Some(json!({"muted": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut bob = StompClient::connect(&app.base_url, &app.token("bob")).await;
    bob.subscribe("r", &format!("/sub/rooms/{room}"), &[]).await;

    let id = send(&app, "alice", &room, "dinner at 7?").await;
    let pushes = deliveries_of(&kit, for_message(&id), 2).await;
    let mut tokens: Vec<&str> = pushes
        .iter()
        .map(|d| d["token"].as_str().expect("token"))
        .collect();
    tokens.sort_unstable();
    let mut expected = vec![carol_phone.as_str(), carol_tablet.as_str()];
    expected.sort_unstable();
    assert_eq!(
        tokens, expected,
        "carol on both devices; not alice, bob (present) or dave (muted)"
    );

    let message = &pushes[0]["message"];
    assert_eq!(message["notification"]["title"], "Housemates");
    assert_eq!(message["notification"]["body"], "dinner at 7?");
    assert_eq!(
        message["data"],
        json!({"roomId": room, "messageId": id, "type": "CHAT"})
    );
    assert_eq!(message["android"]["notification"]["tag"], room.as_str());
    assert_eq!(
        message["apns"]["payload"]["aps"]["thread-id"],
        room.as_str()
    );
    assert_eq!(
        message["apns"]["payload"]["aps"]["badge"], 1,
        "carol's total unread"
    );
}

#[tokio::test]
async fn a_mention_reaches_a_member_who_muted_the_room_and_says_so() {
    let (app, kit) = start().await;
    let room = group(&app, "alice", "Housemates", &["bob", "carol"]).await;
    let bob_phone = register(&app, "bob", "phone").await;
    let carol_phone = register(&app, "carol", "phone").await;
    for user in ["bob", "carol"] {
        let (status, body) = app
            .call(
                Method::PUT,
                Some(user),
                &format!("/api/rooms/{room}/mute"),
                Some(json!({"muted": true})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, sent) = app
        .post(
            "alice",
            &format!("/api/rooms/{room}/messages"),
            json!({"content": "@bob 택배 왔어요", "mentions": ["bob"]}),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    let id = sent["messageId"].as_str().expect("id");
    let pushes = deliveries_of(&kit, for_message(id), 1).await;
    assert_eq!(
        pushes[0]["token"], bob_phone,
        "bob is mentioned; carol muted the room and is not: {pushes:?}"
    );
    assert_eq!(
        pushes[0]["message"]["data"],
        json!({"roomId": room, "messageId": id, "type": "CHAT", "mention": "true"})
    );
    assert!(pushes.iter().all(|p| p["token"] != carol_phone));
}

/// The notifier reads a CHAT's unread set only once the receipts worker has applied the CHAT:
/// read before, the set would still be empty and carol's push lost.
#[tokio::test]
async fn a_chat_stored_while_receipts_is_down_is_pushed_once_applied() {
    let (mut app, kit) = start().await;
    let room = group(&app, "alice", "g", &["carol"]).await;
    let carol_phone = register(&app, "carol", "phone").await;
    app.stop_receipts().await;

    let id = send(&app, "alice", &room, "while receipts is down").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let early = kit
        .deliveries()
        .await
        .into_iter()
        .filter(|d| for_message(&id)(&d["message"]))
        .count();
    assert_eq!(early, 0, "no push before the unread set is final");

    app.start_receipts();
    let pushes = deliveries_of(&kit, for_message(&id), 1).await;
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(pushes[0]["token"], carol_phone.as_str());
}

#[tokio::test]
async fn invited_users_get_a_push() {
    let (app, kit) = start().await;
    let erin = register(&app, "erin", "phone").await;
    let frank = register(&app, "frank", "phone").await;
    register(&app, "alice", "phone").await;
    let room = group(&app, "alice", "Book club", &["erin"]).await;
    let (status, body) = app
        .post(
            "alice",
            &format!("/api/rooms/{room}/members"),
            json!({"userIds": ["frank"]}),
        )
        .await;
    assert!(status == 200 || status == 201, "{body}");
    let invites = deliveries_of(&kit, |m| m["data"]["type"] == "INVITE", 2).await;
    let by_token: BTreeMap<&str, &Value> = invites
        .iter()
        .map(|d| (d["token"].as_str().expect("token"), &d["message"]))
        .collect();
    assert_eq!(by_token.len(), 2, "{invites:?}");
    for token in [&erin, &frank] {
        let message = by_token.get(token.as_str()).expect("an invite push");
        assert_eq!(message["data"]["roomId"], room.as_str());
        assert_eq!(message["notification"]["title"], "Book club");
        assert_eq!(message["notification"]["body"], "alice invited you");
    }
}

#[tokio::test]
async fn a_token_fcm_calls_unregistered_is_removed() {
    let (app, kit) = start().await;
    let room = group(&app, "alice", "g", &["carol"]).await;
    let dead = register(&app, "carol", "old-phone").await;
    let alive = register(&app, "carol", "new-phone").await;
    kit.admin(&format!("/tokens/{dead}/unregister"), Some(json!({})))
        .await;
    let id = send(&app, "alice", &room, "hello").await;
    let pushes = deliveries_of(&kit, for_message(&id), 1).await;
    assert_eq!(pushes[0]["token"], alive.as_str());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = app.get("carol", "/api/users/me/push-tokens").await;
        assert_eq!(status, 200, "{body}");
        let tokens: Vec<&str> = body["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .map(|t| t["token"].as_str().expect("token"))
            .collect();
        if tokens == [alive.as_str()] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dead token stays: {tokens:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn quota_errors_are_retried_after_retry_after() {
    let (app, kit) = start().await;
    let room = group(&app, "alice", "g", &["carol"]).await;
    register(&app, "carol", "phone").await;
    kit.admin(
        "/faults",
        Some(json!({"status": 429, "count": 1, "retryAfterSeconds": 2})),
    )
    .await;
    let sent = Instant::now();
    let id = send(&app, "alice", &room, "later").await;
    let pushes = deliveries_of(&kit, for_message(&id), 1).await;
    assert_eq!(pushes.len(), 1);
    assert!(
        sent.elapsed() >= Duration::from_secs(2),
        "the retry waited for Retry-After: {:?}",
        sent.elapsed()
    );
}

#[tokio::test]
async fn a_burst_of_unavailable_recovers() {
    let (app, kit) = start().await;
    let room = group(&app, "alice", "g", &["carol"]).await;
    register(&app, "carol", "phone").await;
    kit.admin("/faults", Some(json!({"status": 503, "count": 3})))
        .await;
    let id = send(&app, "alice", &room, "eventually").await;
    assert_eq!(deliveries_of(&kit, for_message(&id), 1).await.len(), 1);
    let stats = kit.admin("/stats", None).await;
    assert!(
        stats.to_string().contains("503") || stats.to_string().contains("UNAVAILABLE"),
        "{stats}"
    );
}

/// The notifier as a process of its own (so a test can signal it), with the kit's settings and
/// `env`'s on top.
fn notifier_process(app: &TestApp, env: &[(String, String)]) -> ServiceProcess {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    ServiceProcess::start("notifier", &app.env, &env)
}

/// An app, an emulator and a running notifier process with the kit's settings plus `extra`;
/// a group "g" of alice and carol, carol with a registered phone. Returns the settings (to
/// start the notifier again) and the room.
async fn carol_pushed_by_a_process(
    extra: &[(&str, &str)],
) -> (
    TestApp,
    PushKit,
    Vec<(String, String)>,
    ServiceProcess,
    String,
) {
    let app = TestApp::start().await;
    let kit = PushKit::start().await;
    let mut env = kit.notifier_env();
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let notifier = notifier_process(&app, &env);
    app.wait_for_consumer("notifier").await;
    let room = group(&app, "alice", "g", &["carol"]).await;
    register(&app, "carol", "phone").await;
    (app, kit, env, notifier, room)
}

#[tokio::test]
async fn a_notifier_restarted_mid_stream_sends_each_push_once() {
    let (app, kit, env, mut notifier, room) = carol_pushed_by_a_process(&[]).await;
    kit.admin("/delay", Some(json!({"ms": 20}))).await;
    const MESSAGES: usize = 40;
    let mut ids = Vec::new();
    for i in 0..MESSAGES {
        ids.push(send(&app, "alice", &room, &format!("m{i}")).await);
        if i == MESSAGES / 2 {
            let status = tokio::task::spawn_blocking(move || {
                let status = notifier.terminate();
                (status, notifier)
            })
            .await
            .expect("terminate");
            assert!(status.0.success(), "a graceful stop: {:?}", status.0);
            notifier = notifier_process(&app, &env);
        }
    }
    let pushes = deliveries_of(&kit, |m| m["data"]["type"] == "CHAT", MESSAGES).await;
    let mut seen: Vec<&str> = pushes
        .iter()
        .map(|d| d["message"]["data"]["messageId"].as_str().expect("id"))
        .collect();
    seen.sort_by_key(|id| id.parse::<u64>().expect("numeric"));
    assert_eq!(seen, ids, "every message pushed exactly once");
    drop(notifier);
}

#[tokio::test]
async fn a_notifier_killed_before_fcm_answered_resends_marked_and_loses_nothing() {
    let (app, kit, env, notifier, room) =
        carol_pushed_by_a_process(&[("CHAT_NOTIFIER__ACK_WAIT_MS", "2000")]).await;
    // FCM takes each push at once but answers only after 60 s: the notifier dies before any
    // answer, so it cannot know that every one of these pushes went out.
    kit.admin("/delay", Some(json!({"ms": 60_000}))).await;
    const MESSAGES: usize = 5;
    let mut ids = Vec::new();
    for i in 0..MESSAGES {
        ids.push(send(&app, "alice", &room, &format!("m{i}")).await);
    }
    let chat = |m: &Value| m["data"]["type"] == "CHAT";
    deliveries_of(&kit, chat, MESSAGES).await;
    notifier.signal("KILL");
    kit.admin("/delay", Some(json!({"ms": 0}))).await;
    let restarted = notifier_process(&app, &env);

    let pushes = deliveries_of(&kit, chat, 2 * MESSAGES).await;
    let mut by_message: BTreeMap<u64, Vec<Option<&str>>> = BTreeMap::new();
    for push in &pushes {
        let data = &push["message"]["data"];
        let id = data["messageId"]
            .as_str()
            .expect("id")
            .parse()
            .expect("numeric");
        by_message
            .entry(id)
            .or_default()
            .push(data["resent"].as_str());
    }
    let expected: BTreeMap<u64, Vec<Option<&str>>> = ids
        .iter()
        .map(|id| (id.parse().expect("numeric"), vec![None, Some("true")]))
        .collect();
    assert_eq!(
        by_message, expected,
        "each push once as sent, and once more marked resent: never an unmarked repeat"
    );
    drop(restarted);
    drop(notifier);
}

#[tokio::test]
async fn a_push_whose_answer_times_out_is_retried_marked_resent() {
    let (app, kit, _env, notifier, room) = carol_pushed_by_a_process(&[
        ("CHAT_NOTIFIER__REQUEST_TIMEOUT_MS", "300"),
        ("CHAT_NOTIFIER__MAX_ATTEMPTS", "3"),
    ])
    .await;
    // FCM takes every attempt but answers each after the notifier stopped waiting.
    kit.admin("/delay", Some(json!({"ms": 1_000}))).await;
    let id = send(&app, "alice", &room, "anyone there?").await;
    let pushes = deliveries_of(&kit, for_message(&id), 3).await;
    let marks: Vec<Option<&str>> = pushes
        .iter()
        .map(|push| push["message"]["data"]["resent"].as_str())
        .collect();
    assert_eq!(
        marks,
        [None, Some("true"), Some("true")],
        "the first attempt plain, every retry after an unanswered one marked"
    );
    drop(notifier);
}

#[tokio::test]
async fn a_bad_key_or_unreachable_token_endpoint_fails_at_start() {
    let app = TestApp::start().await;
    let kit = PushKit::start().await;
    let mut settings = kit.notifier_settings(&app.env);
    let bad_key = std::env::temp_dir().join(format!("bad-key-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(
        &bad_key,
        r#"{"type":"service_account","private_key":"nope"}"#,
    )
    .expect("write");
    settings.notifier.service_account_file = bad_key.clone();
    let error = notifier::run(settings.clone(), std::future::pending())
        .await
        .expect_err("a bad key must not start");
    let _ = std::fs::remove_file(&bad_key);
    assert!(
        error.to_string().contains(&bad_key.display().to_string()),
        "{error}"
    );

    let unreachable = PushKit::key_file_for("http://127.0.0.1:9/token");
    settings.notifier.service_account_file = unreachable.clone();
    let error = tokio::time::timeout(
        Duration::from_secs(30),
        notifier::run(settings, std::future::pending()),
    )
    .await
    .expect("fails quickly")
    .expect_err("no token, no start");
    let _ = std::fs::remove_file(&unreachable);
    assert!(error.to_string().contains("access token"), "{error}");
}
