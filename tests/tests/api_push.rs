//! Push tokens and room mutes against the real servers: registering, listing, moving, capping
//! and removing device tokens, muting rooms, and every error contract of those endpoints.

use chat_tests::{send, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

const TOKENS: &str = "/api/users/me/push-tokens";

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().expect("error code")
}

async fn put(app: &TestApp, user: &str, path: &str, body: Value) -> (u16, Value) {
    app.call(Method::PUT, Some(user), path, Some(body)).await
}

async fn register(app: &TestApp, user: &str, token: &str, platform: &str) -> Value {
    let (status, body) = put(
        app,
        user,
        TOKENS,
        json!({"token": token, "platform": platform}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The user's tokens as `(token, platform)`, in the answered order.
async fn tokens(app: &TestApp, user: &str) -> Vec<(String, String)> {
    let (status, body) = app.get(user, TOKENS).await;
    assert_eq!(status, 200, "{body}");
    body["tokens"]
        .as_array()
        .expect("tokens array")
        .iter()
        .map(|t| {
            let field = |name: &str| t[name].as_str().expect(name).to_owned();
            (field("token"), field("platform"))
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(t, p)| ((*t).to_owned(), (*p).to_owned()))
        .collect()
}

/// `2026-11-25T14:35:50.123Z`: UTC, milliseconds.
fn assert_rfc3339_millis(value: &Value) {
    let text = value.as_str().expect("a time string");
    let bytes = text.as_bytes();
    assert_eq!(bytes.len(), 24, "{text}");
    assert_eq!(
        (bytes[10], bytes[19], bytes[23]),
        (b'T', b'.', b'Z'),
        "{text}"
    );
}

/// `muted` of `room` in the user's room list.
async fn listed_muted(app: &TestApp, user: &str, room: &str) -> Value {
    let (status, body) = app.get(user, "/api/rooms").await;
    assert_eq!(status, 200, "{body}");
    body["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .find(|r| r["roomId"] == room)
        .unwrap_or_else(|| panic!("{room} not listed: {body}"))["muted"]
        .clone()
}

async fn shown_muted(app: &TestApp, user: &str, room: &str) -> Value {
    let (status, body) = app.get(user, &format!("/api/rooms/{room}")).await;
    assert_eq!(status, 200, "{body}");
    body["muted"].clone()
}

/// The owner `push_token_owners` names for `token`.
async fn owner(app: &TestApp, token: &str) -> Option<String> {
    let cql = format!(
        "SELECT user_id FROM {}.push_token_owners WHERE device_token = ?",
        app.env.id
    );
    app.env
        .cassandra
        .query_unpaged(cql, (token,))
        .await
        .expect("owner query")
        .into_rows_result()
        .expect("rows")
        .maybe_first_row::<(Option<String>,)>()
        .expect("owner row")
        .and_then(|(user,)| user)
}

#[tokio::test]
async fn tokens_are_registered_listed_newest_first_and_re_registered() {
    let app = TestApp::start().await;
    let first = register(&app, "alice", "fcm:first", "android").await;
    assert_eq!(first["token"], "fcm:first");
    assert_eq!(first["platform"], "android");
    assert_rfc3339_millis(&first["updatedAt"]);
    assert_eq!(first.as_object().expect("object").len(), 3, "{first}");
    register(&app, "alice", "apns-second", "ios").await;

    let (status, body) = app.get("alice", TOKENS).await;
    assert_eq!(status, 200);
    let listed = body["tokens"].as_array().expect("tokens");
    assert_eq!(listed.len(), 2, "{body}");
    assert_eq!(
        listed[1], first,
        "a listed token is what registering answered"
    );
    assert_eq!(
        tokens(&app, "alice").await,
        pairs(&[("apns-second", "ios"), ("fcm:first", "android")])
    );

    // Registering again updates the platform and the time, answers the same way, adds nothing.
    let again = register(&app, "alice", "fcm:first", "web").await;
    assert_eq!(
        (&again["token"], &again["platform"]),
        (&json!("fcm:first"), &json!("web"))
    );
    assert_rfc3339_millis(&again["updatedAt"]);
    assert!(again["updatedAt"].as_str() > first["updatedAt"].as_str());
    assert_eq!(
        tokens(&app, "alice").await,
        pairs(&[("fcm:first", "web"), ("apns-second", "ios")])
    );
    register(&app, "alice", "fcm:first", "web").await;
    assert_eq!(tokens(&app, "alice").await.len(), 2);
    assert!(tokens(&app, "bob").await.is_empty(), "tokens are per user");
}

#[tokio::test]
async fn the_cap_replaces_the_least_recently_updated_token() {
    let app = TestApp::start_with(|s| s.edge.max_push_tokens_per_user = 2).await;
    register(&app, "alice", "a", "android").await;
    register(&app, "alice", "b", "ios").await;
    register(&app, "alice", "a", "android").await; // now b is the least recently updated
    register(&app, "alice", "c", "web").await;
    assert_eq!(
        tokens(&app, "alice").await,
        pairs(&[("c", "web"), ("a", "android")])
    );
    assert_eq!(
        owner(&app, "b").await,
        None,
        "a replaced token has no owner"
    );

    // Re-registering a token already held does not count against the cap.
    register(&app, "alice", "a", "android").await;
    assert_eq!(
        tokens(&app, "alice").await,
        pairs(&[("a", "android"), ("c", "web")])
    );
}

#[tokio::test]
async fn a_token_moves_to_the_user_who_registers_it() {
    let app = TestApp::start().await;
    register(&app, "alice", "shared", "android").await;
    register(&app, "alice", "alices", "android").await;
    assert_eq!(owner(&app, "shared").await.as_deref(), Some("alice"));

    register(&app, "bob", "shared", "ios").await;
    assert_eq!(tokens(&app, "alice").await, pairs(&[("alices", "android")]));
    assert_eq!(tokens(&app, "bob").await, pairs(&[("shared", "ios")]));
    assert_eq!(owner(&app, "shared").await.as_deref(), Some("bob"));

    // Alice cannot remove what is now Bob's.
    let (status, body) = app.delete("alice", &format!("{TOKENS}/shared")).await;
    assert_eq!((status, error_code(&body)), (404, "PUSH_TOKEN_NOT_FOUND"));
    assert_eq!(tokens(&app, "bob").await, pairs(&[("shared", "ios")]));
    assert_eq!(owner(&app, "shared").await.as_deref(), Some("bob"));
}

#[tokio::test]
async fn racing_registrations_leave_a_token_with_one_user() {
    let app = TestApp::start().await;
    for round in 0..8 {
        let token = format!("race-{round}");
        let body = |platform: &str| json!({"token": token, "platform": platform});
        let (a, b) = tokio::join!(
            put(&app, "alice", TOKENS, body("android")),
            put(&app, "bob", TOKENS, body("ios")),
        );
        assert_eq!((a.0, b.0), (200, 200), "{} / {}", a.1, b.1);
        let mut with_token = Vec::new();
        for user in ["alice", "bob"] {
            if tokens(&app, user).await.iter().any(|(t, _)| *t == token) {
                with_token.push(user.to_owned());
            }
        }
        assert_eq!(with_token.len(), 1, "{token} is held by {with_token:?}");
        assert_eq!(owner(&app, &token).await.as_ref(), with_token.first());
    }
}

#[tokio::test]
async fn users_remove_their_own_tokens() {
    let app = TestApp::start().await;
    register(&app, "alice", "mine", "web").await;
    register(&app, "alice", "kept", "web").await;
    register(&app, "bob", "bobs", "android").await;

    let (status, body) = app.delete("alice", &format!("{TOKENS}/mine")).await;
    assert_eq!((status, &body), (204, &Value::Null));
    assert_eq!(tokens(&app, "alice").await, pairs(&[("kept", "web")]));
    assert_eq!(owner(&app, "mine").await, None);

    for path in ["mine", "unknown", "bobs", "a%20b"] {
        let (status, body) = app.delete("alice", &format!("{TOKENS}/{path}")).await;
        assert_eq!(
            (status, error_code(&body)),
            (404, "PUSH_TOKEN_NOT_FOUND"),
            "{path}"
        );
    }
    assert_eq!(tokens(&app, "alice").await, pairs(&[("kept", "web")]));
    assert_eq!(tokens(&app, "bob").await, pairs(&[("bobs", "android")]));

    // A token with a `/` is removed through its percent-encoded form.
    register(&app, "alice", "x/y:z", "web").await;
    let (status, _) = app.delete("alice", &format!("{TOKENS}/x%2Fy:z")).await;
    assert_eq!(status, 204);
    assert_eq!(tokens(&app, "alice").await, pairs(&[("kept", "web")]));
}

#[tokio::test]
async fn bad_registrations_are_refused_and_store_nothing() {
    let app = TestApp::start().await;
    register(&app, "alice", "good", "android").await;
    let longest = "t".repeat(4096);
    let cases = [
        (
            json!({"token": "t1", "platform": "windows"}),
            "INVALID_PLATFORM",
        ),
        (
            json!({"token": "t1", "platform": "Android"}),
            "INVALID_PLATFORM",
        ),
        (json!({"token": "t1", "platform": ""}), "INVALID_PLATFORM"),
        (
            json!({"token": "", "platform": "ios"}),
            "INVALID_TOKEN_FORMAT",
        ),
        (
            json!({"token": format!("{longest}x"), "platform": "ios"}),
            "INVALID_TOKEN_FORMAT",
        ),
        (
            json!({"token": "a b", "platform": "ios"}),
            "INVALID_TOKEN_FORMAT",
        ),
        (
            json!({"token": " ab", "platform": "ios"}),
            "INVALID_TOKEN_FORMAT",
        ),
        (
            json!({"token": "ab\n", "platform": "ios"}),
            "INVALID_TOKEN_FORMAT",
        ),
        (
            json!({"token": "a\u{7}b", "platform": "ios"}),
            "INVALID_TOKEN_FORMAT",
        ),
        (json!({"token": "t1"}), "BAD_REQUEST"),
        (json!({"platform": "ios"}), "BAD_REQUEST"),
        (json!({"token": 7, "platform": "ios"}), "BAD_REQUEST"),
        (json!(["t1", "ios"]), "BAD_REQUEST"),
    ];
    for (body, code) in cases {
        let (status, answer) = put(&app, "alice", TOKENS, body.clone()).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert_eq!(error_code(&answer), code, "{body}");
        assert_eq!(
            answer["error"]["message"].as_str().map(str::is_empty),
            Some(false)
        );
    }
    let (status, answer) = send(
        app.request(Method::PUT, TOKENS)
            .bearer_auth(app.token("alice"))
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!((status, error_code(&answer)), (400, "BAD_REQUEST"));
    assert_eq!(tokens(&app, "alice").await, pairs(&[("good", "android")]));
    assert_eq!(owner(&app, "t1").await, None);

    // 4096 characters is still a token.
    let answer = register(&app, "alice", &longest, "ios").await;
    assert_eq!(answer["token"].as_str().map(str::len), Some(4096));
    assert_eq!(tokens(&app, "alice").await.len(), 2);
}

#[tokio::test]
async fn a_mute_shows_in_the_callers_room_list_and_room() {
    let app = TestApp::start().await;
    let room = app.group("alice", &["bob"]).await;
    let other = app.group("alice", &["bob"]).await;
    assert_eq!(listed_muted(&app, "alice", &room).await, json!(false));
    assert_eq!(shown_muted(&app, "alice", &room).await, json!(false));

    let path = format!("/api/rooms/{room}/mute");
    let (status, body) = put(&app, "alice", &path, json!({"muted": true})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"roomId": room, "muted": true}));
    let (status, _) = put(&app, "alice", &path, json!({"muted": true})).await;
    assert_eq!(status, 200, "muting again is harmless");
    assert_eq!(listed_muted(&app, "alice", &room).await, json!(true));
    assert_eq!(shown_muted(&app, "alice", &room).await, json!(true));
    assert_eq!(listed_muted(&app, "alice", &other).await, json!(false));
    assert_eq!(
        listed_muted(&app, "bob", &room).await,
        json!(false),
        "mutes are per user"
    );
    assert_eq!(shown_muted(&app, "bob", &room).await, json!(false));

    let (status, body) = put(&app, "alice", &path, json!({"muted": false})).await;
    assert_eq!(
        (status, body),
        (200, json!({"roomId": room, "muted": false}))
    );
    assert_eq!(listed_muted(&app, "alice", &room).await, json!(false));
    assert_eq!(shown_muted(&app, "alice", &room).await, json!(false));

    // Rooms answered by writes carry no `muted`, like `unreadCount`.
    let (_, created) = app
        .post(
            "alice",
            "/api/rooms",
            json!({"type": "DIRECT", "userIds": ["bob"]}),
        )
        .await;
    assert!(created.get("muted").is_none(), "{created}");
}

#[tokio::test]
async fn only_members_mute_a_room() {
    let app = TestApp::start().await;
    let room = app.group("alice", &["bob"]).await;
    let path = format!("/api/rooms/{room}/mute");
    let (status, body) = put(&app, "carol", &path, json!({"muted": true})).await;
    assert_eq!((status, error_code(&body)), (403, "NOT_A_MEMBER"));

    let unknown = format!("/api/rooms/{}/mute", uuid::Uuid::new_v4());
    for target in [unknown.as_str(), "/api/rooms/not-a-uuid/mute"] {
        let (status, body) = put(&app, "alice", target, json!({"muted": true})).await;
        assert_eq!(
            (status, error_code(&body)),
            (404, "ROOM_NOT_FOUND"),
            "{target}"
        );
    }
    for bad in [
        json!({"muted": "yes"}),
        json!({}),
        json!({"muted": null}),
        json!([true]),
    ] {
        let (status, body) = put(&app, "alice", &path, bad.clone()).await;
        assert_eq!((status, error_code(&body)), (400, "BAD_REQUEST"), "{bad}");
    }
    assert_eq!(listed_muted(&app, "alice", &room).await, json!(false));

    // After leaving, the room is no longer the caller's to mute.
    let (status, _) = app
        .delete("bob", &format!("/api/rooms/{room}/members/me"))
        .await;
    assert_eq!(status, 204);
    let (status, body) = put(&app, "bob", &path, json!({"muted": true})).await;
    assert_eq!((status, error_code(&body)), (403, "NOT_A_MEMBER"));
}

#[tokio::test]
async fn the_tables_hold_what_the_notifier_reads() {
    let app = TestApp::start().await;
    let room = app.group("alice", &["bob"]).await;
    register(&app, "alice", "fcm:1", "android").await;
    let (status, _) = put(
        &app,
        "alice",
        &format!("/api/rooms/{room}/mute"),
        json!({"muted": true}),
    )
    .await;
    assert_eq!(status, 200);

    let ks = &app.env.id;
    let session = &app.env.cassandra;
    let rows = session
        .query_unpaged(
            format!("SELECT device_token, platform FROM {ks}.push_tokens WHERE user_id = ?"),
            ("alice",),
        )
        .await
        .expect("push_tokens")
        .into_rows_result()
        .expect("rows");
    let listed: Vec<(String, Option<String>)> = rows
        .rows()
        .expect("typed rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(listed, [("fcm:1".to_owned(), Some("android".to_owned()))]);
    assert_eq!(owner(&app, "fcm:1").await.as_deref(), Some("alice"));

    let room_uuid = uuid::Uuid::parse_str(&room).expect("uuid");
    let muted = session
        .query_unpaged(
            format!("SELECT muted FROM {ks}.room_mutes WHERE user_id = ? AND room_id = ?"),
            ("alice", room_uuid),
        )
        .await
        .expect("room_mutes")
        .into_rows_result()
        .expect("rows")
        .maybe_first_row::<(Option<bool>,)>()
        .expect("row");
    assert_eq!(muted, Some((Some(true),)));
}

#[tokio::test]
async fn push_and_mute_endpoints_need_a_token() {
    let app = TestApp::start().await;
    let room = app.group("alice", &["bob"]).await;
    let mute = format!("/api/rooms/{room}/mute");
    let calls = [
        (
            Method::PUT,
            TOKENS.to_owned(),
            Some(json!({"token": "t", "platform": "ios"})),
        ),
        (Method::GET, TOKENS.to_owned(), None),
        (Method::DELETE, format!("{TOKENS}/t"), None),
        (Method::PUT, mute, Some(json!({"muted": true}))),
    ];
    for (method, path, body) in calls {
        let (status, answer) = app.call(method.clone(), None, &path, body.clone()).await;
        assert_eq!(
            (status, error_code(&answer)),
            (401, "UNAUTHORIZED"),
            "{method} {path}"
        );
        let mut request = app.request(method.clone(), &path).bearer_auth("not-a-jwt");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let (status, answer) = send(request).await;
        assert_eq!(
            (status, error_code(&answer)),
            (401, "INVALID_TOKEN"),
            "{method} {path}"
        );
    }
    assert!(tokens(&app, "alice").await.is_empty());
    assert_eq!(listed_muted(&app, "alice", &room).await, json!(false));
}
