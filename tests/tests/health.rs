//! `/healthz` and `/readyz` of every service (`docs/health.md`): ready against the shared
//! servers, unavailable (naming the dependency) while a private Redis or NATS it was pointed at
//! is stopped, and ready again once that server is back.
//!
//! Outages use private server processes on free ports, so the shared servers and the other
//! tests are not disturbed. Cassandra outages are in `faults.rs`.

use chat_tests::health::{down, get, ready, wait_until, worker, PrivateServer};
use chat_tests::push::PushKit;
use chat_tests::{ServiceProcess, TestApp, TestEnv};
use serde_json::Value;

#[tokio::test]
async fn the_edge_is_ready_when_everything_answers() {
    let app = TestApp::start().await;
    let (status, body) = get(&format!("{}/readyz", app.base_url))
        .await
        .expect("the edge answers");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        serde_json::json!({
            "status": "ready",
            "checks": {"serving": "ok", "nats": "ok", "redis": "ok", "cassandra": "ok"},
        })
    );
    let (status, _) = get(&format!("{}/healthz", app.base_url))
        .await
        .unwrap_or((0, Value::Null));
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_edge_is_unavailable_while_its_redis_is_down() {
    let env = TestEnv::new().await;
    let mut redis = PrivateServer::redis();
    let url = redis.redis_url();
    let edge = ServiceProcess::start("edge", &env, &[("CHAT_REDIS__URL", &url)]);
    let readyz = format!("{}/readyz", edge.url);
    wait_until(&readyz, "ready", ready).await;

    redis.kill();
    let (body, took) = wait_until(&readyz, "unavailable for redis", down("redis")).await;
    eprintln!("edge: 503 {took:?} after Redis was killed: {body}");
    assert_eq!(body["checks"]["nats"], "ok", "{body}");
    assert_eq!(body["checks"]["cassandra"], "ok", "{body}");
    let (status, _) = get(&format!("{}/healthz", edge.url))
        .await
        .unwrap_or((0, Value::Null));
    assert_eq!(status, 200, "liveness does not follow dependencies");

    redis.restart();
    let (_, took) = wait_until(&readyz, "ready again", ready).await;
    eprintln!("edge: 200 {took:?} after Redis came back");
}

#[tokio::test]
async fn the_edge_is_unavailable_while_its_nats_is_down() {
    let env = TestEnv::new().await;
    let mut nats = PrivateServer::nats();
    let url = nats.nats_url();
    let edge = ServiceProcess::start("edge", &env, &[("CHAT_NATS__URL", &url)]);
    let readyz = format!("{}/readyz", edge.url);
    wait_until(&readyz, "ready", ready).await;

    nats.kill();
    let (body, took) = wait_until(&readyz, "unavailable for nats", down("nats")).await;
    eprintln!("edge: 503 {took:?} after NATS was killed: {body}");
    assert_eq!(body["checks"]["redis"], "ok", "{body}");

    nats.restart();
    let (_, took) = wait_until(&readyz, "ready again", ready).await;
    eprintln!("edge: 200 {took:?} after NATS came back");
}

#[tokio::test]
async fn every_worker_is_ready_against_the_shared_servers() {
    let env = TestEnv::new().await;
    let kit = PushKit::start().await;
    let notifier_env = kit.notifier_env();
    let notifier_extra: Vec<(&str, &str)> = notifier_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (_projector, projector) = worker("projector", &env, &[]);
    let (_receipts, receipts) = worker("receipts", &env, &[]);
    let (_notifier, notifier) = worker("notifier", &env, &notifier_extra);

    let (body, _) = wait_until(&format!("{projector}/readyz"), "ready", ready).await;
    assert_eq!(
        body["checks"],
        serde_json::json!({"serving": "ok", "nats": "ok", "cassandra": "ok", "consumer": "ok"})
    );
    assert_eq!(body["role"], "active", "{body}");
    let (body, _) = wait_until(&format!("{receipts}/readyz"), "ready", ready).await;
    assert_eq!(
        body,
        serde_json::json!({
            "status": "ready",
            "checks": {"serving": "ok", "nats": "ok", "redis": "ok", "consumer": "ok"},
            "role": "active",
        })
    );
    let (body, _) = wait_until(&format!("{notifier}/readyz"), "ready", ready).await;
    assert_eq!(
        body["checks"],
        serde_json::json!({
            "serving": "ok", "nats": "ok", "redis": "ok", "cassandra": "ok", "fcm": "ok",
            "consumer": "ok",
        })
    );
    for base in [&projector, &receipts, &notifier] {
        let (status, _) = get(&format!("{base}/healthz"))
            .await
            .unwrap_or((0, Value::Null));
        assert_eq!(status, 200, "{base}/healthz");
    }

    // A second worker for the same partition stands by, ready to take over.
    let (_standby, standby) = worker("receipts", &env, &[]);
    let (body, _) = wait_until(&format!("{standby}/readyz"), "ready", ready).await;
    assert_eq!(body["role"], "standby", "{body}");
    assert!(body["checks"].get("consumer").is_none(), "{body}");
}

#[tokio::test]
async fn the_projector_is_unavailable_while_its_nats_is_down() {
    let env = TestEnv::new().await;
    let mut nats = PrivateServer::nats();
    let url = nats.nats_url();
    let (_projector, base) = worker("projector", &env, &[("CHAT_NATS__URL", &url)]);
    let readyz = format!("{base}/readyz");
    wait_until(&readyz, "ready", ready).await;

    nats.kill();
    let (body, took) = wait_until(&readyz, "unavailable for nats", down("nats")).await;
    eprintln!("projector: 503 {took:?} after NATS was killed: {body}");
    assert_eq!(body["checks"]["cassandra"], "ok", "{body}");

    nats.restart();
    let (_, took) = wait_until(&readyz, "ready again", ready).await;
    eprintln!("projector: 200 {took:?} after NATS came back");
}

#[tokio::test]
async fn the_receipts_worker_is_unavailable_while_its_redis_is_down() {
    let env = TestEnv::new().await;
    let mut redis = PrivateServer::redis();
    let url = redis.redis_url();
    // A lease longer than the outage: the worker keeps its partition through it.
    let (_receipts, base) = worker(
        "receipts",
        &env,
        &[
            ("CHAT_REDIS__URL", &url),
            ("CHAT_RECEIPTS__LEASE_MS", "60000"),
        ],
    );
    let readyz = format!("{base}/readyz");
    let (body, _) = wait_until(&readyz, "ready", ready).await;
    assert_eq!(body["role"], "active", "{body}");

    redis.kill();
    let (body, took) = wait_until(&readyz, "unavailable for redis", down("redis")).await;
    eprintln!("receipts: 503 {took:?} after Redis was killed: {body}");
    assert_eq!(body["checks"]["nats"], "ok", "{body}");

    redis.restart();
    let (body, took) = wait_until(&readyz, "ready again", ready).await;
    eprintln!("receipts: 200 {took:?} after Redis came back: {body}");
}

#[tokio::test]
async fn the_notifier_is_unavailable_while_its_redis_is_down() {
    let env = TestEnv::new().await;
    let kit = PushKit::start().await;
    let mut redis = PrivateServer::redis();
    let url = redis.redis_url();
    let mut vars: Vec<(String, String)> = kit.notifier_env();
    vars.push(("CHAT_REDIS__URL".into(), url));
    let extra: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (_notifier, base) = worker("notifier", &env, &extra);
    let readyz = format!("{base}/readyz");
    wait_until(&readyz, "ready", ready).await;

    redis.kill();
    let (body, took) = wait_until(&readyz, "unavailable for redis", down("redis")).await;
    eprintln!("notifier: 503 {took:?} after Redis was killed: {body}");
    assert_eq!(body["checks"]["fcm"], "ok", "{body}");

    redis.restart();
    let (_, took) = wait_until(&readyz, "ready again", ready).await;
    eprintln!("notifier: 200 {took:?} after Redis came back");
}
