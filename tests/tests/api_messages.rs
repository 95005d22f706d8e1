//! Messages over the HTTP API against the real servers: sending, idempotent resends, history
//! pages across time buckets, deletes, validation, and read-your-writes across edge processes.

use chat_schemas::{ChatEvent, Envelope, RoomId, Timestamp};
use chat_tests::{chat, send, user, ServiceProcess, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().expect("error code")
}

async fn page(app: &TestApp, user: &str, room: &str, query: &str) -> (Vec<Value>, Value) {
    let (status, body) = app
        .get(user, &format!("/api/rooms/{room}/messages{query}"))
        .await;
    assert_eq!(status, 200, "{body}");
    (
        body["messages"].as_array().expect("messages").clone(),
        body["nextBefore"].clone(),
    )
}

#[tokio::test]
async fn a_sent_message_is_answered_and_in_history() {
    let app = TestApp::start().await;
    let room = app.group("alice", &["bob"]).await;
    let (status, message) = app
        .post(
            "alice",
            &format!("/api/rooms/{room}/messages"),
            json!({"content": "안녕 👋"}),
        )
        .await;
    assert_eq!(status, 201, "{message}");
    assert_eq!(message["type"], "CHAT");
    assert_eq!(message["roomId"], room.as_str());
    assert_eq!(message["senderId"], "alice");
    assert_eq!(message["content"], "안녕 👋");
    assert_eq!(message["deleted"], false);
    assert!(message["messageId"]
        .as_str()
        .is_some_and(|id| id.parse::<u64>().is_ok()));
    assert!(message["sentAt"].as_str().is_some_and(|t| t.ends_with('Z')));

    let (entries, next) = page(&app, "bob", &room, "").await;
    let (entry, unread) = without_unread_count(&entries[0]);
    assert_eq!(entry, message);
    assert!(unread.is_some(), "history CHAT entries carry unreadCount");
    assert_eq!(next, Value::Null);
    let (_, shown) = app.get("bob", &format!("/api/rooms/{room}")).await;
    let mut summary = message.clone();
    let reactions = summary.as_object_mut().and_then(|m| m.remove("reactions"));
    assert_eq!(
        reactions,
        Some(json!([])),
        "a CHAT entry lists its reactions"
    );
    assert_eq!(
        shown["lastMessage"], summary,
        "the room's last message is the entry without its reactions"
    );
}

#[tokio::test]
async fn a_resend_with_the_same_client_message_id_is_one_message() {
    let app = TestApp::start().await;
    let room = app.group("alice", &["bob"]).await;
    let path = format!("/api/rooms/{room}/messages");
    let body = json!({"content": "once", "clientMessageId": "c-42"});
    let (first_status, first) = app.post("alice", &path, body.clone()).await;
    let (again_status, again) = app.post("alice", &path, body.clone()).await;
    assert_eq!((first_status, again_status), (201, 200));
    assert_eq!(first["messageId"], again["messageId"]);
    assert_eq!(again["clientMessageId"], "c-42");

    let (status, _) = app.post("bob", &path, body).await;
    assert_eq!(status, 201, "another sender's id is another message");
    let (entries, _) = page(&app, "alice", &room, "").await;
    assert_eq!(entries.iter().filter(|e| e["type"] == "CHAT").count(), 2);
}

#[tokio::test]
async fn parallel_resends_make_one_message() {
    let app = TestApp::start().await;
    let room = app.group("alice", &[]).await;
    let path = format!("/api/rooms/{room}/messages");
    let body = json!({"content": "race", "clientMessageId": "same"});
    let answers =
        futures::future::join_all((0..5).map(|_| app.post("alice", &path, body.clone()))).await;
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|(_, m)| m["messageId"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    assert_eq!(answers.iter().filter(|(s, _)| *s == 201).count(), 1);
}

/// Stores alice's CHAT with `client_message_id` straight in the log under a deduplication id
/// the edge never uses, as if the edge's own append had left JetStream's window, and waits
/// until history shows it; its message id.
async fn stored_past_the_window(app: &TestApp, room: &str, sender: &str, id: &str) -> String {
    let room_id: RoomId = room.parse().expect("room id");
    let envelope = Envelope::new(
        room_id,
        user(sender),
        ChatEvent::Chat {
            content: format!("first {id}"),
            client_message_id: Some(id.to_owned()),
            reply_to: None,
            mentions: Vec::new(),
        },
    );
    let message_id = app.env.store_in_log(&envelope).await.to_string();
    for _ in 0..100 {
        let (entries, _) = page(app, sender, room, "?limit=100").await;
        if entries
            .iter()
            .any(|e| e["messageId"] == message_id.as_str())
        {
            return message_id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("message {message_id} never projected");
}

#[tokio::test]
async fn a_resend_past_the_logs_window_is_still_one_message() {
    let app = TestApp::start().await;
    let room = app.group("alice", &["bob"]).await;
    let path = format!("/api/rooms/{room}/messages");
    // alice's ids are held by the edge before her first message is stored: the follower
    // adds it. bob's are loaded from the projection at his resend.
    let (status, _) = app
        .post(
            "alice",
            &path,
            json!({"content": "hi", "clientMessageId": "a-0"}),
        )
        .await;
    assert_eq!(status, 201);
    let alices = stored_past_the_window(&app, &room, "alice", "a-1").await;
    let bobs = stored_past_the_window(&app, &room, "bob", "b-1").await;
    let before = app.stream_len().await;
    for (sender, id, first) in [("alice", "a-1", &alices), ("bob", "b-1", &bobs)] {
        let (status, again) = app
            .post(
                sender,
                &path,
                json!({"content": "again", "clientMessageId": id}),
            )
            .await;
        assert_eq!(
            (status, again["messageId"].as_str()),
            (200, Some(first.as_str())),
            "{sender}: {again}"
        );
    }
    assert_eq!(app.stream_len().await, before, "nothing appended");
    let (status, _) = app
        .post(
            "bob",
            &path,
            json!({"content": "new", "clientMessageId": "b-2"}),
        )
        .await;
    assert_eq!(status, 201, "a new id is a new message");
}

/// A sender with more ids in a room than the edge holds (4,096) is looked up in Cassandra for
/// every id: the one that sorts last, beyond a first page of ids, is still found.
#[tokio::test]
async fn a_sender_with_very_many_ids_still_gets_every_resend_answered() {
    use futures::StreamExt;

    let app = TestApp::start().await;
    let room = app.group("alice", &["bob"]).await;
    let path = format!("/api/rooms/{room}/messages");
    let (status, first) = app.post("alice", &path, json!({"content": "first"})).await;
    assert_eq!(status, 201, "{first}");
    let first_id: i64 = first["messageId"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("message id");
    let room_id: RoomId = room.parse().expect("room id");
    let insert = app
        .env
        .cassandra
        .prepare(format!(
            "INSERT INTO {}.client_messages (room_id, sender_id, client_message_id, message_id) \
             VALUES (?, ?, ?, ?)",
            app.env.id
        ))
        .await
        .expect("prepare");
    let inserts = futures::stream::iter(0..=4_096)
        .map(|i| {
            let (session, insert) = (&app.env.cassandra, &insert);
            async move {
                session
                    .execute_unpaged(
                        insert,
                        (room_id.as_uuid(), "alice", format!("id-{i:04}"), first_id),
                    )
                    .await
                    .expect("insert")
            }
        })
        .buffer_unordered(64)
        .count()
        .await;
    assert_eq!(inserts, 4_097);
    let (status, again) = app
        .post(
            "alice",
            &path,
            json!({"content": "again", "clientMessageId": "id-4096"}),
        )
        .await;
    assert_eq!(
        (status, &again["messageId"]),
        (200, &first["messageId"]),
        "{again}"
    );
    let (status, _) = app
        .post(
            "alice",
            &path,
            json!({"content": "new", "clientMessageId": "id-9999"}),
        )
        .await;
    assert_eq!(status, 201, "an id never used is a new message");
}

#[tokio::test]
async fn invalid_messages_are_refused_without_appending() {
    let app = TestApp::start().await;
    let room = app.group("alice", &[]).await;
    let path = format!("/api/rooms/{room}/messages");
    let before = app.stream_len().await;
    let cases = [
        (json!({"content": ""}), 400, "EMPTY_CONTENT"),
        (json!({"content": "  \n "}), 400, "EMPTY_CONTENT"),
        (
            json!({"content": "x".repeat(4001)}),
            413,
            "CONTENT_TOO_LARGE",
        ),
        (
            json!({"content": "x", "clientMessageId": ""}),
            400,
            "INVALID_CLIENT_MESSAGE_ID",
        ),
        (
            json!({"content": "x", "clientMessageId": "c".repeat(65)}),
            400,
            "INVALID_CLIENT_MESSAGE_ID",
        ),
        (json!({"content": 5}), 400, "BAD_REQUEST"),
        (json!({}), 400, "BAD_REQUEST"),
    ];
    for (body, status, code) in cases {
        let (got, answer) = app.post("alice", &path, body.clone()).await;
        assert_eq!((got, error_code(&answer)), (status, code), "{body}");
    }
    let (status, answer) = send(
        app.request(Method::POST, &path)
            .bearer_auth(app.token("alice"))
            .header("content-type", "application/json")
            .body(format!("{{\"content\":\"{}\"}}", "x".repeat(70_000))),
    )
    .await;
    assert_eq!((status, error_code(&answer)), (413, "BODY_TOO_LARGE"));
    assert_eq!(app.stream_len().await, before);

    let (status, _) = app
        .post("alice", &path, json!({"content": "가".repeat(4000)}))
        .await;
    assert_eq!(status, 201, "the limit counts characters, not bytes");
}

#[tokio::test]
async fn history_pages_newest_first() {
    let app = TestApp::start().await;
    let room = app.group("alice", &["bob"]).await;
    let path = format!("/api/rooms/{room}/messages");
    for i in 0..120 {
        let (status, _) = app
            .post("alice", &path, json!({"content": format!("m{i}")}))
            .await;
        assert_eq!(status, 201);
    }
    let mut seen = Vec::new();
    let mut query = "?limit=50".to_owned();
    let mut sizes = Vec::new();
    loop {
        let (entries, next) = page(&app, "bob", &room, &query).await;
        sizes.push(entries.len());
        seen.extend(entries);
        match next.as_str() {
            Some(cursor) => query = format!("?limit=50&before={cursor}"),
            None => break,
        }
    }
    assert_eq!(sizes, [50, 50, 21]);
    let contents: Vec<&str> = seen.iter().filter_map(|e| e["content"].as_str()).collect();
    let expected: Vec<String> = (0..120).rev().map(|i| format!("m{i}")).collect();
    assert_eq!(contents, expected);
    assert_eq!(seen.last().expect("entries")["type"], "INVITE");
    let ids: Vec<u64> = seen
        .iter()
        .map(|e| {
            e["messageId"]
                .as_str()
                .expect("id")
                .parse()
                .expect("numeric")
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "strictly newest first");
}

/// A CHAT stored in the log by "alice" with the projector stopped, as a STOMP SEND's RECEIPT
/// leaves it until the projector's next batch; its message id.
async fn stored_while_the_projector_is_stopped(app: &mut TestApp, room: &str) -> String {
    app.stop_projector().await;
    let envelope = Envelope::new(
        room.parse().expect("room id"),
        user("alice"),
        chat("just acknowledged"),
    );
    app.env.store_in_log(&envelope).await.to_string()
}

/// History, the room and the room list show every event the log holds although the projector
/// applies it later (a STOMP SEND answers on the log's ack; a live MESSAGE precedes history):
/// the reads wait for the projector.
#[tokio::test]
async fn reads_hold_what_the_log_holds_although_the_projector_lags() {
    let mut app = TestApp::start_with(|s| s.edge.read_catch_up_ms = 20_000).await;
    let room = app.group("alice", &["bob"]).await;
    let id = stored_while_the_projector_is_stopped(&mut app, &room).await;

    let room_path = format!("/api/rooms/{room}");
    let reads = async {
        tokio::join!(
            page(&app, "bob", &room, ""),
            app.get("bob", &room_path),
            app.get("bob", "/api/rooms"),
        )
    };
    let projector = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        chat_tests::ServiceProcess::start("projector", &app.env, &[])
    };
    let (((entries, _), (_, shown), (_, listed)), _projector) = tokio::join!(reads, projector);
    assert_eq!(entries[0]["messageId"], id.as_str());
    assert_eq!(entries[0]["content"], "just acknowledged");
    assert_eq!(shown["lastMessage"]["messageId"], id.as_str(), "{shown}");
    assert_eq!(
        listed["rooms"][0]["lastMessage"]["messageId"],
        id.as_str(),
        "{listed}"
    );
}

/// With the projector down, a read waits at most `edge.read_catch_up_ms` and answers with what
/// history holds: stale, not failed.
#[tokio::test]
async fn reads_answer_from_history_while_the_projector_is_down() {
    let mut app = TestApp::start_with(|s| s.edge.read_catch_up_ms = 100).await;
    let room = app.group("alice", &["bob"]).await;
    let id = stored_while_the_projector_is_stopped(&mut app, &room).await;

    let (entries, _) = page(&app, "bob", &room, "").await;
    assert!(entries.iter().all(|e| e["messageId"] != id.as_str()));
    assert_eq!(entries[0]["type"], "INVITE", "{entries:?}");
    let (status, listed) = app.get("bob", "/api/rooms").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["rooms"][0]["roomId"], room.as_str());
}

#[tokio::test]
async fn bad_cursors_and_limits_are_400() {
    let app = TestApp::start().await;
    let room = app.group("alice", &[]).await;
    for (query, code) in [
        ("?limit=0", "INVALID_LIMIT"),
        ("?limit=101", "INVALID_LIMIT"),
        ("?limit=ten", "INVALID_LIMIT"),
        ("?limit=-1", "INVALID_LIMIT"),
        ("?before=abc", "INVALID_CURSOR"),
        ("?before=0", "INVALID_CURSOR"),
        ("?before=-5", "INVALID_CURSOR"),
    ] {
        let (status, body) = app
            .get("alice", &format!("/api/rooms/{room}/messages{query}"))
            .await;
        assert_eq!((status, error_code(&body)), (400, code), "{query}");
    }
}

#[tokio::test]
async fn pages_cross_time_buckets() {
    let app = TestApp::start().await;
    let room_text = app.group("alice", &["bob"]).await;
    let room: RoomId = room_text.parse().expect("room id");
    let alice = user("alice");
    let day = 86_400_000;
    let start = Timestamp::now().millis();
    // Ten messages over five days, one of them stamped by an edge whose clock lags a day.
    let offsets = [0, 0, 1, 1, 2, 1, 3, 3, 4, 4];
    for (i, offset) in offsets.iter().enumerate() {
        let mut envelope = Envelope::new(room, alice.clone(), chat(&format!("d{i}")));
        envelope.at = Timestamp(start + offset * day);
        app.env.store_in_log(&envelope).await;
    }
    let mut all = Vec::new();
    for _ in 0..100 {
        (all, _) = page(&app, "bob", &room_text, "?limit=100").await;
        if all.len() == 11 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(all.len(), 11);

    let mut paged = Vec::new();
    let mut query = "?limit=3".to_owned();
    loop {
        let (entries, next) = page(&app, "bob", &room_text, &query).await;
        paged.extend(entries);
        match next.as_str() {
            Some(cursor) => query = format!("?limit=3&before={cursor}"),
            None => break,
        }
    }
    assert_eq!(paged, all);
    let contents: Vec<&str> = paged.iter().filter_map(|e| e["content"].as_str()).collect();
    assert_eq!(
        contents,
        ["d9", "d8", "d7", "d6", "d5", "d4", "d3", "d2", "d1", "d0"]
    );

    let buckets = app
        .env
        .cassandra
        .query_unpaged(
            format!(
                "SELECT bucket FROM {}.room_buckets WHERE room_id = ?",
                app.env.id
            ),
            (room.as_uuid(),),
        )
        .await
        .expect("query")
        .into_rows_result()
        .expect("rows")
        .rows_num();
    assert_eq!(buckets, 5, "one bucket per day, none going backwards");
}

#[tokio::test]
async fn only_the_sender_deletes_for_everyone() {
    let app = TestApp::start().await;
    let room = app.group("alice", &["bob"]).await;
    let (_, message) = app
        .post(
            "alice",
            &format!("/api/rooms/{room}/messages"),
            json!({"content": "oops"}),
        )
        .await;
    let id = message["messageId"].as_str().expect("id");
    let path = format!("/api/rooms/{room}/messages/{id}");

    let (status, body) = app.delete("bob", &path).await;
    assert_eq!((status, error_code(&body)), (403, "NOT_THE_SENDER"));
    let (status, tombstone) = app.delete("alice", &path).await;
    assert_eq!(status, 200, "{tombstone}");
    assert_eq!(tombstone["deleted"], true);
    assert_eq!(tombstone["content"], Value::Null);
    assert_eq!(tombstone["messageId"], id);

    let (entries, _) = page(&app, "bob", &room, "").await;
    let (entry, unread) = without_unread_count(&entries[0]);
    assert_eq!(entry, tombstone);
    assert_eq!(
        unread,
        Some(json!(0)),
        "a deleted message has nobody left to read it"
    );
    let (_, list) = app.get("bob", "/api/rooms").await;
    assert_eq!(list["rooms"][0]["lastMessage"]["deleted"], true);
    assert_eq!(list["rooms"][0]["lastMessage"]["content"], Value::Null);

    let events = app.stream_len().await;
    let (status, again) = app.delete("alice", &path).await;
    assert_eq!((status, &again), (200, &tombstone));
    assert_eq!(
        app.stream_len().await,
        events,
        "a repeated delete appends nothing"
    );

    // Ids past i64::MAX, the largest sequence Cassandra stores, name no entry either.
    for missing in [
        "999999",
        "abc",
        "9223372036854775808",
        "18446744073709551615",
    ] {
        let (status, body) = app
            .delete("alice", &format!("/api/rooms/{room}/messages/{missing}"))
            .await;
        assert_eq!((status, error_code(&body)), (404, "MESSAGE_NOT_FOUND"));
    }
    let invite_id = entries.last().expect("invite entry")["messageId"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, body) = app
        .delete("alice", &format!("/api/rooms/{room}/messages/{invite_id}"))
        .await;
    assert_eq!((status, error_code(&body)), (409, "NOT_DELETABLE"));
}

#[tokio::test]
async fn writes_on_one_edge_process_are_read_on_another() {
    let app = TestApp::start().await;
    let a = ServiceProcess::start("edge", &app.env, &[]);
    let b = ServiceProcess::start("edge", &app.env, &[]);
    let (status, room) = app
        .call_at(
            &a.url,
            Method::POST,
            Some("alice"),
            "/api/rooms",
            Some(json!({"type": "GROUP", "name": "g", "userIds": ["bob"]})),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let id = room["roomId"].as_str().expect("id");
    for i in 0..20 {
        let (writer, reader) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let (status, sent) = app
            .call_at(
                &writer.url,
                Method::POST,
                Some("alice"),
                &format!("/api/rooms/{id}/messages"),
                Some(json!({"content": format!("m{i}")})),
            )
            .await;
        assert_eq!(status, 201);
        let (status, body) = app
            .call_at(
                &reader.url,
                Method::GET,
                Some("bob"),
                &format!("/api/rooms/{id}/messages?limit=1"),
                None,
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            body["messages"][0]["messageId"], sent["messageId"],
            "write {i}"
        );
    }
}

/// A history entry without its `unreadCount` (which POST and DELETE answers do not carry), and
/// that count.
fn without_unread_count(entry: &Value) -> (Value, Option<Value>) {
    let mut entry = entry.clone();
    let unread = entry
        .as_object_mut()
        .and_then(|fields| fields.remove("unreadCount"));
    (entry, unread)
}
