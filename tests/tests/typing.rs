//! Typing signals over STOMP across two edge processes, against the real servers: live only,
//! to the other subscribers of the room, ended by the edge when the typist goes quiet or away,
//! at most two a second per connection, members only.

use std::time::Duration;

use chat_tests::edges::TwoEdges;
use chat_tests::stomp::StompClient;
use edge::stomp::{Command, Frame};
use serde_json::{json, Value};
use tokio::time::Instant;

/// The edge's own end of a typing signal: `QUIET_AFTER` in `services/edge/src/live/typing.rs`.
const QUIET_AFTER: Duration = Duration::from_secs(6);

/// A client of `user` on edge A or B, subscribed to `room` as `r`.
async fn in_room(c: &TwoEdges, on_a: bool, user: &str, room: &str) -> StompClient {
    let mut client = c.client(on_a, user).await;
    client
        .subscribe("r", &format!("/sub/rooms/{room}"), &[])
        .await;
    client
}

fn typing_frame(room: &str, body: &str, receipt: &str) -> Frame {
    Frame::new(Command::Send)
        .with_header("destination", format!("/pub/rooms/{room}/typing"))
        .with_header("receipt", receipt)
        .with_body(body.to_owned())
}

/// Sends `{"typing": typing}` and waits for the receipt.
async fn signal(client: &mut StompClient, room: &str, typing: bool, receipt: &str) {
    let body = json!({ "typing": typing }).to_string();
    client.send(typing_frame(room, &body, receipt)).await;
    client.expect_receipt(receipt).await;
}

/// The next TYPING MESSAGE, with its `message-id`.
async fn next_typing(client: &mut StompClient) -> (String, Value) {
    let (frame, body) = client.message().await;
    assert_eq!(body["type"], "TYPING", "{body}");
    let id = frame.header("message-id").expect("message-id").to_owned();
    (id, body)
}

/// Every MESSAGE that arrives within `within`.
async fn messages_within(client: &mut StompClient, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while let Some(frame) = client
        .next_within(deadline.saturating_duration_since(Instant::now()))
        .await
    {
        if frame.command == Command::Message {
            seen.push(serde_json::from_slice(&frame.body).expect("json body"));
        }
    }
    seen
}

fn code(error: &Frame) -> &str {
    let message = error.header("message").expect("message header");
    message.split(':').next().expect("code")
}

#[tokio::test]
async fn typing_reaches_the_other_subscribers_across_edges_but_not_the_typist() {
    let c = TwoEdges::start().await;
    let room = c.app.group("alice", &["bob"]).await;
    let mut alice = in_room(&c, true, "alice", &room).await;
    let mut alice_phone = in_room(&c, true, "alice", &room).await;
    let mut bob = in_room(&c, false, "bob", &room).await;

    signal(&mut alice, &room, true, "t1").await;
    let (id, body) = next_typing(&mut bob).await;
    assert_eq!(
        body,
        json!({"type": "TYPING", "roomId": room, "userId": "alice", "typing": true})
    );
    assert!(id.starts_with("typing-"), "never a stored event's id: {id}");
    signal(&mut alice, &room, false, "t2").await;
    let (_, stopped) = next_typing(&mut bob).await;
    assert_eq!(stopped["typing"], false);

    assert!(
        messages_within(&mut alice_phone, Duration::from_millis(300))
            .await
            .is_empty(),
        "the typist's own subscriptions hear nothing"
    );
    assert!(messages_within(&mut alice, Duration::from_millis(1))
        .await
        .is_empty());

    // Live only: a resume replays stored events, and a typing signal is not one.
    let (status, sent) = c
        .app
        .post(
            "alice",
            &format!("/api/rooms/{room}/messages"),
            json!({"content": "hi"}),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    let (_, chat) = bob.message().await;
    assert_eq!(
        chat["type"], "CHAT",
        "the signals took no place in the room's order"
    );
}

#[tokio::test]
async fn the_edge_ends_a_signal_when_the_typist_goes_quiet_or_away() {
    let c = TwoEdges::start().await;
    let room = c.app.group("alice", &["bob", "carol"]).await;
    let mut alice = in_room(&c, true, "alice", &room).await;
    let mut bob = in_room(&c, false, "bob", &room).await;

    signal(&mut alice, &room, true, "t1").await;
    let began = Instant::now();
    assert_eq!(next_typing(&mut bob).await.1["typing"], true);
    let (_, quiet) = next_typing(&mut bob).await;
    assert_eq!(
        (&quiet["userId"], &quiet["typing"]),
        (&json!("alice"), &json!(false))
    );
    assert!(
        began.elapsed() >= QUIET_AFTER - Duration::from_millis(500),
        "announced after {:?}, before the typist went quiet",
        began.elapsed()
    );

    let mut carol = in_room(&c, true, "carol", &room).await;
    signal(&mut carol, &room, true, "t2").await;
    assert_eq!(next_typing(&mut bob).await.1["userId"], "carol");
    let closed = Instant::now();
    drop(carol);
    let (_, gone) = next_typing(&mut bob).await;
    assert_eq!(
        (&gone["userId"], &gone["typing"]),
        (&json!("carol"), &json!(false))
    );
    assert!(
        closed.elapsed() < QUIET_AFTER,
        "a closed connection ends the signal at once"
    );
}

#[tokio::test]
async fn leaving_the_room_subscription_ends_the_signal_at_once() {
    let c = TwoEdges::start().await;
    let room = c.app.group("alice", &["bob"]).await;
    let mut alice = in_room(&c, true, "alice", &room).await;
    let mut bob = in_room(&c, false, "bob", &room).await;

    signal(&mut alice, &room, true, "t1").await;
    assert_eq!(next_typing(&mut bob).await.1["typing"], true);
    let left = Instant::now();
    alice
        .send(
            Frame::new(Command::Unsubscribe)
                .with_header("id", "r")
                .with_header("receipt", "unsub"),
        )
        .await;
    alice.expect_receipt("unsub").await;
    let (_, ended) = next_typing(&mut bob).await;
    assert_eq!(
        (&ended["userId"], &ended["typing"]),
        (&json!("alice"), &json!(false))
    );
    assert!(
        left.elapsed() < QUIET_AFTER,
        "the last room subscription's end ends the signal, not the quiet timer"
    );
}

#[tokio::test]
async fn at_most_two_signals_a_second_pass_and_only_members_may_signal() {
    let c = TwoEdges::start().await;
    let room = c.app.group("alice", &["bob"]).await;
    let mut alice = in_room(&c, true, "alice", &room).await;
    let mut bob = in_room(&c, false, "bob", &room).await;

    let started = Instant::now();
    for i in 0..5 {
        signal(&mut alice, &room, true, &format!("burst-{i}")).await;
    }
    let took = started.elapsed();
    let heard = messages_within(&mut bob, Duration::from_millis(500)).await;
    assert!(heard.iter().all(|m| m["type"] == "TYPING"), "{heard:?}");
    let allowed = 2 + usize::try_from(took.as_millis() / 500).expect("small");
    assert!(
        (2..=allowed).contains(&heard.len()),
        "{} of 5 signals passed in {took:?}: {heard:?}",
        heard.len()
    );

    let mut dave = StompClient::connect(&c.a.url, &c.app.token("dave")).await;
    dave.send(typing_frame(&room, r#"{"typing":true}"#, "d1"))
        .await;
    assert_eq!(code(&dave.error().await), "NOT_A_MEMBER");

    let mut alice_again = StompClient::connect(&c.b.url, &c.app.token("alice")).await;
    alice_again
        .send(typing_frame(&room, r#"{"typing":"yes"}"#, "a1"))
        .await;
    assert_eq!(code(&alice_again.error().await), "BAD_REQUEST");
}
