//! The rooms of a run, created through the edge's HTTP API.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};

use super::edge_load::token;
use super::wire::user_name;

/// Room creations in flight at once.
const CONCURRENCY: usize = 32;

/// Tries per room when the edge answers 503 (the projector lagging behind).
const ATTEMPTS: u32 = 5;

/// Creates `rooms` GROUP rooms: room `k` has users `k * room_size` up to `(k + 1) * room_size - 1`,
/// created by the first of them. Returns the room ids in order.
pub async fn create_rooms(
    base_url: &str,
    secret: &str,
    rooms: usize,
    room_size: usize,
) -> anyhow::Result<Vec<String>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    futures::stream::iter(0..rooms)
        .map(|k| create_room(&http, base_url, secret, k, room_size))
        .buffered(CONCURRENCY)
        .try_collect()
        .await
}

async fn create_room(
    http: &reqwest::Client,
    base_url: &str,
    secret: &str,
    k: usize,
    room_size: usize,
) -> anyhow::Result<String> {
    let first = k * room_size;
    let creator = token(secret, &user_name(first))?;
    let others: Vec<String> = (first + 1..first + room_size).map(user_name).collect();
    let body = json!({"type": "GROUP", "name": format!("bench {k}"), "userIds": others});
    let mut attempt = 0;
    loop {
        attempt += 1;
        let response = http
            .post(format!("{base_url}/api/rooms"))
            .bearer_auth(&creator)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST /api/rooms for room {k}"))?;
        let status = response.status();
        if status.as_u16() == 503 && attempt < ATTEMPTS {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST /api/rooms for room {k}: {status} {answer}");
        }
        return answer["roomId"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("POST /api/rooms answered without roomId: {answer}"));
    }
}
