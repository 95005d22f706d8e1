//! Replies, mentions, reactions and edits over the HTTP API and STOMP, against the real
//! servers: what history shows, what the live view carries, and every refusal with its code.

use chat_schemas::{Envelope, RoomId, Timestamp};
use chat_tests::stomp::StompClient;
use chat_tests::{chat, user, TestApp};
use edge::stomp::{Command, Frame};
use reqwest::Method;
use serde_json::{json, Value};

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

async fn send(app: &TestApp, user: &str, room: &str, body: Value) -> (u16, Value) {
    app.post(user, &format!("/api/rooms/{room}/messages"), body)
        .await
}

/// Sends a CHAT and returns its id.
async fn say(app: &TestApp, user: &str, room: &str, content: &str) -> String {
    let (status, sent) = send(app, user, room, json!({ "content": content })).await;
    assert_eq!(status, 201, "{sent}");
    sent["messageId"].as_str().expect("messageId").to_owned()
}

/// The history entry `id` as `user` sees it.
async fn entry(app: &TestApp, user: &str, room: &str, id: &str) -> Value {
    let (status, page) = app.get(user, &format!("/api/rooms/{room}/messages")).await;
    assert_eq!(status, 200, "{page}");
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["messageId"] == id)
        .unwrap_or_else(|| panic!("{id} not in {page}"))
        .clone()
}

async fn reaction(
    app: &TestApp,
    method: Method,
    user: &str,
    room: &str,
    id: &str,
    emoji: &str,
) -> (u16, Value) {
    let path = format!("/api/rooms/{room}/messages/{id}/reactions/{emoji}");
    app.call(method, Some(user), &path, None).await
}

async fn edit(app: &TestApp, user: &str, room: &str, id: &str, content: &str) -> (u16, Value) {
    let path = format!("/api/rooms/{room}/messages/{id}");
    app.call(
        Method::PATCH,
        Some(user),
        &path,
        Some(json!({ "content": content })),
    )
    .await
}

#[tokio::test]
async fn a_reply_quotes_its_message_until_that_is_deleted() {
    let app = TestApp::start().await;
    let room = app.group("alice", &["bob"]).await;
    let long = "가".repeat(150);
    let asked = say(&app, "alice", &room, &long).await;
    let (status, reply) = send(
        &app,
        "bob",
        &room,
        json!({"content": "네!", "replyTo": asked, "mentions": ["alice", "alice"]}),
    )
    .await;
    assert_eq!(status, 201, "{reply}");
    let quote = json!({"messageId": asked, "senderId": "alice", "content": "가".repeat(100)});
    assert_eq!(reply["replyTo"], quote, "cut to 100 characters");
    assert_eq!(reply["mentions"], json!(["alice"]), "without repeats");
    let id = reply["messageId"].as_str().expect("id").to_owned();
    let shown = entry(&app, "alice", &room, &id).await;
    assert_eq!(
        (&shown["replyTo"], &shown["mentions"]),
        (&quote, &json!(["alice"]))
    );

    let (status, _) = app
        .delete("alice", &format!("/api/rooms/{room}/messages/{asked}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        entry(&app, "bob", &room, &id).await["replyTo"],
        json!({"messageId": asked, "senderId": "alice", "deleted": true})
    );

    // A reply through STOMP carries its quote live.
    let mut alice = StompClient::connect(&app.base_url, &app.token("alice"))
        .await
        .ignoring_presence();
    alice
        .subscribe("r", &format!("/sub/rooms/{room}"), &[])
        .await;
    let send_frame = Frame::new(Command::Send)
        .with_header("destination", format!("/pub/rooms/{room}/messages"))
        .with_header("receipt", "s1")
        .with_body(json!({"content": "again", "replyTo": id}).to_string());
    alice.send(send_frame).await;
    alice.expect_receipt("s1").await;
    let (_, live) = alice.message().await;
    assert_eq!(
        live["replyTo"],
        json!({"messageId": id, "senderId": "bob", "content": "네!"})
    );
}

#[tokio::test]
async fn replies_and_mentions_are_refused_with_their_codes() {
    let app = TestApp::start().await;
    let room = app.group("alice", &["bob"]).await;
    let other = app.group("carol", &["alice"]).await;
    let elsewhere = say(&app, "carol", &other, "not here").await;
    let deleted = say(&app, "alice", &room, "gone").await;
    let (status, _) = app
        .delete("alice", &format!("/api/rooms/{room}/messages/{deleted}"))
        .await;
    assert_eq!(status, 200);
    let (_, page) = app
        .get("alice", &format!("/api/rooms/{room}/messages"))
        .await;
    let invite = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["type"] == "INVITE")
        .expect("the room's INVITE")["messageId"]
        .clone();
    for reply_to in [
        json!("x"),
        json!(0),
        json!(elsewhere),
        json!(deleted),
        invite,
        json!("999999"),
    ] {
        let (status, body) = send(
            &app,
            "bob",
            &room,
            json!({"content": "re", "replyTo": reply_to}),
        )
        .await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "INVALID_REPLY"),
            "{reply_to}: {body}"
        );
    }
    let many: Vec<String> = (0..51).map(|i| format!("u{i}")).collect();
    for mentions in [json!(["carol"]), json!(["not a user"]), json!(many)] {
        let (status, body) = send(
            &app,
            "bob",
            &room,
            json!({"content": "hey", "mentions": mentions}),
        )
        .await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "INVALID_MENTIONS"),
            "{mentions}: {body}"
        );
    }
    let (_, page) = app
        .get("alice", &format!("/api/rooms/{room}/messages"))
        .await;
    assert!(
        page["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .all(|m| m["content"] != "re" && m["content"] != "hey"),
        "nothing refused was stored: {page}"
    );
}

#[tokio::test]
async fn reactions_are_idempotent_ordered_by_first_use_and_move_no_counts() {
    let app = TestApp::start().await;
    let room = app.group("alice", &["bob", "carol"]).await;
    let id = say(&app, "alice", &room, "저녁 7시?").await;
    let unread_path = format!("/api/rooms/{room}/messages/{id}/unread");
    let before = app.get("alice", &unread_path).await.1["userIds"].clone();
    assert_eq!(before, json!(["bob", "carol"]));
    let events = app.stream_len().await;

    for _ in 0..2 {
        let (status, body) = reaction(&app, Method::PUT, "bob", &room, &id, "👍").await;
        assert_eq!(status, 204, "{body}");
    }
    assert_eq!(
        app.stream_len().await,
        events + 1,
        "the second PUT changed nothing"
    );
    let (status, _) = reaction(&app, Method::PUT, "alice", &room, &id, "❤️").await;
    assert_eq!(status, 204);
    let (status, _) = reaction(&app, Method::PUT, "carol", &room, &id, "👍").await;
    assert_eq!(status, 204);
    assert_eq!(
        entry(&app, "bob", &room, &id).await["reactions"],
        json!([{"emoji": "👍", "count": 2, "me": true}, {"emoji": "❤️", "count": 1, "me": false}])
    );
    assert_eq!(
        entry(&app, "alice", &room, &id).await["reactions"],
        json!([{"emoji": "👍", "count": 2, "me": false}, {"emoji": "❤️", "count": 1, "me": true}])
    );
    for _ in 0..2 {
        let (status, _) = reaction(&app, Method::DELETE, "bob", &room, &id, "👍").await;
        assert_eq!(status, 204);
    }
    assert_eq!(
        entry(&app, "bob", &room, &id).await["reactions"],
        json!([{"emoji": "❤️", "count": 1, "me": false}, {"emoji": "👍", "count": 1, "me": false}]),
        "the oldest standing reaction orders them: carol's 👍 came after alice's ❤️"
    );
    assert_eq!(
        app.get("alice", &unread_path).await.1["userIds"],
        before,
        "reactions never change unread sets"
    );

    let (status, body) = reaction(&app, Method::PUT, "bob", &room, &id, "ok").await;
    assert_eq!((status, error_code(&body)), (400, "INVALID_REACTION"));
    let (status, body) = reaction(&app, Method::PUT, "dave", &room, &id, "👍").await;
    assert_eq!((status, error_code(&body)), (403, "NOT_A_MEMBER"));
    let (status, body) = reaction(&app, Method::PUT, "bob", &room, "999999", "👍").await;
    assert_eq!((status, error_code(&body)), (404, "MESSAGE_NOT_FOUND"));
    let (status, _) = app
        .delete("alice", &format!("/api/rooms/{room}/messages/{id}"))
        .await;
    assert_eq!(status, 200);
    let (status, body) = reaction(&app, Method::PUT, "bob", &room, &id, "😂").await;
    assert_eq!((status, error_code(&body)), (409, "MESSAGE_DELETED"));
}

#[tokio::test]
async fn the_sender_edits_within_a_day_and_the_room_list_follows() {
    let app = TestApp::start().await;
    let room = app.group("alice", &["bob"]).await;
    let id = say(&app, "alice", &room, "7시에 봐요").await;
    let (status, edited) = edit(&app, "alice", &room, &id, "8시에 봐요").await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["content"], "8시에 봐요");
    assert!(edited["editedAt"].is_string(), "{edited}");
    let shown = entry(&app, "bob", &room, &id).await;
    assert_eq!(
        (&shown["content"], &shown["editedAt"]),
        (&edited["content"], &edited["editedAt"])
    );
    let (_, listed) = app.get("bob", &format!("/api/rooms/{room}")).await;
    assert_eq!(listed["lastMessage"]["content"], "8시에 봐요", "{listed}");

    let (status, body) = edit(&app, "bob", &room, &id, "mine now").await;
    assert_eq!((status, error_code(&body)), (403, "NOT_THE_SENDER"));
    let (status, body) = edit(&app, "alice", &room, &id, "   ").await;
    assert_eq!((status, error_code(&body)), (400, "EMPTY_CONTENT"));

    // A CHAT sent 25 hours ago (appended as an edge would have then).
    let old = Envelope {
        at: Timestamp(Timestamp::now().millis() - 25 * 3_600_000),
        ..Envelope::new(
            room.parse::<RoomId>().expect("room id"),
            user("alice"),
            chat("yesterday"),
        )
    };
    let old_id = app.env.store_in_log(&old).await.to_string();
    let mut shown = None;
    for _ in 0..100 {
        let (status, page) = app
            .get("alice", &format!("/api/rooms/{room}/messages"))
            .await;
        assert_eq!(status, 200);
        if page["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .any(|m| m["messageId"] == old_id)
        {
            shown = Some(());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(shown.is_some(), "the old CHAT was projected");
    let (status, body) = edit(&app, "alice", &room, &old_id, "too late").await;
    assert_eq!((status, error_code(&body)), (409, "EDIT_WINDOW_CLOSED"));

    let (status, _) = app
        .delete("alice", &format!("/api/rooms/{room}/messages/{id}"))
        .await;
    assert_eq!(status, 200);
    let (status, body) = edit(&app, "alice", &room, &id, "after delete").await;
    assert_eq!((status, error_code(&body)), (409, "MESSAGE_DELETED"));
}

/// A CHAT is in the log before it is in history (a STOMP SEND answers on the log's ack; the
/// projector may gather it with later events): acting on it over HTTP in between waits for the
/// projector instead of answering 404. An id the room's log does not hold yet is 404 at once.
#[tokio::test]
async fn a_message_not_yet_in_history_can_be_acted_on_at_once() {
    let mut app = TestApp::start().await;
    let room = app.group("alice", &["bob"]).await;
    app.stop_projector().await;
    let room_id: RoomId = room.parse().expect("room id");
    let envelope = Envelope::new(room_id, user("alice"), chat("just sent"));
    let sequence = app.env.store_in_log(&envelope).await;
    let id = sequence.to_string();
    let beyond = (sequence + 1_000).to_string();
    let (status, body) = reaction(&app, Method::PUT, "bob", &room, &beyond, "👍").await;
    assert_eq!(
        (status, error_code(&body)),
        (404, "MESSAGE_NOT_FOUND"),
        "not in the log: no wait (the projector is stopped, a wait would end in 503)"
    );

    let acting = async {
        let reacted = reaction(&app, Method::PUT, "bob", &room, &id, "👍").await;
        let replied = send(
            &app,
            "bob",
            &room,
            json!({"content": "re", "replyTo": id.clone()}),
        )
        .await;
        (reacted, replied)
    };
    let projector = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        chat_tests::ServiceProcess::start("projector", &app.env, &[])
    };
    let (((reacted, react_body), (replied, reply)), _projector) = tokio::join!(acting, projector);
    assert_eq!(reacted, 204, "{react_body}");
    assert_eq!(replied, 201, "{reply}");
    assert_eq!(reply["replyTo"]["messageId"], id.as_str());
    assert_eq!(
        entry(&app, "alice", &room, &id).await["reactions"][0]["emoji"],
        "👍"
    );
}
