//! Where a CHAT's time goes between its SEND and its delivery, hop by hop.
//!
//! The receipts worker, with `hop_timing` on, stamps each room view with when its event was
//! stored by JetStream, read by the worker, applied to Redis and published
//! (`Chat-Hop-Times`). An observer subscribed to the room views next to the edge adds when the
//! view reached it, and the content carries the send time ([`super::wire::content`]), so each
//! measured CHAT yields: send → stored (the edge and the append), stored → read (the consumer's
//! delivery), read → applied (Redis), applied → published, published → on NATS (what an edge
//! also waits for). What remains of the end-to-end latency is the edge's own delivery and the
//! client's socket. Every process reads the same realtime clock, on one machine.

use async_nats::HeaderMap;
use chat_schemas::EventLog;
use futures::StreamExt;
use tokio::task::JoinHandle;

use super::wire::{stamp, Clock, Go};
use crate::harness::stats::Latencies;

/// The hops, in order, as printed.
const HOPS: [&str; 6] = [
    "send -> stored",
    "stored -> read",
    "read -> applied",
    "applied -> published",
    "published -> on NATS",
    "send -> on NATS",
];

/// The per-hop latencies of the CHATs due in the measured window.
#[derive(Debug, Default)]
pub struct Hops {
    /// One histogram per entry of [`HOPS`], in microseconds.
    hops: [Latencies; 6],
    /// Views that came without the header (receipts' `hop_timing` off).
    unstamped: u64,
}

impl Hops {
    /// Records one view: its `Chat-Hop-Times` header, its JSON body, when it arrived (µs).
    fn record(&mut self, headers: Option<&HeaderMap>, body: &[u8], arrived_us: u64, go: &Go) {
        let Some(sent) = stamp(body, "") else {
            return;
        };
        if !go.measures(sent.index) {
            return;
        }
        let Some(times) = headers
            .and_then(|h| h.get(EventLog::HOP_TIMES_HEADER))
            .and_then(|v| parse_times(v.as_str()))
        else {
            self.unstamped += 1;
            return;
        };
        let sent_us = sent.sent_ns / 1000;
        let points = [sent_us, times[0], times[1], times[2], times[3], arrived_us];
        for (hop, pair) in self.hops.iter_mut().zip(points.windows(2)) {
            hop.record(pair[1].saturating_sub(pair[0]));
        }
        self.hops[5].record(arrived_us.saturating_sub(sent_us));
    }

    /// Prints a line per hop.
    pub fn print(&self) {
        println!(
            "   where a CHAT's time goes (room views watched on NATS, receipts' Chat-Hop-Times):"
        );
        for (name, hop) in HOPS.iter().zip(&self.hops) {
            println!("     {name:<22} {}", hop.percentiles());
        }
        if self.unstamped > 0 {
            println!(
                "     ({} views without Chat-Hop-Times: set CHAT_RECEIPTS__HOP_TIMING=true)",
                self.unstamped
            );
        }
    }
}

/// The four timestamps of a `Chat-Hop-Times` header.
fn parse_times(text: &str) -> Option<[u64; 4]> {
    let mut parts = text.split(' ').map(str::parse::<u64>);
    let times = [
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next()?.ok()?,
    ];
    parts.next().is_none().then_some(times)
}

/// Watches the room views while the load runs.
pub struct Observer {
    task: JoinHandle<Hops>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl Observer {
    /// Subscribes to `subject` on `nats_url` and times the views of CHATs sent in `go`'s
    /// measured window.
    pub async fn start(
        nats_url: &str,
        subject: &str,
        clock: Clock,
        go: Go,
    ) -> anyhow::Result<Self> {
        let client = async_nats::connect(nats_url).await?;
        let mut views = client.subscribe(subject.to_owned()).await?;
        client.flush().await?;
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut hops = Hops::default();
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    view = views.next() => match view {
                        Some(view) => {
                            let arrived_us = clock.now_ns() / 1000;
                            hops.record(view.headers.as_ref(), &view.payload, arrived_us, &go);
                        }
                        None => break,
                    },
                }
            }
            hops
        });
        Ok(Self { task, stop })
    }

    /// Stops watching and returns what was timed.
    pub async fn finish(self) -> anyhow::Result<Hops> {
        let _ = self.stop.send(());
        Ok(self.task.await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_has_exactly_four_times() {
        assert_eq!(parse_times("1 2 3 4"), Some([1, 2, 3, 4]));
        assert_eq!(parse_times("1 2 3"), None);
        assert_eq!(parse_times("1 2 3 4 5"), None);
        assert_eq!(parse_times("1 2 x 4"), None);
    }
}
