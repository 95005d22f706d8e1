//! A room at the size limit against the real servers: 10,000 members, every count exact.
//! Read positions keep a CHAT's cost independent of how many members are away, so the room
//! answers like a small one.

use std::future::Future;
use std::time::{Duration, Instant};

use chat_tests::stomp::StompClient;
use chat_tests::TestApp;
use serde_json::{json, Value};

/// Members of the room: the edge's default `max_room_size`.
const MEMBERS: usize = 10_000;

/// Members invited per request: one body stays under the edge's 64 KiB limit.
const INVITE_CHUNK: usize = 2_500;

/// Polls `probe` until it returns `Some`, for up to 30 s.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `unreadCount` of message `id` in `user`'s view of the room's history.
async fn history_count(app: &TestApp, user: &str, room: &str, id: &str) -> Option<u64> {
    let (status, page) = app.get(user, &format!("/api/rooms/{room}/messages")).await;
    assert_eq!(status, 200, "{page}");
    page["messages"]
        .as_array()?
        .iter()
        .find(|m| m["messageId"] == id)?["unreadCount"]
        .as_u64()
}

/// The next MESSAGE whose body has `type`.
async fn next_of(client: &mut StompClient, kind: &str) -> Value {
    loop {
        let (_, body) = client.message().await;
        if body["type"] == kind {
            return body;
        }
    }
}

#[tokio::test]
async fn a_room_of_ten_thousand_counts_every_member_exactly() {
    let app = TestApp::start().await;
    let members: Vec<String> = (0..MEMBERS).map(|i| format!("m{i:05}")).collect();
    let (sender, watcher, reader) = (&members[0], &members[1], &members[5_000]);
    let started = Instant::now();
    let room = app.group(sender, &[watcher.as_str()]).await;
    for chunk in members[2..].chunks(INVITE_CHUNK) {
        let (status, body) = app
            .post(
                sender,
                &format!("/api/rooms/{room}/members"),
                json!({ "userIds": chunk }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, shown) = app.get(reader, &format!("/api/rooms/{room}")).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["members"].as_array().map(Vec::len), Some(MEMBERS));
    let (status, refused) = app
        .post(
            sender,
            &format!("/api/rooms/{room}/members"),
            json!({ "userIds": ["one-too-many"] }),
        )
        .await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (422, &json!("ROOM_TOO_LARGE"))
    );
    eprintln!(
        "room of {MEMBERS} built in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut watching = StompClient::connect(&app.base_url, &app.token(watcher)).await;
    watching
        .subscribe("r", &format!("/sub/rooms/{room}"), &[])
        .await;
    let (status, sent) = app
        .post(
            sender,
            &format!("/api/rooms/{room}/messages"),
            json!({"content": "to ten thousand"}),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    let id = sent["messageId"].as_str().expect("messageId").to_owned();
    let live = next_of(&mut watching, "CHAT").await;
    assert_eq!(
        live["unreadCount"],
        MEMBERS - 2,
        "everyone but the sender and the one present: {live}"
    );
    let count = eventually("the history count", || async {
        history_count(&app, reader, &room, &id).await
    })
    .await;
    assert_eq!(count, (MEMBERS - 2) as u64);
    let (status, missing) = app
        .get(watcher, &format!("/api/rooms/{room}/messages/{id}/unread"))
        .await;
    assert_eq!(status, 200, "{missing}");
    let missing: Vec<String> = serde_json::from_value(missing["userIds"].clone()).expect("userIds");
    assert_eq!(missing.len(), MEMBERS - 2);
    assert!(!missing.contains(sender) && !missing.contains(watcher));
    let (status, badge) = app.get(reader, "/api/users/me/unread").await;
    assert_eq!((status, badge["unreadCount"].as_u64()), (200, Some(1)));

    let entered = Instant::now();
    let mut reading = StompClient::connect(&app.base_url, &app.token(reader)).await;
    reading
        .subscribe("r", &format!("/sub/rooms/{room}"), &[])
        .await;
    let info = next_of(&mut watching, "INFO").await;
    eprintln!(
        "INFO of a member entering reached the room in {:.0} ms",
        entered.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(
        info,
        json!({"type": "INFO", "roomId": room, "userId": reader,
               "readCount": 1, "lastReadMessageId": id})
    );
    let count = eventually("the count after entering", || async {
        history_count(&app, watcher, &room, &id)
            .await
            .filter(|c| *c == (MEMBERS - 3) as u64)
    })
    .await;
    assert_eq!(count, (MEMBERS - 3) as u64);

    let (status, body) = app
        .delete(sender, &format!("/api/rooms/{room}/messages/{id}"))
        .await;
    assert!(status == 200 || status == 204, "{body}");
    eventually("the deleted message's count", || async {
        let (_, badge) = app.get(&members[9_999], "/api/users/me/unread").await;
        (badge["unreadCount"] == 0).then_some(())
    })
    .await;
    let (status, missing) = app
        .get(watcher, &format!("/api/rooms/{room}/messages/{id}/unread"))
        .await;
    assert_eq!((status, missing["userIds"].clone()), (200, json!([])));
}
