//! The push check: each room's watcher and the member of every room (who never open a room,
//! so every CHAT is pushed to them) each register one device token; every CHAT must reach each
//! of its room's two tokens, and never twice unmarked (a push sent again because FCM's answer
//! to the first never came carries `resent`). The FCM emulator records every delivery.

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

/// The CHAT pushes one message got on one device.
#[derive(Debug, Clone, Copy, Default)]
struct Pushed {
    /// Pushes without the `resent` mark: more than one is a repeat the app cannot tell.
    plain: usize,
    /// Pushes marked `resent`, which the app shows only if it has not shown the message.
    resent: usize,
}

/// The CHAT pushes each message id got on `device`.
async fn pushed(
    http: &reqwest::Client,
    fcm: &str,
    device: &str,
) -> anyhow::Result<HashMap<String, Pushed>> {
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
        let counts: &mut Pushed = counts.entry(id.to_owned()).or_default();
        if data["resent"] == "true" {
            counts.resent += 1;
        } else {
            counts.plain += 1;
        }
    }
    Ok(counts)
}

/// Fails when the emulator has dropped deliveries to stay within its maximum: then its lists no
/// longer hold every push, and pushes would be counted missing that arrived.
async fn all_deliveries_kept(http: &reqwest::Client, fcm: &str) -> anyhow::Result<()> {
    let url = format!("{fcm}/admin/stats");
    let stats = check::get_json::<serde_json::Value>(http, &url, "").await?;
    match stats["deliveriesDropped"].as_u64() {
        Some(0) => Ok(()),
        Some(dropped) => bail!(
            "the FCM emulator dropped its {dropped} oldest deliveries (start it with a larger \
             --max-deliveries): the pushes cannot be checked"
        ),
        None => bail!("{url}: no deliveriesDropped count"),
    }
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
        all_deliveries_kept(http, &devices.fcm).await?;
        let wall = pushed(http, &devices.fcm, &devices.wall).await?;
        let (mut missing, mut repeated, mut resent) = (0, Vec::new(), 0);
        for (k, history) in histories.iter().enumerate() {
            let watcher = pushed(http, &devices.fcm, &devices.watchers[k]).await?;
            for (id, entry) in &history.entries {
                if entry.kind != "CHAT" {
                    continue;
                }
                for (who, counts) in [("watcher", &watcher), ("member of every room", &wall)] {
                    let got = counts.get(&entry.message_id).copied().unwrap_or_default();
                    if got.plain + got.resent == 0 {
                        missing += 1;
                    }
                    if got.plain > 1 {
                        repeated.push(format!(
                            "room {k} message {id} to its {who} {} times",
                            got.plain
                        ));
                    }
                    resent += (got.plain + got.resent).saturating_sub(1).min(got.resent);
                }
            }
        }
        if missing == 0 || began.elapsed() > PUSH_PATIENCE {
            findings.push_missing = missing;
            findings.push_repeated = repeated;
            findings.push_resent = resent;
            findings.pushes_complete = (missing == 0).then(|| began.elapsed());
            return Ok(());
        }
        sleep(Duration::from_secs(2)).await;
    }
}
