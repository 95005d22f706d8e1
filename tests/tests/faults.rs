//! Fault tests: they stop and start the shared servers, so `scripts/test` runs them alone, one at
//! a time, after every other test (`--ignored --test-threads=1`).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use chat_tests::health::{down, ready, wait_until, wait_until_within, worker};
use chat_tests::TestApp;
use serde_json::{json, Value};

/// Runs `scripts/servers ACTION cassandra`.
fn cassandra(action: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/servers");
    let status = Command::new("bash")
        .arg(script)
        .args([action, "cassandra"])
        .status()
        .unwrap_or_else(|e| panic!("scripts/servers {action}: {e}"));
    assert!(
        status.success(),
        "scripts/servers {action} cassandra failed"
    );
}

#[tokio::test]
#[ignore = "stops the shared Cassandra: run alone by scripts/test"]
async fn every_acknowledged_message_survives_a_cassandra_outage_exactly_once() {
    let app = TestApp::start_with(|s| s.edge.read_your_writes_timeout_ms = 1000).await;
    let (status, room) = app
        .post(
            "alice",
            "/api/rooms",
            json!({"type": "GROUP", "name": "g", "userIds": ["bob"]}),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let id = room["roomId"].as_str().expect("id").to_owned();
    let path = format!("/api/rooms/{id}/messages");
    const MESSAGES: usize = 60;

    let sender = async {
        let mut outcomes = Vec::new();
        for i in 0..MESSAGES {
            let body = json!({"content": format!("m{i}"), "clientMessageId": format!("c{i}")});
            // A client retries with the same clientMessageId until it gets an answer.
            let mut attempts = 0;
            loop {
                attempts += 1;
                let (status, answer) = app.post("alice", &path, body.clone()).await;
                if status == 200 || status == 201 {
                    outcomes.push(answer["messageId"].as_str().expect("id").to_owned());
                    break;
                }
                assert_eq!(status, 503, "only unavailability is expected: {answer}");
                assert!(attempts < 600, "message {i} never got through");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        outcomes
    };
    let outage = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        tokio::task::spawn_blocking(|| cassandra("down"))
            .await
            .expect("down");
        tokio::time::sleep(Duration::from_secs(3)).await;
        tokio::task::spawn_blocking(|| cassandra("up"))
            .await
            .expect("up");
    };
    let (acknowledged, ()) = tokio::join!(sender, outage);
    assert_eq!(acknowledged.len(), MESSAGES);
    let unique: std::collections::BTreeSet<_> = acknowledged.iter().collect();
    assert_eq!(unique.len(), MESSAGES, "each message has its own id");

    let (status, page) = app.get("bob", &format!("{path}?limit=100")).await;
    assert_eq!(status, 200, "{page}");
    let chats: Vec<String> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["type"] == "CHAT")
        .map(|m| m["messageId"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(
        chats.len(),
        MESSAGES,
        "every message exactly once in Cassandra"
    );
    let mut expected: Vec<String> = acknowledged;
    expected.reverse();
    assert_eq!(chats, expected);
}

#[tokio::test]
#[ignore = "stops the shared Cassandra: run alone by scripts/test"]
async fn readiness_follows_a_cassandra_outage() {
    let app = TestApp::start().await;
    let edge = format!("{}/readyz", app.base_url);
    // Its own name: the app runs a projector of its own on the same environment.
    let (_projector, projector) = worker(
        "projector",
        &app.env,
        &[("CHAT_PROJECTOR__NAME", "readiness")],
    );
    let projector = format!("{projector}/readyz");
    wait_until(&edge, "ready", ready).await;
    wait_until(&projector, "ready", ready).await;

    tokio::task::spawn_blocking(|| cassandra("down"))
        .await
        .expect("down");
    let degraded = |status: u16, body: &Value| {
        status == 200
            && body["status"] == "degraded"
            && body["checks"]["cassandra"]
                .as_str()
                .is_some_and(|state| state.starts_with("down: "))
    };
    let result = async {
        let (body, took) = wait_until(&edge, "degraded", degraded).await;
        eprintln!("edge: degraded {took:?} after Cassandra stopped: {body}");
        assert_eq!(body["checks"]["nats"], "ok", "{body}");
        assert_eq!(body["checks"]["redis"], "ok", "{body}");
        let (body, took) = wait_until(&projector, "unavailable", down("cassandra")).await;
        eprintln!("projector: 503 {took:?} after Cassandra stopped: {body}");
    };
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(result)).await;
    tokio::task::spawn_blocking(|| cassandra("up"))
        .await
        .expect("up");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    let back = Duration::from_secs(120);
    let (_, took) = wait_until_within(&edge, "ready again", back, ready).await;
    eprintln!("edge: ready {took:?} after Cassandra was up");
    let (_, took) = wait_until_within(&projector, "ready again", back, ready).await;
    eprintln!("projector: ready {took:?} after Cassandra was up");
}
