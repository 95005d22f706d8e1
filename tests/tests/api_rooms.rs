//! The rooms HTTP API against the real servers: rooms, membership, and every error contract.

use chat_tests::{send, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

fn members(room: &Value) -> Vec<String> {
    room["members"]
        .as_array()
        .expect("members array")
        .iter()
        .map(|m| m.as_str().expect("member id").to_owned())
        .collect()
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().expect("error code")
}

async fn history(app: &TestApp, user: &str, room: &str) -> Vec<Value> {
    let (status, body) = app.get(user, &format!("/api/rooms/{room}/messages")).await;
    assert_eq!(status, 200, "{body}");
    body["messages"].as_array().expect("messages").clone()
}

#[tokio::test]
async fn a_pair_has_exactly_one_direct_room() {
    let app = TestApp::start().await;
    let (status, room) = app
        .post(
            "alice",
            "/api/rooms",
            json!({"type": "DIRECT", "userIds": ["bob"]}),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    assert_eq!(room["type"], "DIRECT");
    assert_eq!(members(&room), ["alice", "bob"]);
    assert_eq!(room["lastMessage"], Value::Null);
    let id = room["roomId"].as_str().expect("room id").to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok());

    let (status, again) = app
        .post(
            "alice",
            "/api/rooms",
            json!({"type": "DIRECT", "userIds": ["bob"]}),
        )
        .await;
    assert_eq!((status, again["roomId"].as_str()), (200, Some(id.as_str())));
    let (status, from_bob) = app
        .post(
            "bob",
            "/api/rooms",
            json!({"type": "DIRECT", "userIds": ["alice"]}),
        )
        .await;
    assert_eq!(
        (status, from_bob["roomId"].as_str()),
        (200, Some(id.as_str()))
    );
    assert!(
        history(&app, "bob", &id).await.is_empty(),
        "a DIRECT room starts empty"
    );
}

#[tokio::test]
async fn racing_direct_creations_make_one_room() {
    let app = TestApp::start().await;
    let (a, b) = tokio::join!(
        app.post(
            "alice",
            "/api/rooms",
            json!({"type": "DIRECT", "userIds": ["bob"]})
        ),
        app.post(
            "bob",
            "/api/rooms",
            json!({"type": "DIRECT", "userIds": ["alice"]})
        ),
    );
    assert_eq!(a.1["roomId"], b.1["roomId"], "{} / {}", a.1, b.1);
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 201]);
    assert_eq!(app.stream_len().await, 1, "one RoomCreated in the log");
}

#[tokio::test]
async fn a_group_starts_with_its_invite_entry() {
    let app = TestApp::start().await;
    let (status, room) = app
        .post(
            "alice",
            "/api/rooms",
            json!({"type": "GROUP", "name": "Housemates", "userIds": ["bob", "carol", "bob"]}),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    assert_eq!(room["name"], "Housemates");
    assert_eq!(members(&room), ["alice", "bob", "carol"]);
    let id = room["roomId"].as_str().expect("room id");
    let entries = history(&app, "carol", id).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["type"], "INVITE");
    assert_eq!(entries[0]["senderId"], "alice");
    assert_eq!(entries[0]["content"], Value::Null);
    assert_eq!(entries[0]["userIds"], json!(["bob", "carol"]));

    let (status, shown) = app.get("bob", &format!("/api/rooms/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(shown["roomId"], id);
}

#[tokio::test]
async fn room_size_is_capped() {
    let app = TestApp::start_with(|s| s.edge.max_room_size = 3).await;
    let (status, body) = app
        .post(
            "alice",
            "/api/rooms",
            json!({"type": "GROUP", "name": "big", "userIds": ["b", "c", "d"]}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (422, "ROOM_TOO_LARGE"));

    let (_, room) = app
        .post(
            "alice",
            "/api/rooms",
            json!({"type": "GROUP", "name": "g", "userIds": ["b"]}),
        )
        .await;
    let path = format!(
        "/api/rooms/{}/members",
        room["roomId"].as_str().expect("id")
    );
    let (status, body) = app
        .post("alice", &path, json!({"userIds": ["c", "d"]}))
        .await;
    assert_eq!((status, error_code(&body)), (422, "ROOM_TOO_LARGE"));
    let (status, body) = app.post("alice", &path, json!({"userIds": ["c"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(members(&body), ["alice", "b", "c"]);
}

#[tokio::test]
async fn invite_adds_members_and_a_history_entry() {
    let app = TestApp::start().await;
    let (_, room) = app
        .post(
            "alice",
            "/api/rooms",
            json!({"type": "GROUP", "name": "g", "userIds": ["bob"]}),
        )
        .await;
    let id = room["roomId"].as_str().expect("id");
    let (status, body) = app
        .post(
            "bob",
            &format!("/api/rooms/{id}/members"),
            json!({"userIds": ["carol", "alice"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(members(&body), ["alice", "bob", "carol"]);
    let entries = history(&app, "carol", id).await;
    assert_eq!(entries[0]["type"], "INVITE");
    assert_eq!(entries[0]["senderId"], "bob");
    assert_eq!(entries[0]["userIds"], json!(["carol"]));
    let (status, list) = app.get("carol", "/api/rooms").await;
    assert_eq!(status, 200);
    assert_eq!(list["rooms"][0]["roomId"], id);

    let (_, direct) = app
        .post(
            "alice",
            "/api/rooms",
            json!({"type": "DIRECT", "userIds": ["bob"]}),
        )
        .await;
    let path = format!(
        "/api/rooms/{}/members",
        direct["roomId"].as_str().expect("id")
    );
    let (status, body) = app
        .post("alice", &path, json!({"userIds": ["carol"]}))
        .await;
    assert_eq!((status, error_code(&body)), (409, "DIRECT_ROOM"));
}

#[tokio::test]
async fn concurrent_invites_all_land() {
    let app = TestApp::start().await;
    let (_, room) = app
        .post(
            "alice",
            "/api/rooms",
            json!({"type": "GROUP", "name": "g", "userIds": []}),
        )
        .await;
    let path = format!(
        "/api/rooms/{}/members",
        room["roomId"].as_str().expect("id")
    );
    let invites = (0..8).map(|i| app.post("alice", &path, json!({"userIds": [format!("u{i}")]})));
    for (status, body) in futures::future::join_all(invites).await {
        assert_eq!(status, 200, "{body}");
    }
    let (_, shown) = app
        .get(
            "alice",
            &format!("/api/rooms/{}", room["roomId"].as_str().expect("id")),
        )
        .await;
    assert_eq!(members(&shown).len(), 9, "{shown}");
}

#[tokio::test]
async fn leaving_removes_access_and_a_direct_room_can_be_restored() {
    let app = TestApp::start().await;
    let (_, room) = app
        .post(
            "alice",
            "/api/rooms",
            json!({"type": "DIRECT", "userIds": ["bob"]}),
        )
        .await;
    let id = room["roomId"].as_str().expect("id").to_owned();
    let (status, _) = app
        .post(
            "alice",
            &format!("/api/rooms/{id}/messages"),
            json!({"content": "before"}),
        )
        .await;
    assert_eq!(status, 201);

    let (status, body) = app
        .delete("bob", &format!("/api/rooms/{id}/members/me"))
        .await;
    assert_eq!((status, &body), (204, &Value::Null));
    let (status, body) = app.get("bob", &format!("/api/rooms/{id}")).await;
    assert_eq!((status, error_code(&body)), (403, "NOT_A_MEMBER"));
    let (_, list) = app.get("bob", "/api/rooms").await;
    assert_eq!(list["rooms"], json!([]));
    let (status, body) = app
        .delete("bob", &format!("/api/rooms/{id}/members/me"))
        .await;
    assert_eq!((status, error_code(&body)), (403, "NOT_A_MEMBER"));
    let entries = history(&app, "alice", &id).await;
    assert_eq!(entries[0]["type"], "LEAVE");
    assert_eq!(entries[0]["senderId"], "bob");

    let (status, again) = app
        .post(
            "alice",
            "/api/rooms",
            json!({"type": "DIRECT", "userIds": ["bob"]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["roomId"], id.as_str());
    assert_eq!(members(&again), ["alice", "bob"]);
    let entries = history(&app, "bob", &id).await;
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        kinds,
        ["INVITE", "LEAVE", "CHAT"],
        "earlier history is kept"
    );
    assert_eq!(entries[0]["userIds"], json!(["bob"]));
    assert_eq!(entries[2]["content"], "before");
}

#[tokio::test]
async fn the_room_list_is_ordered_by_activity() {
    let app = TestApp::start().await;
    let mut ids = Vec::new();
    for other in ["bob", "carol", "dave"] {
        let (_, room) = app
            .post(
                "alice",
                "/api/rooms",
                json!({"type": "DIRECT", "userIds": [other]}),
            )
            .await;
        ids.push(room["roomId"].as_str().expect("id").to_owned());
    }
    let (status, _) = app
        .post(
            "alice",
            &format!("/api/rooms/{}/messages", ids[0]),
            json!({"content": "hi bob"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, list) = app.get("alice", "/api/rooms").await;
    assert_eq!(status, 200);
    let rooms = list["rooms"].as_array().expect("rooms");
    let order: Vec<&str> = rooms
        .iter()
        .map(|r| r["roomId"].as_str().expect("id"))
        .collect();
    assert_eq!(order, [ids[0].as_str(), ids[2].as_str(), ids[1].as_str()]);
    assert_eq!(rooms[0]["lastMessage"]["content"], "hi bob");
    assert_eq!(rooms[1]["lastMessage"], Value::Null);
    assert!(rooms[0]["updatedAt"].as_str().expect("time").ends_with('Z'));
}

#[tokio::test]
async fn tokens_are_checked() {
    let app = TestApp::start().await;
    let (status, body) = app.call(Method::GET, None, "/api/rooms", None).await;
    assert_eq!((status, error_code(&body)), (401, "UNAUTHORIZED"));

    let (status, body) = send(
        app.request(Method::GET, "/api/rooms")
            .bearer_auth("garbage"),
    )
    .await;
    assert_eq!((status, error_code(&body)), (401, "INVALID_TOKEN"));

    let user = chat_tests::user("alice");
    let expired = edge::auth::mint(
        &app.edge_settings.jwt_secret,
        &user,
        std::time::Duration::ZERO,
    )
    .expect("mint");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body) = send(app.request(Method::GET, "/api/rooms").bearer_auth(expired)).await;
    assert_eq!((status, error_code(&body)), (401, "TOKEN_EXPIRED"));

    let forged = edge::auth::mint("another-secret", &user, std::time::Duration::from_secs(60))
        .expect("mint");
    let (status, body) = send(
        app.request(Method::POST, "/api/rooms")
            .bearer_auth(forged)
            .json(&json!({"type": "GROUP", "name": "x"})),
    )
    .await;
    assert_eq!((status, error_code(&body)), (401, "INVALID_TOKEN"));
    assert_eq!(app.stream_len().await, 0, "a refused write appends nothing");
}

#[tokio::test]
async fn unknown_rooms_and_non_members_are_refused_without_appending() {
    let app = TestApp::start().await;
    let (_, room) = app
        .post(
            "alice",
            "/api/rooms",
            json!({"type": "GROUP", "name": "g", "userIds": ["bob"]}),
        )
        .await;
    let id = room["roomId"].as_str().expect("id");
    let before = app.stream_len().await;

    let unknown = uuid::Uuid::new_v4();
    for path in [
        format!("/api/rooms/{unknown}"),
        format!("/api/rooms/{unknown}/messages"),
        "/api/rooms/not-a-uuid".to_owned(),
    ] {
        let (status, body) = app.get("alice", &path).await;
        assert_eq!(
            (status, error_code(&body)),
            (404, "ROOM_NOT_FOUND"),
            "{path}"
        );
    }
    let (status, body) = app
        .post(
            "alice",
            &format!("/api/rooms/{unknown}/messages"),
            json!({"content": "x"}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (404, "ROOM_NOT_FOUND"));

    let calls = [
        (Method::GET, format!("/api/rooms/{id}"), None),
        (Method::GET, format!("/api/rooms/{id}/messages"), None),
        (
            Method::POST,
            format!("/api/rooms/{id}/messages"),
            Some(json!({"content": "x"})),
        ),
        (
            Method::POST,
            format!("/api/rooms/{id}/members"),
            Some(json!({"userIds": ["eve"]})),
        ),
        (Method::DELETE, format!("/api/rooms/{id}/members/me"), None),
        (Method::DELETE, format!("/api/rooms/{id}/messages/1"), None),
    ];
    for (method, path, body) in calls {
        let (status, answer) = app.call(method.clone(), Some("mallory"), &path, body).await;
        assert_eq!(
            (status, error_code(&answer)),
            (403, "NOT_A_MEMBER"),
            "{method} {path}"
        );
    }
    assert_eq!(app.stream_len().await, before);
}

#[tokio::test]
async fn malformed_create_requests_are_400() {
    let app = TestApp::start().await;
    let cases = [
        json!({"type": "TRIO", "userIds": ["bob"]}),
        json!({"type": "DIRECT", "userIds": []}),
        json!({"type": "DIRECT", "userIds": ["bob", "carol"]}),
        json!({"type": "DIRECT", "userIds": ["alice"]}),
        json!({"type": "DIRECT", "userIds": ["bad id!"]}),
        json!({"type": "GROUP", "name": "", "userIds": ["bob"]}),
        json!({"userIds": ["bob"]}),
        json!([1, 2]),
    ];
    for body in cases {
        let (status, answer) = app.post("alice", "/api/rooms", body.clone()).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert!(answer["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let (status, answer) = send(
        app.request(Method::POST, "/api/rooms")
            .bearer_auth(app.token("alice"))
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!((status, error_code(&answer)), (400, "BAD_REQUEST"));
    assert_eq!(app.stream_len().await, 0);
}
