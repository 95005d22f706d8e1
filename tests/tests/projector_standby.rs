//! Projector processes through crashes, against real servers: one applies while a second waits
//! as a standby and applies nothing; after a `kill -9` (or a clean stop) of the active one the
//! standby takes over within seconds, so HTTP writes — which wait for the projector — keep
//! answering, and every answered message is in history exactly once, in order.

mod projector_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_schemas::{ChatEvent, RoomId, RoomKind};
use chat_tests::health::{self, ready, wait_until};
use chat_tests::{send, ServiceProcess, TestApp, TestEnv};
use projector_support::{applied, at, chat, publish, user, D};
use serde_json::{json, Value};

/// Quick pulls; default lease (3 s) and standby poll (250 ms).
const PROJECTOR: [(&str, &str); 1] = [("CHAT_PROJECTOR__FETCH_WAIT_MS", "50")];

/// Starts a projector process with a health server; returns it and its base URL.
fn projector(env: &TestEnv) -> (ServiceProcess, String) {
    health::worker("projector", env, &PROJECTOR)
}

/// Waits until the projector at `url` is ready in `role`.
async fn wait_role(url: &str, role: &'static str) -> Value {
    let (body, _) = wait_until(&format!("{url}/readyz"), role, move |status, body| {
        ready(status, body) && body["role"] == role
    })
    .await;
    body
}

/// One answered write of the client: what it sent, the status, and when the answer came.
struct Answer {
    content: String,
    status: u16,
    at: Instant,
}

/// Sends numbered messages one after the other until `stop` is set; returns every answer.
async fn chat_until(
    http: reqwest::Client,
    url: String,
    token: String,
    stop: Arc<AtomicBool>,
) -> Vec<Answer> {
    let mut answers = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let content = format!("m{n}");
        let request = http
            .post(&url)
            .bearer_auth(&token)
            .timeout(Duration::from_secs(30))
            .json(&json!({"content": content}));
        let (status, _) = send(request).await;
        answers.push(Answer {
            content,
            status,
            at: Instant::now(),
        });
        n += 1;
    }
    answers
}

/// The CHAT contents of a room's whole history, oldest first.
async fn history(app: &TestApp, room: &str) -> Vec<String> {
    let mut contents = Vec::new();
    let mut before = String::new();
    loop {
        let (status, page) = app
            .get(
                "alice",
                &format!("/api/rooms/{room}/messages?limit=100{before}"),
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let messages = page["messages"].as_array().expect("messages");
        contents.extend(
            messages
                .iter()
                .filter(|m| m["type"] == "CHAT")
                .filter_map(|m| m["content"].as_str().map(str::to_owned)),
        );
        match page["nextBefore"].as_str() {
            Some(cursor) if !messages.is_empty() => before = format!("&before={cursor}"),
            _ => break,
        }
    }
    contents.reverse();
    contents
}

/// The longest time between two consecutive answers within `from..to` (from `from` to the
/// first answer after it included).
fn longest_gap(answers: &[Answer], from: Instant, to: Instant) -> Duration {
    let mut last = from;
    let mut longest = Duration::ZERO;
    for answer in answers.iter().filter(|a| a.at > from && a.at <= to) {
        longest = longest.max(answer.at - last);
        last = answer.at;
    }
    longest
}

#[tokio::test]
async fn writes_keep_answering_through_kills_of_the_active_projector() {
    let mut app = TestApp::start().await;
    app.stop_projector().await;
    let (mut active, mut active_url) = projector(&app.env);
    wait_role(&active_url, "active").await;
    let room = app.group("alice", &["bob"]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let client = tokio::spawn(chat_until(
        reqwest::Client::new(),
        format!("{}/api/rooms/{room}/messages", app.base_url),
        app.token("alice"),
        stop.clone(),
    ));
    // Two crashes, then a clean stop: each time a fresh standby takes over.
    let mut switches = Vec::new();
    for round in ["kill -9", "kill -9", "SIGTERM"] {
        let (standby, standby_url) = projector(&app.env);
        let body = wait_role(&standby_url, "standby").await;
        assert!(body["checks"].get("consumer").is_none(), "{body}");
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let at = Instant::now();
        if round == "SIGTERM" {
            assert!(active.terminate().success(), "a clean stop");
        } else {
            active.kill();
        }
        let (_, took) = wait_until(
            &format!("{standby_url}/readyz"),
            "active",
            |status, body| ready(status, body) && body["role"] == "active",
        )
        .await;
        eprintln!(
            "{round}: the standby reports active {:.2} s after",
            took.as_secs_f64()
        );
        switches.push((round, at));
        tokio::time::sleep(Duration::from_secs(6)).await;
        (active, active_url) = (standby, standby_url);
    }
    stop.store(true, Ordering::Relaxed);
    let answers = client.await.expect("the client task");
    assert_eq!(body_role(&active_url).await, "active");

    let refused: Vec<(&str, u16)> = answers
        .iter()
        .filter(|a| a.status != 201)
        .map(|a| (a.content.as_str(), a.status))
        .collect();
    assert!(refused.is_empty(), "every write answered 201: {refused:?}");
    let mut worst = Duration::ZERO;
    for (i, (round, at)) in switches.iter().enumerate() {
        let until = switches.get(i + 1).map_or(Instant::now(), |next| next.1);
        let gap = longest_gap(&answers, *at - Duration::from_secs(1), until);
        eprintln!(
            "{round} of the active projector: longest gap between 201 answers {:.2} s",
            gap.as_secs_f64()
        );
        worst = worst.max(gap);
    }
    eprintln!("{} writes answered 201", answers.len());
    assert!(
        worst <= Duration::from_secs(5),
        "take-over held writes for {worst:?}"
    );

    let sent: Vec<String> = answers.into_iter().map(|a| a.content).collect();
    assert_eq!(
        history(&app, &room).await,
        sent,
        "every answered message once, in order"
    );
    drop(active);
}

/// The role the projector at `url` reports now.
async fn body_role(url: &str) -> String {
    health::get(&format!("{url}/readyz"))
        .await
        .and_then(|(_, body)| body["role"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Waits up to `within` until the projector has applied `seq`.
async fn wait_applied_within(env: &TestEnv, seq: u64, within: Duration) {
    let started = Instant::now();
    while applied(&env.cassandra, &env.id, "projector").await < seq {
        assert!(
            started.elapsed() < within,
            "sequence {seq} not applied within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_standby_applies_nothing_and_takes_over_at_once_from_a_clean_stop() {
    let env = TestEnv::new().await;
    let (mut first, first_url) = projector(&env);
    wait_role(&first_url, "active").await;
    let (second, second_url) = projector(&env);
    wait_role(&second_url, "standby").await;

    let room = RoomId::random();
    let created = ChatEvent::RoomCreated {
        kind: RoomKind::Group,
        name: Some("g".into()),
        members: vec![user("alice"), user("bob")],
    };
    publish(&env, &at(room, "alice", D, 0, created)).await;
    let mut last = 0;
    for i in 0..200 {
        last = publish(&env, &at(room, "bob", D, i, chat(&format!("m{i}")))).await;
        if i % 50 == 0 {
            assert_eq!(
                body_role(&second_url).await,
                "standby",
                "it stays a standby"
            );
        }
    }
    wait_applied_within(&env, last, Duration::from_secs(30)).await;
    assert_eq!(
        body_role(&second_url).await,
        "standby",
        "it stays a standby"
    );
    assert_eq!(body_role(&first_url).await, "active");

    let stopped = Instant::now();
    assert!(first.terminate().success(), "a clean stop");
    let next = publish(&env, &at(room, "bob", D, 500, chat("after the stop"))).await;
    wait_applied_within(&env, next, Duration::from_secs(10)).await;
    let took = stopped.elapsed();
    eprintln!(
        "a clean stop: the standby applied the next event {:.2} s after SIGTERM",
        took.as_secs_f64()
    );
    assert!(
        took < Duration::from_secs(2),
        "a released lease is taken within a standby poll, not a lease: {took:?}"
    );
    // Its readiness report is cached for a moment: it says "active" once that runs out.
    wait_role(&second_url, "active").await;
    drop(second);
}
