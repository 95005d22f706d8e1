//! Unread counts over the HTTP API against the real servers: per room in the room list, the
//! total badge, per message in history, who has not read a message, and how leaves and deletes
//! change them. The receipts worker applies events a little after the edge answers, so every
//! expectation about counts is polled until it holds (or a deadline passes).

use std::time::{Duration, Instant};

use chat_tests::TestApp;
use reqwest::Method;
use serde_json::{json, Value};

/// How long the receipts worker may take to show an event in the counts.
const DEADLINE: Duration = Duration::from_secs(10);

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().expect("error code")
}

/// Sends a CHAT as `user`; returns its message id.
async fn say(app: &TestApp, user: &str, room: &str, content: &str) -> String {
    let (status, message) = app
        .post(
            user,
            &format!("/api/rooms/{room}/messages"),
            json!({"content": content}),
        )
        .await;
    assert_eq!(status, 201, "{message}");
    message["messageId"]
        .as_str()
        .expect("message id")
        .to_owned()
}

/// GETs `path` as `user` until `holds` accepts the 200 body; panics after [`DEADLINE`].
async fn eventually(
    app: &TestApp,
    user: &str,
    path: &str,
    holds: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let (status, body) = app.get(user, path).await;
        assert_eq!(status, 200, "GET {path} as {user}: {body}");
        if holds(&body) {
            return body;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "GET {path} as {user} did not reach the expected state within {DEADLINE:?}; last: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `unreadCount` of `room` in a `GET /api/rooms` body (`None` when the room is not listed).
fn listed_count(list: &Value, room: &str) -> Option<u64> {
    list["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .find(|r| r["roomId"] == room)
        .map(|r| r["unreadCount"].as_u64().expect("unreadCount is a number"))
}

/// Waits until `user`'s room list shows `count` unread in `room`.
async fn room_count_becomes(app: &TestApp, user: &str, room: &str, count: u64) {
    eventually(app, user, "/api/rooms", |list| {
        listed_count(list, room) == Some(count)
    })
    .await;
}

/// Waits until `user`'s badge is `count`.
async fn badge_becomes(app: &TestApp, user: &str, count: u64) {
    eventually(app, user, "/api/users/me/unread", |body| {
        body == &json!({"unreadCount": count})
    })
    .await;
}

/// The entry `id` of `room`'s latest history page, as `user` sees it.
fn entry<'a>(history: &'a Value, id: &str) -> &'a Value {
    history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["messageId"] == id)
        .unwrap_or_else(|| panic!("message {id} not in {history}"))
}

async fn unread_of(app: &TestApp, user: &str, room: &str, message: &str) -> (u16, Value) {
    app.get(
        user,
        &format!("/api/rooms/{room}/messages/{message}/unread"),
    )
    .await
}

#[tokio::test]
async fn messages_are_unread_for_every_member_but_the_sender() {
    let app = TestApp::start().await;
    let room = app.group("alice", &["bob", "carol"]).await;
    let first = say(&app, "alice", &room, "one").await;
    let second = say(&app, "alice", &room, "two").await;

    for user in ["bob", "carol"] {
        room_count_becomes(&app, user, &room, 2).await;
        badge_becomes(&app, user, 2).await;
        let (status, shown) = app.get(user, &format!("/api/rooms/{room}")).await;
        assert_eq!((status, &shown["unreadCount"]), (200, &json!(2)), "{shown}");
    }
    // Both CHATs are applied by now (bob saw 2), and the sender never has her own unread.
    let (_, list) = app.get("alice", "/api/rooms").await;
    assert_eq!(listed_count(&list, &room), Some(0), "{list}");
    let (_, shown) = app.get("alice", &format!("/api/rooms/{room}")).await;
    assert_eq!(shown["unreadCount"], 0);
    let (status, badge) = app.get("alice", "/api/users/me/unread").await;
    assert_eq!((status, badge), (200, json!({"unreadCount": 0})));

    let (status, history) = app
        .get("alice", &format!("/api/rooms/{room}/messages"))
        .await;
    assert_eq!(status, 200, "{history}");
    let entries = history["messages"].as_array().expect("messages");
    assert_eq!(entries.len(), 3, "{history}");
    for id in [&first, &second] {
        assert_eq!(entry(&history, id)["unreadCount"], 2, "{history}");
    }
    let invite = entries.last().expect("invite entry");
    assert_eq!(invite["type"], "INVITE");
    assert!(
        invite.get("unreadCount").is_none(),
        "system entries have no unreadCount: {invite}"
    );

    for id in [&first, &second] {
        let (status, body) = unread_of(&app, "alice", &room, id).await;
        assert_eq!((status, body), (200, json!({"userIds": ["bob", "carol"]})));
    }
    let invite_id = invite["messageId"].as_str().expect("id");
    let (status, body) = unread_of(&app, "bob", &room, invite_id).await;
    assert_eq!((status, body), (200, json!({"userIds": []})));
}

#[tokio::test]
async fn the_badge_sums_every_room() {
    let app = TestApp::start().await;
    let housemates = app.group("alice", &["bob", "carol"]).await;
    let (status, direct) = app
        .post(
            "carol",
            "/api/rooms",
            json!({"type": "DIRECT", "userIds": ["bob"]}),
        )
        .await;
    assert_eq!(status, 201, "{direct}");
    let direct = direct["roomId"].as_str().expect("room id").to_owned();
    say(&app, "alice", &housemates, "a").await;
    say(&app, "carol", &housemates, "b").await;
    say(&app, "carol", &direct, "c").await;

    room_count_becomes(&app, "bob", &housemates, 2).await;
    room_count_becomes(&app, "bob", &direct, 1).await;
    badge_becomes(&app, "bob", 3).await;
    room_count_becomes(&app, "carol", &housemates, 1).await;
    let (_, list) = app.get("carol", "/api/rooms").await;
    assert_eq!(listed_count(&list, &direct), Some(0), "{list}");
    badge_becomes(&app, "carol", 1).await;
}

#[tokio::test]
async fn who_has_not_read_is_for_members_and_messages_of_the_room() {
    let app = TestApp::start().await;
    let room = app.group("alice", &["bob"]).await;
    let other = app.group("alice", &[]).await;
    let message = say(&app, "alice", &room, "hi").await;
    let elsewhere = say(&app, "alice", &other, "not here").await;
    eventually(
        &app,
        "alice",
        &format!("/api/rooms/{room}/messages/{message}/unread"),
        |body| body == &json!({"userIds": ["bob"]}),
    )
    .await;

    let (status, body) = unread_of(&app, "mallory", &room, &message).await;
    assert_eq!((status, error_code(&body)), (403, "NOT_A_MEMBER"));
    for missing in [
        "999999",
        &elsewhere,
        "abc",
        "0",
        "-1",
        "1.5",
        "99999999999999999999",
    ] {
        let (status, body) = unread_of(&app, "alice", &room, missing).await;
        assert_eq!(
            (status, error_code(&body)),
            (404, "MESSAGE_NOT_FOUND"),
            "message id {missing:?}: {body}"
        );
    }
    let unknown_room = uuid::Uuid::new_v4().to_string();
    for bad_room in [unknown_room.as_str(), "not-a-room"] {
        let (status, body) = unread_of(&app, "alice", bad_room, &message).await;
        assert_eq!(
            (status, error_code(&body)),
            (404, "ROOM_NOT_FOUND"),
            "room {bad_room:?}: {body}"
        );
    }
    for path in [
        format!("/api/rooms/{room}/messages/{message}/unread"),
        "/api/users/me/unread".to_owned(),
    ] {
        let (status, body) = app.call(Method::GET, None, &path, None).await;
        assert_eq!((status, error_code(&body)), (401, "UNAUTHORIZED"), "{path}");
    }
}

#[tokio::test]
async fn a_leave_reads_everything_for_the_leaver() {
    let app = TestApp::start().await;
    let room = app.group("alice", &["bob", "carol"]).await;
    let first = say(&app, "alice", &room, "one").await;
    let second = say(&app, "alice", &room, "two").await;
    badge_becomes(&app, "bob", 2).await;

    let (status, _) = app
        .delete("bob", &format!("/api/rooms/{room}/members/me"))
        .await;
    assert_eq!(status, 204);

    let history = eventually(
        &app,
        "carol",
        &format!("/api/rooms/{room}/messages"),
        |history| {
            [&first, &second]
                .iter()
                .all(|id| entry(history, id)["unreadCount"] == 1)
        },
    )
    .await;
    let leave = &history["messages"][0];
    assert_eq!(leave["type"], "LEAVE", "{history}");
    assert!(leave.get("unreadCount").is_none(), "{leave}");
    badge_becomes(&app, "bob", 0).await;
    let (_, list) = app.get("bob", "/api/rooms").await;
    assert_eq!(
        listed_count(&list, &room),
        None,
        "a left room is not listed"
    );

    for id in [&first, &second] {
        let (status, body) = unread_of(&app, "alice", &room, id).await;
        assert_eq!((status, body), (200, json!({"userIds": ["carol"]})));
    }
    room_count_becomes(&app, "carol", &room, 2).await;
    let (status, body) = unread_of(&app, "bob", &room, &first).await;
    assert_eq!((status, error_code(&body)), (403, "NOT_A_MEMBER"));
}

#[tokio::test]
async fn a_deleted_message_is_no_longer_unread() {
    let app = TestApp::start().await;
    let room = app.group("alice", &["bob", "carol"]).await;
    let doomed = say(&app, "alice", &room, "oops").await;
    let kept = say(&app, "alice", &room, "fine").await;
    room_count_becomes(&app, "carol", &room, 2).await;

    let (status, tombstone) = app
        .delete("alice", &format!("/api/rooms/{room}/messages/{doomed}"))
        .await;
    assert_eq!((status, &tombstone["deleted"]), (200, &json!(true)));

    room_count_becomes(&app, "carol", &room, 1).await;
    badge_becomes(&app, "carol", 1).await;
    room_count_becomes(&app, "bob", &room, 1).await;
    let (status, body) = unread_of(&app, "carol", &room, &doomed).await;
    assert_eq!((status, body), (200, json!({"userIds": []})));
    let (status, body) = unread_of(&app, "carol", &room, &kept).await;
    assert_eq!((status, body), (200, json!({"userIds": ["bob", "carol"]})));

    let (status, history) = app
        .get("carol", &format!("/api/rooms/{room}/messages"))
        .await;
    assert_eq!(status, 200, "{history}");
    let gone = entry(&history, &doomed);
    assert_eq!(
        (&gone["deleted"], &gone["unreadCount"]),
        (&json!(true), &json!(0))
    );
    assert_eq!(entry(&history, &kept)["unreadCount"], 2, "{history}");
}
