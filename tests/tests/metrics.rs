//! `/metrics` of every service (`docs/operations.md`): after a short chat over STOMP and HTTP,
//! each service's Prometheus text names its metrics with the right types, the counters moved,
//! and no room or user id appears anywhere in it.

use std::time::{Duration, Instant};

use chat_tests::health::{ready, wait_until, worker};
use chat_tests::push::PushKit;
use chat_tests::stomp::StompClient;
use chat_tests::{ServiceProcess, TestApp};
use edge::stomp::{Command, Frame};
use reqwest::Method;
use serde_json::json;

/// The Prometheus text at `{base}/metrics`.
async fn scrape(base: &str) -> String {
    let response = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap_or_else(|e| panic!("{base}/metrics: {e}"));
    assert_eq!(response.status().as_u16(), 200, "{base}/metrics");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.unwrap_or_default()
}

/// The value of the first sample whose line starts with `series` (name and labels as far as
/// given), or `None`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && line.starts_with(series))
        .find_map(|line| line.rsplit_once(' ')?.1.parse().ok())
}

/// Asserts `# TYPE name kind`.
fn assert_type(text: &str, name: &str, kind: &str) {
    assert!(
        text.contains(&format!("# TYPE {name} {kind}")),
        "no {kind} {name} in:\n{text}"
    );
}

/// Scrapes `base` until `series` reaches `at_least`, for metrics moved by asynchronous work.
async fn scrape_until(base: &str, series: &str, at_least: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = scrape(base).await;
        if sample(&text, series).is_some_and(|value| value >= at_least) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{base}: {series} never reached {at_least}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Shows a few lines of a scrape in the test output, for the record.
fn show(service: &str, text: &str, names: &[&str]) {
    eprintln!("--- {service} /metrics");
    for line in text
        .lines()
        .filter(|line| !line.starts_with('#') && names.iter().any(|n| line.starts_with(n)))
        .take(12)
    {
        eprintln!("{line}");
    }
}

#[tokio::test]
async fn every_service_serves_prometheus_metrics_without_ids() {
    let mut app = TestApp::start().await;
    // The workers under test are processes of their own: the in-process ones step aside.
    app.stop_projector().await;
    app.stop_receipts().await;
    let kit = PushKit::start().await;
    let notifier_env = kit.notifier_env();
    let notifier_extra: Vec<(&str, &str)> = notifier_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (_projector, projector) = worker("projector", &app.env, &[]);
    let (_receipts, receipts) = worker("receipts", &app.env, &[]);
    let (_notifier, notifier) = worker("notifier", &app.env, &notifier_extra);
    let edge = ServiceProcess::start("edge", &app.env, &[]);
    for base in [&projector, &receipts, &notifier] {
        wait_until(&format!("{base}/readyz"), "ready", ready).await;
    }

    let push_token = format!("mbob-phone:{}", "A1b2C3d4".repeat(8));
    let (status, body) = app
        .call_at(
            &edge.url,
            Method::PUT,
            Some("mbob"),
            "/api/users/me/push-tokens",
            Some(json!({"token": push_token, "platform": "android"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, room) = app
        .call_at(
            &edge.url,
            Method::POST,
            Some("malice"),
            "/api/rooms",
            Some(json!({"type": "GROUP", "name": "m", "userIds": ["mbob"]})),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let room = room["roomId"].as_str().expect("roomId").to_owned();
    let (status, _) = app
        .call_at(
            &edge.url,
            Method::GET,
            Some("malice"),
            &format!("/api/rooms/{room}"),
            None,
        )
        .await;
    assert_eq!(status, 200);

    let mut alice = StompClient::connect(&edge.url, &app.token("malice"))
        .await
        .ignoring_presence();
    alice
        .subscribe("r", &format!("/sub/rooms/{room}"), &[])
        .await;
    for receipt in ["m1", "m2"] {
        alice
            .send(
                Frame::new(Command::Send)
                    .with_header("destination", format!("/pub/rooms/{room}/messages"))
                    .with_header("receipt", receipt)
                    .with_body(json!({"content": "hello"}).to_string()),
            )
            .await;
        alice.expect_receipt(receipt).await;
    }
    alice.message().await;
    alice.message().await;

    let text = scrape(&edge.url).await;
    show("edge", &text, &["chat_"]);
    assert_type(&text, "chat_build_info", "gauge");
    assert!(
        text.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert_type(&text, "chat_edge_connections", "gauge");
    assert_eq!(
        sample(&text, "chat_edge_connections{service=\"edge\"}"),
        Some(1.0)
    );
    assert_type(&text, "chat_edge_subscriptions", "gauge");
    assert_eq!(
        sample(&text, "chat_edge_subscriptions{service=\"edge\"}"),
        Some(1.0)
    );
    assert_type(&text, "chat_edge_frames_received_total", "counter");
    let sends = "chat_edge_frames_received_total{service=\"edge\",command=\"SEND\"}";
    assert!(sample(&text, sends) >= Some(2.0), "{text}");
    let receipts_out = "chat_edge_frames_sent_total{service=\"edge\",command=\"RECEIPT\"}";
    assert!(sample(&text, receipts_out) >= Some(2.0), "{text}");
    assert!(
        sample(&text, "chat_edge_deliveries_total{service=\"edge\"}") >= Some(2.0),
        "{text}"
    );
    assert_type(&text, "chat_edge_send_ack_duration_seconds", "histogram");
    assert!(
        sample(&text, "chat_edge_send_ack_duration_seconds_count") >= Some(2.0),
        "{text}"
    );
    assert_type(&text, "chat_http_requests_total", "counter");
    assert_type(&text, "chat_http_request_duration_seconds", "histogram");
    let route = "route=\"/api/rooms/{roomId}\"";
    assert!(
        text.lines()
            .any(|line| line.starts_with("chat_http_requests_total{")
                && line.contains(route)
                && line.contains("status=\"200\"")),
        "{text}"
    );
    assert!(
        text.lines().any(
            |line| line.starts_with("chat_http_request_duration_seconds_bucket{")
                && line.contains(route)
        ),
        "{text}"
    );

    // A frame the edge refuses ends the connection with an ERROR, counted by code.
    alice.send_text("BOGUS\n\n\0".to_owned()).await;
    alice.error().await;
    let text = scrape_until(&edge.url, "chat_edge_errors_total{", 1.0).await;
    assert_type(&text, "chat_edge_errors_total", "counter");

    let applied = "chat_events_applied_total{service=\"projector\"}";
    let text = scrape_until(&projector, applied, 3.0).await;
    show("projector", &text, &["chat_"]);
    for (name, kind) in [
        ("chat_build_info", "gauge"),
        ("chat_events_applied_total", "counter"),
        ("chat_apply_duration_seconds", "histogram"),
        ("chat_last_applied_sequence", "gauge"),
        ("chat_consumer_pending_events", "gauge"),
    ] {
        assert_type(&text, name, kind);
    }
    assert!(sample(&text, "chat_last_applied_sequence") >= Some(3.0));
    assert_eq!(
        sample(&text, "chat_ready{service=\"projector\"}"),
        Some(1.0)
    );

    let text = scrape_until(&receipts, "chat_events_applied_total{", 3.0).await;
    show("receipts", &text, &["chat_"]);
    assert_type(&text, "chat_receipts_partition_active", "gauge");
    assert_eq!(
        sample(
            &text,
            "chat_receipts_partition_active{service=\"receipts\",partition=\"0\"}"
        ),
        Some(1.0)
    );
    assert_eq!(sample(&text, "chat_receipts_partitions"), Some(1.0));
    assert_type(&text, "chat_receipts_mispredicted_total", "counter");
    assert_eq!(sample(&text, "chat_receipts_mispredicted_total"), Some(0.0));
    assert_type(&text, "chat_consumer_pending_events", "gauge");

    let delivered = "chat_notifier_pushes_total{service=\"notifier\",outcome=\"delivered\"}";
    let text = scrape_until(&notifier, delivered, 1.0).await;
    show("notifier", &text, &["chat_"]);
    assert_type(&text, "chat_notifier_pushes_total", "counter");
    assert_type(&text, "chat_events_applied_total", "counter");

    for base in [&edge.url, &projector, &receipts, &notifier] {
        let text = scrape(base).await;
        for id in [room.as_str(), "malice", "mbob", push_token.as_str()] {
            assert!(!text.contains(id), "{base}/metrics names {id}:\n{text}");
        }
    }
}
