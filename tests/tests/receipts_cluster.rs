//! The read state on a Redis Cluster, against real servers: a private three-primary cluster
//! holds the receipts state of rooms spread over its slots, and every count answers as on a
//! single Redis; `receipts rebuild` finds and recreates the state on every primary.

use std::future::Future;
use std::time::{Duration, Instant};

use chat_tests::redis_cluster::RedisCluster;
use chat_tests::stomp::StompClient;
use chat_tests::{TestApp, TestEnv};
use serde_json::{json, Value};

/// Rooms of the test: enough that every primary holds some.
const ROOMS: usize = 12;

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

/// Waits until `user`'s badge is `expected`.
async fn badge_is(app: &TestApp, user: &str, expected: u64) {
    eventually(&format!("{user}'s badge {expected}"), || async {
        let (status, body) = app.get(user, "/api/users/me/unread").await;
        (status == 200 && body["unreadCount"] == expected).then_some(())
    })
    .await;
}

/// `user`'s unread count per room id, from the room list.
async fn room_counts(app: &TestApp, user: &str) -> Vec<(String, u64)> {
    let (status, body) = app.get(user, "/api/rooms").await;
    assert_eq!(status, 200, "{body}");
    let mut counts: Vec<(String, u64)> = body["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .map(|r| {
            let id = r["roomId"].as_str().expect("roomId").to_owned();
            (id, r["unreadCount"].as_u64().expect("unreadCount"))
        })
        .collect();
    counts.sort();
    counts
}

/// The `unreadCount` of every CHAT of the room, oldest first.
async fn history_counts(app: &TestApp, user: &str, room: &str) -> Vec<u64> {
    let (status, page) = app.get(user, &format!("/api/rooms/{room}/messages")).await;
    assert_eq!(status, 200, "{page}");
    let mut counts: Vec<u64> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["type"] == "CHAT")
        .map(|m| m["unreadCount"].as_u64().expect("unreadCount"))
        .collect();
    counts.reverse();
    counts
}

/// The next MESSAGE whose body has `type` and is about `user`.
async fn next_of(client: &mut StompClient, kind: &str, user: &str) -> Value {
    loop {
        let (_, body) = client.message().await;
        if body["type"] == kind && (body["userId"] == user || body["senderId"] == user) {
            return body;
        }
    }
}

#[tokio::test]
async fn counts_on_a_redis_cluster_answer_as_on_one_server() {
    let cluster = RedisCluster::start(3).await;
    let env = TestEnv::new().await.on_redis(cluster.settings()).await;
    let mut app = TestApp::start_in(env, |_| {}).await;
    let mut rooms = Vec::new();
    for _ in 0..ROOMS {
        rooms.push(app.group("alice", &["bob", "carol"]).await);
    }
    let mut alice = StompClient::connect(&app.base_url, &app.token("alice")).await;
    for (i, room) in rooms.iter().enumerate().take(ROOMS / 2) {
        alice
            .subscribe(&format!("r{i}"), &format!("/sub/rooms/{room}"), &[])
            .await;
    }
    let mut bob = StompClient::connect(&app.base_url, &app.token("bob")).await;
    bob.subscribe("r", &format!("/sub/rooms/{}", rooms[0]), &[])
        .await;
    let mut ids = Vec::new();
    for (i, room) in rooms.iter().enumerate() {
        let mut sent = Vec::new();
        for n in 0..=i {
            let (status, body) = app
                .post(
                    "alice",
                    &format!("/api/rooms/{room}/messages"),
                    json!({"content": format!("m{n}")}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            sent.push(body["messageId"].as_str().expect("id").to_owned());
        }
        ids.push(sent);
    }
    let total: u64 = (1..=ROOMS as u64).sum();
    badge_is(&app, "carol", total).await;
    badge_is(&app, "bob", total - 1).await;
    let mut expected: Vec<(String, u64)> = rooms
        .iter()
        .enumerate()
        .map(|(i, room)| (room.clone(), if i == 0 { 0 } else { i as u64 + 1 }))
        .collect();
    expected.sort();
    assert_eq!(room_counts(&app, "bob").await, expected);
    assert_eq!(history_counts(&app, "carol", &rooms[0]).await, [1]);
    assert_eq!(history_counts(&app, "carol", &rooms[3]).await, [2; 4]);
    let (status, missing) = app
        .get(
            "alice",
            &format!("/api/rooms/{}/messages/{}/unread", rooms[3], ids[3][1]),
        )
        .await;
    assert_eq!(
        (status, missing["userIds"].clone()),
        (200, json!(["bob", "carol"]))
    );

    let mut carol = StompClient::connect(&app.base_url, &app.token("carol")).await;
    carol
        .subscribe("r", &format!("/sub/rooms/{}", rooms[5]), &[])
        .await;
    let info = next_of(&mut alice, "INFO", "carol").await;
    assert_eq!(
        (
            &info["userId"],
            &info["readCount"],
            &info["lastReadMessageId"]
        ),
        (&json!("carol"), &json!(6), &json!(ids[5][5]))
    );
    badge_is(&app, "carol", total - 6).await;
    let (status, body) = app
        .delete(
            "alice",
            &format!("/api/rooms/{}/messages/{}", rooms[4], ids[4][0]),
        )
        .await;
    assert!(status == 200 || status == 204, "{body}");
    badge_is(&app, "carol", total - 7).await;
    badge_is(&app, "bob", total - 2).await;
    let (status, body) = app
        .delete("bob", &format!("/api/rooms/{}/members/me", rooms[3]))
        .await;
    assert!(status == 200 || status == 204, "{body}");
    let leave = next_of(&mut alice, "LEAVE", "bob").await;
    assert_eq!(
        leave["readCount"],
        json!(4),
        "bob had all four unread: {leave}"
    );
    badge_is(&app, "bob", total - 2 - 4).await;
    let before = (
        room_counts(&app, "bob").await,
        room_counts(&app, "carol").await,
        history_counts(&app, "carol", &rooms[9]).await,
    );

    app.stop_receipts().await;
    let report = receipts::rebuild(&app.receipts_settings())
        .await
        .unwrap_or_else(|e| panic!("rebuild: {e}"));
    assert!(report.deleted_keys > 0, "{report:?}");
    app.start_receipts();
    let after = (
        room_counts(&app, "bob").await,
        room_counts(&app, "carol").await,
        history_counts(&app, "carol", &rooms[9]).await,
    );
    assert_eq!(after, before, "rebuilt from the log on every primary");
    drop(cluster);
}
