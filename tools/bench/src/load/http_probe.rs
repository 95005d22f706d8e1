//! Read-your-writes under load: while the edge phase runs, one more user POSTs a CHAT over HTTP
//! at a steady rate into a room of its own (whose other members are not connected) and times
//! each answer. A POST answers only once the projector has stored its event (`docs/api.md`), so
//! this is the wait the projector's batching (`projector.linger_ms`) adds to HTTP writes, beside
//! the STOMP figures of the same run.

use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

use super::edge_load::token;
use super::wire::{Clock, Go};
use crate::harness::stats::Latencies;

/// POSTs per second: small beside the load, enough for a p99 over a 30 s window.
pub const RATE: f64 = 5.0;

/// What the probe saw in the measured window.
#[derive(Debug, Default)]
pub struct ProbeResult {
    /// Latencies of the POSTs answered 201.
    pub latencies: Latencies,
    /// POSTs answered otherwise, or not at all.
    pub failed: u64,
}

/// The probe's task, running until the window ends.
pub struct Probe(JoinHandle<anyhow::Result<ProbeResult>>);

impl Probe {
    /// Starts POSTing as `user` into `room` at [`RATE`] from the start of `go` to the end of
    /// its measured window; only POSTs sent within the window count.
    pub fn start(
        base_url: &str,
        secret: &str,
        user: &str,
        room: &str,
        clock: Clock,
        go: Go,
    ) -> anyhow::Result<Self> {
        let bearer = token(secret, user)?;
        let url = format!("{base_url}/api/rooms/{room}/messages");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self(tokio::spawn(async move {
            let (window_start, window_end) = go.window();
            let every = Duration::from_secs_f64(1.0 / RATE);
            let mut due = clock.instant(go.start_ns);
            let mut result = ProbeResult::default();
            for n in 0u64.. {
                sleep_until(due).await;
                due += every;
                let sent_ns = clock.now_ns();
                if sent_ns >= window_end {
                    break;
                }
                let started = Instant::now();
                let answer = http
                    .post(&url)
                    .bearer_auth(&bearer)
                    .json(&json!({"content": format!("probe {n}"), "clientMessageId": format!("probe-{sent_ns}")}))
                    .send()
                    .await;
                let took = started.elapsed();
                if sent_ns < window_start {
                    continue;
                }
                match answer {
                    Ok(response) if response.status().as_u16() == 201 => result
                        .latencies
                        .record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX)),
                    _ => result.failed += 1,
                }
            }
            Ok(result)
        })))
    }

    /// Waits for the window to end and returns what was measured.
    pub async fn finish(self) -> anyhow::Result<ProbeResult> {
        self.0.await.context("the HTTP probe task")?
    }
}
