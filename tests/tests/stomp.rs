//! STOMP over WebSocket across two edge processes, against the real servers.

use std::time::Duration;

use chat_tests::edges::TwoEdges;
use chat_tests::stomp::StompClient;
use chat_tests::{ServiceProcess, TestApp};
use edge::stomp::{Command, Frame};
use reqwest::Method;
use serde_json::{json, Value};

/// Creates a DIRECT or GROUP room of `creator` with `others`; its id.
async fn new_room(c: &TwoEdges, kind: &str, creator: &str, others: &[&str]) -> String {
    let body = if kind == "DIRECT" {
        json!({"type": "DIRECT", "userIds": others})
    } else {
        json!({"type": "GROUP", "name": "g", "userIds": others})
    };
    let (status, room) = c.app.post(creator, "/api/rooms", body).await;
    assert!(status == 201 || status == 200, "{room}");
    room["roomId"].as_str().expect("id").to_owned()
}

fn send_frame(room: &str, content: &str, receipt: &str) -> Frame {
    Frame::new(Command::Send)
        .with_header("destination", format!("/pub/rooms/{room}/messages"))
        .with_header("receipt", receipt)
        .with_header("content-type", "application/json")
        .with_body(json!({"content": content}).to_string())
}

fn code(error: &Frame) -> String {
    error
        .header("message")
        .expect("message header")
        .split(':')
        .next()
        .expect("code")
        .to_owned()
}

#[tokio::test]
async fn alice_and_bob_chat_across_two_edges() {
    let c = TwoEdges::start().await;
    for (kind, others) in [("DIRECT", vec!["bob"]), ("GROUP", vec!["bob", "carol"])] {
        let room = new_room(&c, kind, "alice", &others).await;
        let destination = format!("/sub/rooms/{room}");
        let mut alice = c.client(true, "alice").await;
        let mut bob = c.client(false, "bob").await;
        assert_eq!(alice.protocol.as_deref(), Some("v12.stomp"));
        alice.subscribe("r", &destination, &[]).await;
        bob.subscribe("r", &destination, &[]).await;
        bob.subscribe("feed", "/sub/users/bob", &[]).await;

        alice.send(send_frame(&room, "hello bob", "s1")).await;
        alice.expect_receipt("s1").await;
        let (frame, body) = alice.message().await;
        assert_eq!(frame.header("content-type"), Some("application/json"));
        assert_eq!(frame.header("subscription"), Some("r"));
        assert_eq!(body["type"], "CHAT");
        assert_eq!(body["content"], "hello bob");
        assert_eq!(body["senderId"], "alice");
        assert_eq!(body["roomId"], room.as_str());
        assert_eq!(frame.header("message-id"), body["messageId"].as_str());

        let mut on_b = [bob.message().await, bob.message().await];
        on_b.sort_by_key(|(f, _)| f.header("subscription").map(str::to_owned));
        assert_eq!(on_b[0].0.header("subscription"), Some("feed"));
        assert_eq!(on_b[1].0.header("subscription"), Some("r"));
        let mut feed_entry = on_b[0].1.clone();
        let room_unread = feed_entry
            .as_object_mut()
            .and_then(|entry| entry.remove("roomUnreadCount"));
        assert_eq!(
            room_unread,
            Some(json!(0)),
            "bob is in the room: nothing unread"
        );
        let mentions = feed_entry
            .as_object_mut()
            .and_then(|entry| entry.remove("mentionCount"));
        assert_eq!(mentions, Some(json!(0)), "nothing mentions bob");
        let absent = if kind == "DIRECT" { 0 } else { 1 };
        assert_eq!(body["unreadCount"], absent, "carol is not in the group");
        assert_eq!(feed_entry, body);
        assert_eq!(on_b[1].1, body);
    }
}

#[tokio::test]
async fn a_retried_send_yields_one_message() {
    let c = TwoEdges::start().await;
    let room = new_room(&c, "GROUP", "alice", &["bob"]).await;
    let mut alice = c.client(true, "alice").await;
    alice
        .subscribe("r", &format!("/sub/rooms/{room}"), &[])
        .await;
    let body = json!({"content": "once", "clientMessageId": "c1"}).to_string();
    for receipt in ["x1", "x2"] {
        alice
            .send(
                Frame::new(Command::Send)
                    .with_header("destination", format!("/pub/rooms/{room}/messages"))
                    .with_header("receipt", receipt)
                    .with_body(body.clone()),
            )
            .await;
        alice.expect_receipt(receipt).await;
    }
    let (_, first) = alice.message().await;
    assert_eq!(first["content"], "once");
    assert!(alice
        .next_within(Duration::from_millis(500))
        .await
        .is_none());
}

#[tokio::test]
async fn invites_reach_the_invitees_feed_at_once() {
    let c = TwoEdges::start().await;
    let mut carol = c.client(false, "carol").await;
    carol.subscribe("feed", "/sub/users/carol", &[]).await;
    let room = new_room(&c, "GROUP", "alice", &["carol"]).await;
    let (_, created) = carol.message().await;
    assert_eq!(created["type"], "INVITE");
    assert_eq!(created["roomId"], room.as_str());
    assert_eq!(created["inviterId"], "alice");

    let group = new_room(&c, "GROUP", "alice", &["bob"]).await;
    let (status, _) = c
        .app
        .post(
            "bob",
            &format!("/api/rooms/{group}/members"),
            json!({"userIds": ["carol"]}),
        )
        .await;
    assert_eq!(status, 200);
    let (frame, invite) = carol.message().await;
    assert_eq!(invite["type"], "INVITE");
    assert_eq!(invite["inviterId"], "bob");
    assert_eq!(invite["userIds"], json!(["carol"]));
    assert_eq!(frame.header("message-id"), invite["messageId"].as_str());
}

#[tokio::test]
async fn leaving_ends_the_subscriptions_everywhere() {
    let c = TwoEdges::start().await;
    let room = new_room(&c, "GROUP", "alice", &["bob"]).await;
    let destination = format!("/sub/rooms/{room}");
    let mut phone = c.client(true, "bob").await;
    let mut laptop = c.client(false, "bob").await;
    phone.subscribe("r", &destination, &[]).await;
    phone.subscribe("feed", "/sub/users/bob", &[]).await;
    laptop.subscribe("r", &destination, &[]).await;

    let (status, _) = c
        .app
        .call(
            Method::DELETE,
            Some("bob"),
            &format!("/api/rooms/{room}/members/me"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    for device in [&mut phone, &mut laptop] {
        let (_, leave) = device.message().await;
        assert_eq!(
            (leave["type"].as_str(), leave["userId"].as_str()),
            (Some("LEAVE"), Some("bob"))
        );
    }
    let (status, _) = c
        .app
        .post(
            "alice",
            &format!("/api/rooms/{room}/messages"),
            json!({"content": "after"}),
        )
        .await;
    assert_eq!(status, 201);
    assert!(laptop
        .next_within(Duration::from_millis(700))
        .await
        .is_none());
    assert!(!laptop.is_closed(), "the connection stays open");

    let other = new_room(&c, "DIRECT", "alice", &["bob"]).await;
    let (status, _) = c
        .app
        .post(
            "alice",
            &format!("/api/rooms/{other}/messages"),
            json!({"content": "dm"}),
        )
        .await;
    assert_eq!(status, 201);
    let mut seen: Vec<Value> = Vec::new();
    while let Some(frame) = phone.next_within(Duration::from_secs(2)).await {
        seen.push(serde_json::from_slice(&frame.body).expect("json"));
    }
    assert!(
        seen.iter().all(|m| m["roomId"] != room.as_str()),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|m| m["content"] == "dm"),
        "the feed still works: {seen:?}"
    );
}

#[tokio::test]
async fn resuming_with_since_delivers_exactly_the_missed_messages() {
    let c = TwoEdges::start().await;
    let room = new_room(&c, "GROUP", "alice", &["bob"]).await;
    let path = format!("/api/rooms/{room}/messages");
    let (_, last_seen) = c.app.post("alice", &path, json!({"content": "seen"})).await;
    let since = last_seen["messageId"].as_str().expect("id").to_owned();
    let mut expected = Vec::new();
    for i in 0..100 {
        let (status, sent) = c
            .app
            .post("alice", &path, json!({"content": format!("m{i}")}))
            .await;
        assert_eq!(status, 201);
        expected.push(sent["messageId"].as_str().expect("id").to_owned());
    }
    let mut bob = c.client(false, "bob").await;
    bob.subscribe(
        "r",
        &format!("/sub/rooms/{room}"),
        &[("since", since.as_str())],
    )
    .await;
    let live = c
        .app
        .call_at(
            &c.a.url,
            Method::POST,
            Some("alice"),
            &path,
            Some(json!({"content": "live"})),
        )
        .await;
    assert_eq!(live.0, 201);
    expected.push(live.1["messageId"].as_str().expect("id").to_owned());

    let mut got = Vec::new();
    for _ in 0..expected.len() {
        let (frame, body) = bob.message().await;
        assert_eq!(frame.header("message-id"), body["messageId"].as_str());
        got.push(body["messageId"].as_str().expect("id").to_owned());
    }
    assert_eq!(got, expected);
    assert!(
        bob.next_within(Duration::from_millis(500)).await.is_none(),
        "no duplicate at the seam"
    );
}

#[tokio::test]
async fn errors_close_only_the_offending_connection() {
    let c = TwoEdges::start().await;
    let room = new_room(&c, "GROUP", "alice", &["bob"]).await;
    let mut bystander = c.client(true, "bob").await;
    bystander
        .subscribe("r", &format!("/sub/rooms/{room}"), &[])
        .await;

    let mut bad_token = StompClient::open(&c.a.url).await;
    bad_token
        .send(Frame::new(Command::Connect).with_header("Authorization", "Bearer nope"))
        .await;
    assert_eq!(code(&bad_token.error().await), "INVALID_TOKEN");

    let cases: Vec<(Frame, &str)> = vec![
        (
            Frame::new(Command::Subscribe)
                .with_header("id", "1")
                .with_header("destination", format!("/sub/rooms/{room}")),
            "NOT_A_MEMBER",
        ),
        (
            Frame::new(Command::Subscribe)
                .with_header("id", "1")
                .with_header("destination", "/sub/users/alice"),
            "FORBIDDEN",
        ),
        (
            Frame::new(Command::Subscribe)
                .with_header("id", "1")
                .with_header("destination", "/topic/x"),
            "UNKNOWN_DESTINATION",
        ),
        (
            Frame::new(Command::Subscribe).with_header("destination", "/sub/users/mallory"),
            "MISSING_HEADER",
        ),
        (
            Frame::new(Command::Send)
                .with_header("destination", format!("/pub/rooms/{room}/messages"))
                .with_body("{\"content\":\"x\"}"),
            "NOT_A_MEMBER",
        ),
    ];
    for (frame, expected) in cases {
        let mut mallory = c.client(false, "mallory").await;
        mallory.send(frame).await;
        assert_eq!(code(&mallory.error().await), expected);
    }

    let mut malformed = c.client(false, "bob").await;
    malformed
        .send_text("SUBSCRIBE\nid:1\ndestination:/sub/users/b\\tob\n\n\0".to_owned())
        .await;
    assert_eq!(code(&malformed.error().await), "MALFORMED_FRAME");

    let mut oversize = c.client(false, "bob").await;
    oversize
        .send(send_frame(&room, &"x".repeat(70 * 1024), "big"))
        .await;
    assert_eq!(code(&oversize.error().await), "FRAME_TOO_LARGE");

    let mut greedy = c.client(false, "bob").await;
    for i in 0..64 {
        greedy
            .send(
                Frame::new(Command::Subscribe)
                    .with_header("id", i.to_string())
                    .with_header("destination", "/sub/users/bob"),
            )
            .await;
    }
    greedy
        .send(
            Frame::new(Command::Subscribe)
                .with_header("id", "65")
                .with_header("destination", "/sub/users/bob"),
        )
        .await;
    assert_eq!(code(&greedy.error().await), "TOO_MANY_SUBSCRIPTIONS");

    let mut spammer = c.client(false, "bob").await;
    for i in 0..60 {
        spammer
            .send(send_frame(&room, &format!("spam {i}"), &format!("s{i}")))
            .await;
    }
    let mut last = spammer.next().await;
    while last.command != Command::Error {
        last = spammer.next().await;
    }
    assert_eq!(code(&last), "RATE_LIMITED");

    let mut resumer = c.client(false, "bob").await;
    resumer
        .send(
            Frame::new(Command::Subscribe)
                .with_header("id", "1")
                .with_header("destination", format!("/sub/rooms/{room}"))
                .with_header("since", "999999"),
        )
        .await;
    assert_eq!(code(&resumer.error().await), "UNKNOWN_SINCE");

    let (status, sent) = c
        .app
        .post(
            "alice",
            &format!("/api/rooms/{room}/messages"),
            json!({"content": "still here"}),
        )
        .await;
    assert_eq!(status, 201);
    loop {
        let (_, body) = bystander.message().await;
        if body["messageId"] == sent["messageId"] {
            break;
        }
    }
    assert!(!bystander.is_closed());
}

#[tokio::test]
async fn an_edge_stops_gracefully_on_sigterm() {
    let app = TestApp::start().await;
    let mut edge = ServiceProcess::start("edge", &app.env, &[]);
    let mut client = StompClient::connect(&edge.url, &app.token("alice")).await;
    client.subscribe("feed", "/sub/users/alice", &[]).await;
    let started = std::time::Instant::now();
    let status = edge.terminate();
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(client.next_within(Duration::from_secs(2)).await.is_none());
    assert!(client.is_closed());
}

#[tokio::test]
async fn resuming_past_the_logs_retention_reads_the_projection() {
    let c = TwoEdges::start().await;
    let room = new_room(&c, "GROUP", "alice", &["bob"]).await;
    let path = format!("/api/rooms/{room}/messages");
    let mut ids = Vec::new();
    for i in 0..10 {
        let (status, sent) = c
            .app
            .post("alice", &path, json!({"content": format!("m{i}")}))
            .await;
        assert_eq!(status, 201);
        ids.push(sent["messageId"].as_str().expect("id").to_owned());
    }
    let (status, _) = c.app.delete("alice", &format!("{path}/{}", ids[3])).await;
    assert_eq!(status, 200);
    // Retention removed everything before m6 from the log: only Cassandra still has m1..m5.
    let keep_from: u64 = ids[6].parse().expect("numeric");
    let mut stream = c
        .app
        .env
        .jetstream
        .get_stream(c.app.env.log.stream_name())
        .await
        .expect("stream");
    stream.purge().sequence(keep_from).await.expect("purge");
    assert_eq!(
        stream.info().await.expect("info").state.first_sequence,
        keep_from
    );

    let mut bob = c.client(true, "bob").await;
    bob.subscribe(
        "r",
        &format!("/sub/rooms/{room}"),
        &[("since", ids[0].as_str())],
    )
    .await;
    let mut got = Vec::new();
    for _ in 0..10 {
        let (_, body) = bob.message().await;
        got.push(body);
    }
    let chats: Vec<&str> = got[..9]
        .iter()
        .map(|b| b["messageId"].as_str().expect("id"))
        .collect();
    assert_eq!(
        chats,
        ids[1..].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(got[2]["content"], Value::Null, "m3 comes as its tombstone");
    assert_eq!(got[2]["deleted"], true);
    assert_eq!(got[4]["content"], "m5");
    assert_eq!(got[9]["type"], "DELETE");
    assert!(bob.next_within(Duration::from_millis(500)).await.is_none());
}

#[tokio::test]
async fn sends_accepted_before_disconnect_are_stored_and_answered_in_order() {
    let c = TwoEdges::start().await;
    let room = new_room(&c, "GROUP", "alice", &["bob"]).await;
    let mut alice = c.client(true, "alice").await;
    for i in 0..5 {
        alice
            .send(send_frame(&room, &format!("m{i}"), &format!("r{i}")))
            .await;
    }
    alice
        .send(Frame::new(Command::Disconnect).with_header("receipt", "bye"))
        .await;
    let mut receipts = Vec::new();
    while let Some(frame) = alice.next_within(Duration::from_secs(10)).await {
        assert_eq!(frame.command, Command::Receipt, "{frame:?}");
        receipts.push(frame.header("receipt-id").expect("receipt-id").to_owned());
    }
    assert_eq!(receipts, ["r0", "r1", "r2", "r3", "r4", "bye"]);
    assert!(alice.is_closed());
    assert_eq!(
        history_contents(&c.app, "bob", &room, 5).await,
        ["m4", "m3", "m2", "m1", "m0"]
    );
}

/// The contents of the room's history, newest first, once it holds `count` messages: a RECEIPT
/// stands on the log, and the history follows it within milliseconds.
async fn history_contents(app: &TestApp, user: &str, room: &str, count: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, page) = app.get(user, &format!("/api/rooms/{room}/messages")).await;
        assert_eq!(status, 200, "{page}");
        let contents: Vec<String> = page["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter_map(|m| m["content"].as_str().map(str::to_owned))
            .collect();
        if contents.len() >= count || std::time::Instant::now() > deadline {
            return contents;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_refused_send_does_not_drop_the_sends_queued_behind_it() {
    let c = TwoEdges::start().await;
    let theirs = new_room(&c, "GROUP", "carol", &["dave"]).await;
    let ours = new_room(&c, "GROUP", "alice", &["bob"]).await;
    let mut alice = c.client(true, "alice").await;
    // One WebSocket message: the second SEND is queued before the first is refused.
    let batch: Vec<u8> = [
        send_frame(&theirs, "not mine", "r1"),
        send_frame(&ours, "after the refusal", "r2"),
    ]
    .iter()
    .flat_map(Frame::encode)
    .collect();
    alice
        .send_text(String::from_utf8(batch).expect("utf8"))
        .await;
    let receipt = alice.next().await;
    assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
    assert_eq!(receipt.header("receipt-id"), Some("r2"));
    let error = alice.error().await;
    assert_eq!(code(&error), "NOT_A_MEMBER");
    assert_eq!(error.header("receipt-id"), Some("r1"));
    assert_eq!(
        history_contents(&c.app, "bob", &ours, 1).await,
        ["after the refusal"]
    );
}

#[tokio::test]
async fn membership_changes_reach_every_edge_before_its_next_answer() {
    let c = TwoEdges::start().await;
    let room = new_room(&c, "GROUP", "alice", &["bob"]).await;
    // Each edge follows the log; an INVITE answered by one is known to the others at once.
    for (i, user) in ["carol", "dave", "erin"].iter().enumerate() {
        let (status, body) = c
            .app
            .post(
                "alice",
                &format!("/api/rooms/{room}/members"),
                json!({"userIds": [user]}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let mut client = c.client(i % 2 == 0, user).await;
        client
            .send(send_frame(&room, &format!("hi from {user}"), "hi"))
            .await;
        client.expect_receipt("hi").await;
    }
    let (status, body) = c
        .app
        .delete("bob", &format!("/api/rooms/{room}/members/me"))
        .await;
    assert_eq!(status, 204, "{body}");
    for on_a in [true, false] {
        let mut bob = c.client(on_a, "bob").await;
        bob.send(send_frame(&room, "gone", "gone")).await;
        assert_eq!(code(&bob.error().await), "NOT_A_MEMBER");
    }
    let mut mallory = c.client(false, "mallory").await;
    mallory
        .send(send_frame("7d1b9a0e-0000-4000-8000-000000000000", "x", "x"))
        .await;
    assert_eq!(code(&mallory.error().await), "ROOM_NOT_FOUND");
}

#[tokio::test]
async fn a_silent_client_is_disconnected_after_two_heart_beat_intervals() {
    let app = TestApp::start().await;
    let edge = ServiceProcess::start("edge", &app.env, &[("CHAT_EDGE__HEART_BEAT_MS", "300")]);
    let mut silent = StompClient::open(&edge.url).await;
    silent
        .send(
            Frame::new(Command::Connect)
                .with_header("Authorization", format!("Bearer {}", app.token("alice")))
                .with_header("heart-beat", "300,300"),
        )
        .await;
    let connected = silent.next().await;
    assert_eq!(connected.header("heart-beat"), Some("300,300"));
    let started = std::time::Instant::now();
    assert!(silent.next_within(Duration::from_secs(5)).await.is_none());
    assert!(
        silent.is_closed(),
        "the edge must drop a client that sends nothing"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(550) && waited < Duration::from_secs(4),
        "closed after {waited:?}"
    );
}
