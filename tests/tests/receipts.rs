//! Read receipts and presence end to end: real NATS, Redis and Cassandra, two edges (one in
//! this process, one a child process), the receipts worker and the projector.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use chat_tests::stomp::StompClient;
use chat_tests::{ServiceProcess, TestApp};
use edge::stomp::{Command, Frame};
use serde_json::{json, Value};

/// A connected client of `user` on the edge at `url`.
async fn client(app: &TestApp, url: &str, user: &str) -> StompClient {
    StompClient::connect(url, &app.token(user)).await
}

/// Subscribes to the room (waiting for the receipt, by which time presence is stored).
async fn enter(client: &mut StompClient, id: &str, room: &str) {
    client
        .subscribe(id, &format!("/sub/rooms/{room}"), &[])
        .await;
}

/// Unsubscribes, waiting for the receipt.
async fn exit(client: &mut StompClient, id: &str) {
    let receipt = format!("unsub-{id}");
    client
        .send(
            Frame::new(Command::Unsubscribe)
                .with_header("id", id)
                .with_header("receipt", receipt.as_str()),
        )
        .await;
    client.expect_receipt(&receipt).await;
}

/// Sends a CHAT over STOMP and waits for its receipt; the edge has stored it by then.
async fn say(client: &mut StompClient, room: &str, content: &str) {
    let receipt = format!("say-{content}");
    client
        .send(
            Frame::new(Command::Send)
                .with_header("destination", format!("/pub/rooms/{room}/messages"))
                .with_header("receipt", receipt.as_str())
                .with_body(json!({"content": content}).to_string()),
        )
        .await;
    client.expect_receipt(&receipt).await;
}

/// The next MESSAGE whose body has `type`, skipping other messages.
async fn next_of(client: &mut StompClient, kind: &str) -> Value {
    loop {
        let (_, body) = client.message().await;
        if body["type"] == kind {
            return body;
        }
    }
}

/// Asserts that no MESSAGE of `kind` arrives within `within`.
async fn none_of(client: &mut StompClient, kind: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while let Some(frame) = client
        .next_within(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        let body: Value = serde_json::from_slice(&frame.body).unwrap_or(Value::Null);
        assert_ne!(body["type"], kind, "unexpected {body}");
    }
}

/// Polls `probe` until it returns `Some`, for up to 10 s.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `user`'s unread count in `room` from `GET /api/rooms`, and their badge.
async fn counts(app: &TestApp, user: &str, room: &str) -> (u64, u64) {
    let (status, rooms) = app.get(user, "/api/rooms").await;
    assert_eq!(status, 200, "{rooms}");
    let in_room = rooms["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .find(|r| r["roomId"] == room)
        .map_or(0, |r| r["unreadCount"].as_u64().expect("unreadCount"));
    let (status, badge) = app.get(user, "/api/users/me/unread").await;
    assert_eq!(status, 200, "{badge}");
    (in_room, badge["unreadCount"].as_u64().expect("badge"))
}

/// Who has not read message `id`, from the API.
async fn unread_by(app: &TestApp, user: &str, room: &str, id: &str) -> Vec<String> {
    let (status, body) = app
        .get(user, &format!("/api/rooms/{room}/messages/{id}/unread"))
        .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body["userIds"].clone()).expect("userIds")
}

#[tokio::test]
async fn entering_reads_what_was_unread_and_everyone_hears_it() {
    let app = TestApp::start().await;
    let other = ServiceProcess::start("edge", &app.env, &[]);
    let room = app.group("alice", &["bob", "carol"]).await;

    let mut alice = client(&app, &app.base_url, "alice").await;
    enter(&mut alice, "r", &room).await;
    let own = next_of(&mut alice, "INFO").await;
    assert_eq!(
        (&own["userId"], &own["readCount"]),
        (&json!("alice"), &json!(0))
    );
    let mut bob = client(&app, &other.url, "bob").await;
    enter(&mut bob, "r", &room).await;
    assert_eq!(next_of(&mut alice, "INFO").await["userId"], "bob");

    say(&mut alice, &room, "hello").await;
    let chat = next_of(&mut alice, "CHAT").await;
    assert_eq!(chat["unreadCount"], 1, "only carol is away: {chat}");
    assert_eq!(next_of(&mut bob, "CHAT").await["unreadCount"], 1);
    let id = chat["messageId"].as_str().expect("id").to_owned();
    // A STOMP RECEIPT stands on the log, not the history: wait until the projector has it.
    let path = format!("/api/rooms/{room}/messages/{id}/unread");
    eventually("the CHAT is in the history", || async {
        (app.get("bob", &path).await.0 == 200).then_some(())
    })
    .await;
    assert_eq!(unread_by(&app, "bob", &room, &id).await, ["carol"]);
    assert_eq!(counts(&app, "carol", &room).await, (1, 1));

    let quick_check = chat_read_state::UnreadCounts::new(
        app.env.redis.clone(),
        chat_read_state::ReadKeys::new(app.env.redis_settings.key_prefix.clone()),
    );
    let room_id: chat_schemas::RoomId = room.parse().expect("room id");
    assert!(quick_check.room_has_unread(&room_id).await.expect("redis"));

    let mut carol = client(&app, &other.url, "carol").await;
    enter(&mut carol, "r", &room).await;
    let expected = json!({"type": "INFO", "roomId": room, "userId": "carol",
                          "readCount": 1, "lastReadMessageId": id});
    assert_eq!(next_of(&mut alice, "INFO").await, expected);
    assert_eq!(next_of(&mut bob, "INFO").await, expected);
    assert_eq!(
        next_of(&mut carol, "INFO").await,
        expected,
        "her own INFO too"
    );

    let (status, page) = app
        .get("carol", &format!("/api/rooms/{room}/messages"))
        .await;
    assert_eq!(status, 200, "{page}");
    let entry = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["messageId"] == id.as_str())
        .cloned()
        .expect("the message is in the history");
    assert_eq!(entry["unreadCount"], 0);
    assert_eq!(counts(&app, "carol", &room).await, (0, 0));
    assert!(unread_by(&app, "alice", &room, &id).await.is_empty());
    assert!(
        !quick_check.room_has_unread(&room_id).await.expect("redis"),
        "nobody has anything unread in the room"
    );
}

#[tokio::test]
async fn a_second_device_keeps_the_user_present() {
    let app = TestApp::start().await;
    let other = ServiceProcess::start("edge", &app.env, &[]);
    let room = app.group("alice", &["carol"]).await;
    let mut alice = client(&app, &app.base_url, "alice").await;
    enter(&mut alice, "r", &room).await;
    next_of(&mut alice, "INFO").await;

    let mut laptop = client(&app, &app.base_url, "carol").await;
    let mut phone = client(&app, &other.url, "carol").await;
    enter(&mut laptop, "r", &room).await;
    assert_eq!(next_of(&mut alice, "INFO").await["userId"], "carol");
    enter(&mut phone, "r", &room).await;
    exit(&mut phone, "r").await;
    drop(phone);
    none_of(&mut alice, "OUT", Duration::from_millis(1500)).await;

    say(&mut alice, &room, "seen").await;
    assert_eq!(next_of(&mut alice, "CHAT").await["unreadCount"], 0);

    exit(&mut laptop, "r").await;
    let out = next_of(&mut alice, "OUT").await;
    assert_eq!(
        out,
        json!({"type": "OUT", "roomId": room, "userId": "carol"})
    );
    say(&mut alice, &room, "unseen").await;
    assert_eq!(next_of(&mut alice, "CHAT").await["unreadCount"], 1);
    assert_eq!(counts(&app, "carol", &room).await, (1, 1));
}

#[tokio::test]
async fn leaving_reads_everything_and_says_how_much() {
    let app = TestApp::start().await;
    let room = app.group("alice", &["bob", "carol"]).await;
    let mut alice = client(&app, &app.base_url, "alice").await;
    enter(&mut alice, "r", &room).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        say(&mut alice, &room, &format!("m{i}")).await;
        let chat = next_of(&mut alice, "CHAT").await;
        assert_eq!(chat["unreadCount"], 2);
        ids.push(chat["messageId"].as_str().expect("id").to_owned());
    }
    assert_eq!(counts(&app, "bob", &room).await, (3, 3));
    let (status, body) = app
        .delete("bob", &format!("/api/rooms/{room}/members/me"))
        .await;
    assert!(status == 200 || status == 204, "{body}");
    let leave = next_of(&mut alice, "LEAVE").await;
    assert_eq!(
        (&leave["userId"], &leave["readCount"]),
        (&json!("bob"), &json!(3))
    );
    for id in &ids {
        assert_eq!(unread_by(&app, "alice", &room, id).await, ["carol"]);
    }
    assert_eq!(counts(&app, "bob", &room).await, (0, 0));
    assert_eq!(counts(&app, "carol", &room).await, (3, 3));
}

#[tokio::test]
async fn deleting_drops_the_unread_sets_and_feeds_carry_room_counts() {
    let app = TestApp::start().await;
    let room = app.group("alice", &["carol"]).await;
    let mut carol = client(&app, &app.base_url, "carol").await;
    carol.subscribe("feed", "/sub/users/carol", &[]).await;
    let mut alice = client(&app, &app.base_url, "alice").await;
    enter(&mut alice, "r", &room).await;
    let mut ids = Vec::new();
    for i in 1..=2 {
        say(&mut alice, &room, &format!("m{i}")).await;
        let entry = next_of(&mut carol, "CHAT").await;
        assert_eq!(entry["roomUnreadCount"], i, "{entry}");
        assert_eq!(entry["unreadCount"], 1);
        ids.push(entry["messageId"].as_str().expect("id").to_owned());
    }
    let (status, body) = app
        .delete("alice", &format!("/api/rooms/{room}/messages/{}", ids[0]))
        .await;
    assert!(status == 200 || status == 204, "{body}");
    let delete = next_of(&mut alice, "DELETE").await;
    assert_eq!(delete["messageIds"], json!([ids[0]]));
    eventually("carol's count drops", || async {
        (counts(&app, "carol", &room).await == (1, 1)).then_some(())
    })
    .await;
    assert!(unread_by(&app, "alice", &room, &ids[0]).await.is_empty());
    assert_eq!(unread_by(&app, "alice", &room, &ids[1]).await, ["carol"]);
}

/// What the counts must be: a model of the rules, driven by the same random steps.
#[derive(Default)]
struct Model {
    members: BTreeSet<String>,
    present: BTreeSet<String>,
    /// Message id -> (sender, who has not read it).
    unread: BTreeMap<String, (String, BTreeSet<String>)>,
}

impl Model {
    fn send(&mut self, sender: &str, id: String) {
        let absent: BTreeSet<String> = self
            .members
            .iter()
            .filter(|m| *m != sender && !self.present.contains(*m))
            .cloned()
            .collect();
        self.unread.insert(id, (sender.to_owned(), absent));
    }

    fn read_all(&mut self, user: &str) {
        for (_, set) in self.unread.values_mut() {
            set.remove(user);
        }
    }

    fn count(&self, user: &str) -> u64 {
        let n = self
            .unread
            .values()
            .filter(|(_, s)| s.contains(user))
            .count();
        u64::try_from(n).expect("small")
    }
}

/// A tiny deterministic generator, so a failure can be replayed from its seed.
struct Steps(u64);

impl Steps {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % u64::try_from(n).expect("small")).expect("small")
    }
}

#[tokio::test]
async fn counts_match_the_per_message_truth_after_random_steps() {
    let app = TestApp::start().await;
    let users = ["alice", "bob", "carol", "dave"];
    let room = app.group("alice", &["bob", "carol", "dave"]).await;
    let mut model = Model {
        members: users.iter().map(|u| (*u).to_owned()).collect(),
        ..Model::default()
    };
    let mut clients = Vec::new();
    for user in users {
        clients.push(client(&app, &app.base_url, user).await.ignoring_presence());
    }
    let seed = 0x9e37_79b9_7f4a_7c15;
    let mut steps = Steps(seed);
    for step in 0..60 {
        let who = steps.below(users.len());
        let user = users[who];
        let member = model.members.contains(user);
        match steps.below(10) {
            0..=3 if member => {
                let (status, sent) = app
                    .post(
                        user,
                        &format!("/api/rooms/{room}/messages"),
                        json!({"content": format!("step {step}")}),
                    )
                    .await;
                assert_eq!(status, 201, "{sent}");
                let id = sent["messageId"].as_str().expect("id").to_owned();
                model.send(user, id);
            }
            4..=5 if member && !model.present.contains(user) => {
                enter(&mut clients[who], "r", &room).await;
                model.present.insert(user.to_owned());
                model.read_all(user);
            }
            6..=7 if model.present.contains(user) => {
                exit(&mut clients[who], "r").await;
                model.present.remove(user);
            }
            8 if member && model.members.len() > 2 => {
                // A client leaves the room screen before it quits the room.
                if model.present.remove(user) {
                    exit(&mut clients[who], "r").await;
                }
                let (status, body) = app
                    .delete(user, &format!("/api/rooms/{room}/members/me"))
                    .await;
                assert!(status == 200 || status == 204, "{body}");
                model.members.remove(user);
                model.read_all(user);
            }
            9 if !member => {
                let inviter = model.members.iter().next().cloned().expect("a member");
                let (status, body) = app
                    .post(
                        &inviter,
                        &format!("/api/rooms/{room}/members"),
                        json!({"userIds": [user]}),
                    )
                    .await;
                assert!(status == 200 || status == 201, "{body}");
                model.members.insert(user.to_owned());
            }
            9 => {
                let own: Vec<String> = model
                    .unread
                    .iter()
                    .filter(|(_, (sender, _))| sender == user)
                    .map(|(id, _)| id.clone())
                    .collect();
                if !own.is_empty() {
                    let id = own[steps.below(own.len())].clone();
                    let (status, body) = app
                        .delete(user, &format!("/api/rooms/{room}/messages/{id}"))
                        .await;
                    assert!(status == 200 || status == 204, "{body}");
                    model.unread.remove(&id);
                }
            }
            _ => {}
        }
    }
    let reader = model.members.iter().next().cloned().expect("a member");
    eventually("the worker caught up", || async {
        let mut all_match = true;
        for (id, (_, expected)) in &model.unread {
            let got: BTreeSet<String> = unread_by(&app, &reader, &room, id)
                .await
                .into_iter()
                .collect();
            all_match &= &got == expected;
        }
        all_match.then_some(())
    })
    .await;
    for user in users {
        let expected = if model.members.contains(user) {
            model.count(user)
        } else {
            0
        };
        assert_eq!(
            counts(&app, user, &room).await,
            (expected, expected),
            "{user} (seed {seed:#x})"
        );
    }
}

/// The next view of `views` that is the CHAT saying `content`, within 10 s.
async fn chat_view(views: &mut async_nats::Subscriber, content: &str) -> async_nats::Message {
    use futures::StreamExt;

    loop {
        let view = tokio::time::timeout(Duration::from_secs(10), views.next())
            .await
            .expect("a room view in time")
            .expect("the subscription lives");
        let body: Value = serde_json::from_slice(&view.payload).expect("JSON view");
        if body["content"] == content {
            return view;
        }
    }
}

/// With `hop_timing` on, a room view carries when its event was stored, read, applied and
/// published, in that order (what `scripts/bench` times each hop with); off, it carries none.
#[tokio::test]
async fn room_views_carry_hop_times_only_with_hop_timing() {
    let mut app = TestApp::start().await;
    let room = app.group("alice", &["bob"]).await;
    let room_id: chat_schemas::RoomId = room.parse().expect("room id");
    let mut views = app
        .env
        .nats
        .subscribe(app.env.log.view_room_subject(&room_id))
        .await
        .expect("subscribe to the room views");
    app.env.nats.flush().await.expect("flush");
    let hop_times = |view: &async_nats::Message| {
        view.headers
            .as_ref()
            .and_then(|h| h.get(chat_schemas::EventLog::HOP_TIMES_HEADER))
            .map(|v| v.as_str().to_owned())
    };

    app.post(
        "alice",
        &format!("/api/rooms/{room}/messages"),
        json!({"content": "off"}),
    )
    .await;
    let view = chat_view(&mut views, "off").await;
    assert_eq!(hop_times(&view), None, "off by default");

    app.stop_receipts().await;
    let mut settings = app.receipts_settings();
    settings.receipts.hop_timing = true;
    app.start_receipts_with(settings);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_micros();
    app.post(
        "alice",
        &format!("/api/rooms/{room}/messages"),
        json!({"content": "on"}),
    )
    .await;
    let view = chat_view(&mut views, "on").await;
    let times: Vec<u128> = hop_times(&view)
        .expect("Chat-Hop-Times on")
        .split(' ')
        .map(|t| t.parse().expect("microseconds"))
        .collect();
    assert_eq!(times.len(), 4, "{times:?}");
    assert!(
        times[0] >= before - 1_000_000,
        "stored after the send: {times:?}"
    );
    assert!(
        times.windows(2).all(|w| w[0] <= w[1] + 1_000),
        "stored, read, applied, published in order: {times:?}"
    );
}

/// Appends `event` by `actor` to the room's log as an edge would, and returns its sequence.
async fn append(app: &TestApp, room: &str, actor: &str, event: chat_schemas::ChatEvent) -> u64 {
    let room: chat_schemas::RoomId = room.parse().expect("room id");
    let actor = chat_schemas::UserId::parse(actor).expect("user id");
    app.env
        .store_in_log(&chat_schemas::Envelope::new(room, actor, event))
        .await
}

#[tokio::test]
async fn reactions_and_edits_are_live_replayed_in_order_and_change_no_counts() {
    let app = TestApp::start().await;
    let room = app.group("alice", &["carol"]).await;
    let mut alice = client(&app, &app.base_url, "alice").await;
    enter(&mut alice, "r", &room).await;
    say(&mut alice, &room, "m1").await;
    let chat = next_of(&mut alice, "CHAT").await;
    let target = chat["messageId"].as_str().expect("id").to_owned();
    let target_id = chat_schemas::MessageId::from_sequence(target.parse().expect("number"))
        .expect("message id");
    eventually("carol has one unread", || async {
        (counts(&app, "carol", &room).await == (1, 1)).then_some(())
    })
    .await;

    let reaction = chat_schemas::ChatEvent::Reaction {
        target_id,
        user_id: chat_tests::user("carol"),
        emoji: "👍".into(),
        added: true,
    };
    let reacted = append(&app, &room, "carol", reaction).await;
    let edit = chat_schemas::ChatEvent::Edit {
        target_id,
        content: "m1, edited".into(),
    };
    let edited = append(&app, &room, "alice", edit).await;

    let live_reaction = next_of(&mut alice, "REACTION").await;
    assert_eq!(
        live_reaction,
        json!({"type": "REACTION", "roomId": room, "messageId": reacted.to_string(),
               "targetId": target, "userId": "carol", "emoji": "👍", "added": true})
    );
    let live_edit = next_of(&mut alice, "EDIT").await;
    assert_eq!(
        (
            &live_edit["messageId"],
            &live_edit["targetId"],
            &live_edit["content"]
        ),
        (
            &json!(edited.to_string()),
            &json!(target),
            &json!("m1, edited")
        )
    );
    assert_eq!(counts(&app, "carol", &room).await, (1, 1), "no count moved");
    assert_eq!(unread_by(&app, "alice", &room, &target).await, ["carol"]);

    // A client that saw only the CHAT resumes with both, in log order, once each.
    let mut again = client(&app, &app.base_url, "alice").await;
    again
        .subscribe(
            "r2",
            &format!("/sub/rooms/{room}"),
            &[("since", target.as_str())],
        )
        .await;
    let first = again.message().await.1;
    assert_eq!(first, live_reaction, "the replay is what was live");
    let second = again.message().await.1;
    assert_eq!(
        (&second["type"], &second["messageId"]),
        (&json!("EDIT"), &json!(edited.to_string())),
        "nothing between the two, nothing twice"
    );
}

/// `user`'s `mentionCount` in `room` from `GET /api/rooms`.
async fn mention_count(app: &TestApp, user: &str, room: &str) -> u64 {
    let (status, rooms) = app.get(user, "/api/rooms").await;
    assert_eq!(status, 200, "{rooms}");
    rooms["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .find(|r| r["roomId"] == room)
        .map(|r| r["mentionCount"].as_u64().expect("mentionCount"))
        .expect("the room is listed")
}

/// Sends a CHAT over HTTP that mentions `mentions`; returns its id.
async fn mention(app: &TestApp, sender: &str, room: &str, mentions: &[&str]) -> String {
    let (status, sent) = app
        .post(
            sender,
            &format!("/api/rooms/{room}/messages"),
            json!({"content": format!("hey {mentions:?}"), "mentions": mentions}),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    sent["messageId"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn mention_counts_follow_unread_mentions_on_the_feed_and_the_room_list() {
    let app = TestApp::start().await;
    let room = app.group("alice", &["bob", "carol"]).await;
    let mut carol = client(&app, &app.base_url, "carol").await;
    carol.subscribe("feed", "/sub/users/carol", &[]).await;
    let mut bob = client(&app, &app.base_url, "bob").await;
    enter(&mut bob, "r", &room).await;

    let first = mention(&app, "alice", &room, &["carol", "bob"]).await;
    assert_eq!(next_of(&mut carol, "CHAT").await["mentionCount"], 1);
    say(&mut bob, &room, "plain").await;
    let plain = next_of(&mut carol, "CHAT").await;
    assert_eq!(
        (&plain["roomUnreadCount"], &plain["mentionCount"]),
        (&json!(2), &json!(1)),
        "a CHAT without a mention leaves the count"
    );
    mention(&app, "alice", &room, &["carol"]).await;
    assert_eq!(next_of(&mut carol, "CHAT").await["mentionCount"], 2);
    assert_eq!(mention_count(&app, "carol", &room).await, 2);
    assert_eq!(
        mention_count(&app, "bob", &room).await,
        0,
        "bob was in the room: he read his mention at once"
    );

    let (status, body) = app
        .delete("alice", &format!("/api/rooms/{room}/messages/{first}"))
        .await;
    assert_eq!(status, 200, "{body}");
    eventually("a deleted mention no longer counts", || async {
        (mention_count(&app, "carol", &room).await == 1).then_some(())
    })
    .await;

    enter(&mut carol, "r", &room).await;
    assert_eq!(
        mention_count(&app, "carol", &room).await,
        0,
        "read on entering"
    );
    exit(&mut carol, "r").await;
    mention(&app, "alice", &room, &["carol"]).await;
    eventually("a new mention counts again", || async {
        (mention_count(&app, "carol", &room).await == 1).then_some(())
    })
    .await;
    assert_eq!(counts(&app, "carol", &room).await, (1, 1));
}

/// `GET /api/rooms/{room}/presence` as `user`: the members present and `asOf`.
async fn presence(app: &TestApp, user: &str, room: &str) -> (BTreeSet<String>, u64) {
    let (status, body) = app.get(user, &format!("/api/rooms/{room}/presence")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["roomId"], room);
    let users: Vec<String> = serde_json::from_value(body["userIds"].clone()).expect("userIds");
    let mut sorted = users.clone();
    sorted.sort();
    assert_eq!(users, sorted, "userIds are sorted");
    let as_of = body["asOf"].as_str().expect("asOf is a string");
    (
        users.into_iter().collect(),
        as_of.parse().expect("asOf is a message id"),
    )
}

/// Reads the INFO and OUT frames queued on `client` (for up to `within`), as `(message-id,
/// type, userId)` in the order they came.
async fn presence_frames(client: &mut StompClient, within: Duration) -> Vec<(u64, String, String)> {
    let mut frames = Vec::new();
    while let Some(frame) = client.next_within(within).await {
        let body: Value = serde_json::from_slice(&frame.body).expect("json body");
        if body["type"] == "INFO" || body["type"] == "OUT" {
            let id = frame.header("message-id").expect("message-id");
            frames.push((
                id.parse().expect("a stored event's id"),
                body["type"].as_str().expect("type").to_owned(),
                body["userId"].as_str().expect("userId").to_owned(),
            ));
        }
    }
    frames
}

#[tokio::test]
async fn the_presence_snapshot_and_the_frames_after_it_say_who_is_here() {
    let app = TestApp::start().await;
    let other = ServiceProcess::start("edge", &app.env, &[]);
    let room = app.group("alice", &["bob", "carol"]).await;
    let (nobody, _) = presence(&app, "alice", &room).await;
    assert!(nobody.is_empty(), "{nobody:?}");

    let mut bob = client(&app, &other.url, "bob").await;
    enter(&mut bob, "r", &room).await;
    let mut bob_phone = client(&app, &app.base_url, "bob").await;
    enter(&mut bob_phone, "r", &room).await;
    let mut carol = client(&app, &app.base_url, "carol").await;
    enter(&mut carol, "r", &room).await;
    exit(&mut carol, "r").await;

    // Alice enters the way docs/api.md says: subscribe, then the snapshot, then the frames
    // after `asOf`. Whatever the worker applied by then, the result is bob alone plus herself.
    let mut alice = client(&app, &app.base_url, "alice").await;
    enter(&mut alice, "r", &room).await;
    let (mut here, as_of) = presence(&app, "alice", &room).await;
    for (id, kind, user) in presence_frames(&mut alice, Duration::from_millis(500)).await {
        if id > as_of {
            if kind == "INFO" {
                here.insert(user);
            } else {
                here.remove(&user);
            }
        }
    }
    let expected: BTreeSet<String> = ["alice", "bob"].map(String::from).into();
    assert_eq!(here, expected);
    eventually("the snapshot has alice and bob", || async {
        (presence(&app, "carol", &room).await.0 == expected).then_some(())
    })
    .await;

    // One of bob's two devices goes: he is still here. The other goes: the OUT that alice
    // hears is included in the next snapshot.
    drop(bob_phone);
    none_of(&mut alice, "OUT", Duration::from_millis(500)).await;
    assert_eq!(presence(&app, "alice", &room).await.0, expected);
    drop(bob);
    let out_id: u64 = loop {
        let (frame, body) = alice.message().await;
        if body["type"] == "OUT" {
            assert_eq!(body["userId"], "bob");
            break frame.header("message-id").expect("id").parse().expect("id");
        }
    };
    let (alone, as_of) = presence(&app, "alice", &room).await;
    assert!(as_of >= out_id, "a frame comes after the worker applied it");
    assert_eq!(alone, BTreeSet::from(["alice".to_owned()]));

    let (status, body) = app
        .get("dave", &format!("/api/rooms/{room}/presence"))
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("NOT_A_MEMBER"))
    );
    let unknown = uuid::Uuid::new_v4();
    for path in [
        format!("/api/rooms/{unknown}/presence"),
        "/api/rooms/nope/presence".into(),
    ] {
        let (status, body) = app.get("alice", &path).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (404, &json!("ROOM_NOT_FOUND"))
        );
    }
}

/// A log event of `room` by `actor`, with the next sequence of `seq`.
fn logged(
    seq: &mut u64,
    room: chat_schemas::RoomId,
    actor: &str,
    event: chat_schemas::ChatEvent,
) -> receipts::LoggedEvent {
    *seq += 1;
    receipts::LoggedEvent {
        seq: *seq,
        envelope: chat_schemas::Envelope::new(room, chat_tests::user(actor), event),
    }
}

/// A CHAT mentioning `mentioned`.
fn mentioning(mentioned: &[&str]) -> chat_schemas::ChatEvent {
    chat_schemas::ChatEvent::Chat {
        content: "hi".into(),
        client_message_id: None,
        reply_to: None,
        mentions: mentioned.iter().map(|u| chat_tests::user(u)).collect(),
    }
}

/// Outcomes with each CHAT's members in one order, to compare.
fn in_order(mut outcomes: Vec<receipts::Outcome>) -> Vec<receipts::Outcome> {
    for outcome in &mut outcomes {
        if let receipts::Outcome::Chat { members, .. } = outcome {
            members.sort();
        }
    }
    outcomes
}

/// What the worker tells from memory before Redis answers (`publish_from_memory`) is what it
/// publishes when it waits for Redis, event for event: `unreadCount`, the previous published
/// event, every member's count and every mention count, through presence, mentions, a DELETE, a
/// LEAVE, an INVITE, a sender who is not a member, and batches of several CHATs and rooms; and
/// Redis's answers agree with every told one. It tells nothing for what it cannot know: other
/// events, a redelivery, the mention counts after a DELETE until a CHAT's answer lists them.
#[tokio::test]
async fn views_told_from_memory_are_what_redis_applies() {
    use chat_schemas::{ChatEvent, MessageId, RoomId, RoomKind};
    use chat_tests::user;

    let env = chat_tests::TestEnv::new().await;
    let state = |name: &str| {
        let prefix = format!("{}{name}:", env.redis_settings.key_prefix);
        receipts::ReadState::new(env.redis.clone(), chat_read_state::ReadKeys::new(prefix))
    };
    // Two copies of the same rooms: one tells, one waits for Redis.
    let (mut telling, mut waiting) = (state("telling"), state("waiting"));
    let fence = receipts::state::Fence {
        key: env.redis_key("lease"),
        holder: "test".into(),
        epoch: 1,
    };
    let (a, b) = (RoomId::random(), RoomId::random());
    let group = |members: &[&str]| ChatEvent::RoomCreated {
        kind: RoomKind::Group,
        name: Some("g".into()),
        members: members.iter().map(|u| user(u)).collect(),
    };
    let info = |who: &str, edge: &str| ChatEvent::Info {
        user_id: user(who),
        read_count: 0,
        last_read_message_id: None,
        edge: Some(edge.into()),
    };
    let out = |who: &str, edge: &str| ChatEvent::Out {
        user_id: user(who),
        edge: Some(edge.into()),
    };
    let s = &mut 0;
    let created = vec![
        logged(s, a, "ann", group(&["ann", "bob", "cat", "dan"])),
        logged(s, b, "eve", group(&["ann", "eve"])),
    ];
    let first = logged(s, a, "ann", mentioning(&[]));
    let bob_in = logged(s, a, "bob", info("bob", "e1"));
    let mentions_two = logged(s, a, "bob", mentioning(&["cat", "dan"]));
    let deleted = MessageId::from_sequence(mentions_two.seq).expect("id");
    let batches = vec![
        (created, false),
        (vec![first], true),
        (vec![bob_in], false),
        (
            vec![mentions_two, logged(s, b, "eve", mentioning(&["ann"]))],
            true,
        ),
        (vec![logged(s, a, "cat", mentioning(&["dan", "bob"]))], true),
        (vec![logged(s, a, "bob", out("bob", "e1"))], false),
        (vec![logged(s, a, "ann", mentioning(&["bob"]))], true),
        (
            vec![logged(
                s,
                a,
                "bob",
                ChatEvent::Delete {
                    message_ids: vec![deleted],
                },
            )],
            false,
        ),
        (vec![logged(s, a, "dan", mentioning(&[]))], false),
        (vec![logged(s, a, "ann", mentioning(&["cat"]))], true),
        (vec![logged(s, a, "cat", info("cat", "e2"))], false),
        (vec![logged(s, a, "bob", mentioning(&[]))], true),
        (
            vec![logged(
                s,
                a,
                "dan",
                ChatEvent::Leave {
                    user_id: user("dan"),
                    read_count: 0,
                },
            )],
            false,
        ),
        (vec![logged(s, a, "ann", mentioning(&["dan"]))], true),
        (
            vec![logged(
                s,
                a,
                "ann",
                ChatEvent::Invite {
                    user_ids: vec![user("eve")],
                },
            )],
            false,
        ),
        (
            vec![
                logged(s, a, "eve", mentioning(&[])),
                logged(s, a, "ann", mentioning(&["eve", "bob"])),
                logged(s, b, "ann", mentioning(&[])),
            ],
            true,
        ),
        (vec![logged(s, a, "zed", mentioning(&["ann"]))], true),
    ];
    let mut last = Vec::new();
    for (i, (batch, tellable)) in batches.into_iter().enumerate() {
        let told = telling.predict(&batch, 0);
        telling
            .apply(&batch, Some(&fence), 0)
            .await
            .expect("applies");
        let applied = waiting
            .apply(&batch, Some(&fence), 0)
            .await
            .expect("applies");
        assert_eq!(told.is_some(), tellable, "batch {i}: {told:?}");
        if let Some(told) = told {
            assert_eq!(in_order(told), in_order(applied), "batch {i}");
        }
        last = batch;
    }
    assert!(
        telling.predict(&last, 0).is_none(),
        "a redelivery gets what Redis recorded"
    );
    assert_eq!(
        telling.mispredicted(),
        0,
        "Redis agreed with every told one"
    );
}

/// A CHAT the worker has not applied yet (its view may be out already, told from memory)
/// counts in history and catch-up as applying it will count it: every member behind it but the
/// sender, not 0 as a message everyone read. After it is applied, the count is the same.
#[tokio::test]
async fn a_chat_not_applied_yet_counts_as_applying_it_will() {
    use chat_schemas::{ChatEvent, RoomId, RoomKind};
    use chat_tests::user;

    let env = chat_tests::TestEnv::new().await;
    let keys = chat_read_state::ReadKeys::new(env.redis_settings.key_prefix.clone());
    let mut state = receipts::ReadState::new(env.redis.clone(), keys.clone());
    let counts = chat_read_state::UnreadCounts::new(env.redis.clone(), keys);
    let room = RoomId::random();
    let s = &mut 0;
    let created = logged(
        s,
        room,
        "ann",
        ChatEvent::RoomCreated {
            kind: RoomKind::Group,
            name: Some("g".into()),
            members: ["ann", "bob", "cat", "dan"].map(user).to_vec(),
        },
    );
    let bob_in = logged(
        s,
        room,
        "bob",
        ChatEvent::Info {
            user_id: user("bob"),
            read_count: 0,
            last_read_message_id: None,
            edge: Some("e1".into()),
        },
    );
    let chat = logged(s, room, "ann", mentioning(&[]));
    state
        .apply(&[created, bob_in.clone()], None, 0)
        .await
        .expect("applies");
    let before = counts
        .of_messages(&room, &[(bob_in.seq, "bob"), (chat.seq, "ann")])
        .await
        .expect("counts");
    assert_eq!(
        before,
        [0, 2],
        "the INFO has no count; the CHAT: cat and dan"
    );
    state
        .apply(std::slice::from_ref(&chat), None, 0)
        .await
        .expect("applies");
    let after = counts
        .of_messages(&room, &[(chat.seq, "ann")])
        .await
        .expect("counts");
    assert_eq!(after, [2]);
}
