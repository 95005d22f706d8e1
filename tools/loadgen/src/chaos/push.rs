//! The push check: each room's watcher and the member of every room (who never open a room,
//! so every CHAT is pushed to them) each register one device token; every CHAT must reach each
//! of its room's two tokens exactly once. The FCM emulator records every delivery.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::json;
use tokio::time::{sleep, Instant};

use super::check::{self, Findings, History};

/// Longest wait for the pushes of the checked CHATs to arrive.
const PUSH_PATIENCE: Duration = Duration::from_secs(90);

/// The devices that receive pushes, and where their deliveries are read.
pub struct Devices {
    /// The FCM emulator's base URL.
    pub fcm: String,
    /// Per room: the device token of its watcher.
    pub watchers: Vec<String>,
    /// The device token of the member of every room.
    pub wall: String,
}

/// Registers `device` as an Android device token of the user of `user_token`, through `base`.
pub async fn register(
    http: &reqwest::Client,
    base: &str,
    user_token: &str,
    device: &str,
) -> anyhow::Result<()> {
    let url = format!("{base}/api/users/me/push-tokens");
    let response = http
        .put(&url)
        .bearer_auth(user_token)
        .json(&json!({ "token": device, "platform": "android" }))
        .send()
        .await
        .with_context(|| format!("PUT {url}"))?;
    if !response.status().is_success() {
        bail!("PUT {url}: HTTP {}", response.status());
    }
    Ok(())
}

/// How many CHAT pushes each message id got on `device`.
async fn pushed(
    http: &reqwest::Client,
    fcm: &str,
    device: &str,
) -> anyhow::Result<HashMap<String, usize>> {
    let url = format!("{fcm}/admin/deliveries?token={device}");
    let answer = check::get_json::<serde_json::Value>(http, &url, "").await?;
    let deliveries = answer["deliveries"]
        .as_array()
        .ok_or_else(|| anyhow!("{url}: no deliveries list"))?;
    let mut counts = HashMap::new();
    for delivery in deliveries {
        let data = &delivery["message"]["data"];
        if data["type"] != "CHAT" {
            continue;
        }
        let id = data["messageId"]
            .as_str()
            .ok_or_else(|| anyhow!("{url}: a CHAT push without a messageId"))?;
        *counts.entry(id.to_owned()).or_default() += 1;
    }
    Ok(counts)
}

/// Waits until every CHAT of `histories` (by room) has been pushed to its room's watcher and to
/// the member of every room, and notes in `findings` what is missing then and what was pushed
/// more than once.
pub async fn check(
    http: &reqwest::Client,
    devices: &Devices,
    histories: &[History],
    findings: &mut Findings,
) -> anyhow::Result<()> {
    let began = Instant::now();
    loop {
        let wall = pushed(http, &devices.fcm, &devices.wall).await?;
        let (mut missing, mut repeated) = (0, Vec::new());
        for (k, history) in histories.iter().enumerate() {
            let watcher = pushed(http, &devices.fcm, &devices.watchers[k]).await?;
            for (id, entry) in &history.entries {
                if entry.kind != "CHAT" {
                    continue;
                }
                for (who, counts) in [("watcher", &watcher), ("member of every room", &wall)] {
                    match counts.get(&entry.message_id).copied().unwrap_or(0) {
                        0 => missing += 1,
                        1 => {}
                        n => repeated.push(format!("room {k} message {id} to its {who} {n} times")),
                    }
                }
            }
        }
        if missing == 0 || began.elapsed() > PUSH_PATIENCE {
            findings.push_missing = missing;
            findings.push_repeated = repeated;
            findings.pushes_complete = (missing == 0).then(|| began.elapsed());
            return Ok(());
        }
        sleep(Duration::from_secs(2)).await;
    }
}
