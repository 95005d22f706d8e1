//! Read-your-writes: a write answers only once the projector has applied its event, so the next
//! read on any edge sees it.
//!
//! The projector announces its progress on `chat.progress.{projector}` after every batch; the
//! edge keeps the highest value in a watch channel. Announcements can be missed (reconnects), so
//! a waiter also polls the progress row in Cassandra now and then.
//!
//! A waiter first says on `chat.progress.{projector}.awaited` which sequence it waits for: a
//! projector that gathers events into larger batches while the log is busy applies that one
//! at once (docs/projector.md).

use std::sync::Arc;
use std::time::Duration;

use chat_platform::watermark;
use chat_schemas::EventLog;
use futures::StreamExt;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::store::Store;

/// How often a waiter falls back to reading the progress row.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The projector did not reach a sequence in time.
#[derive(Debug, thiserror::Error)]
#[error("the projector has not applied sequence {0} yet")]
pub struct NotYetVisible(pub u64);

/// The projector's applied sequence as seen by this edge.
pub struct ProjectionProgress {
    applied: watch::Sender<u64>,
    nats: async_nats::Client,
    awaited_subject: String,
    store: Arc<Store>,
    projector: String,
    /// How long a write waits (read-your-writes).
    timeout: Duration,
    /// How long a read waits for the projector to catch up with the log.
    catch_up: Duration,
}

impl ProjectionProgress {
    /// Starts following `projector`'s announcements; the task ends with the NATS connection.
    /// A write waits up to `timeout` for its event, a read up to `catch_up` for the log's.
    pub async fn follow(
        nats: &async_nats::Client,
        log: &EventLog,
        store: Arc<Store>,
        projector: &str,
        timeout: Duration,
        catch_up: Duration,
    ) -> Result<Arc<Self>, async_nats::SubscribeError> {
        let mut announcements = nats.subscribe(log.progress_subject(projector)).await?;
        let initial = store.applied_seq(projector).await.unwrap_or(0);
        let (applied, _) = watch::channel(initial);
        let progress = Arc::new(Self {
            applied,
            nats: nats.clone(),
            awaited_subject: log.awaited_subject(projector),
            store,
            projector: projector.to_owned(),
            timeout,
            catch_up,
        });
        let follower = Arc::downgrade(&progress);
        tokio::spawn(async move {
            while let Some(message) = announcements.next().await {
                let Some(progress) = follower.upgrade() else {
                    break;
                };
                if let Some(seq) = watermark::parse_said(&message.payload) {
                    watermark::raise(&progress.applied, seq);
                }
            }
        });
        Ok(progress)
    }

    /// The highest sequence the projector is known to have applied.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Waits until the projector has applied `seq`, up to the configured timeout.
    pub async fn wait_for(&self, seq: u64) -> Result<(), NotYetVisible> {
        self.wait_within(seq, self.timeout).await
    }

    /// How long a read waits for the projector to catch up with the log, finding out where
    /// the log ends included.
    pub fn catch_up_time(&self) -> Duration {
        self.catch_up
    }

    /// Waits until the projector has applied `seq`, up to `patience`.
    pub async fn wait_within(&self, seq: u64, patience: Duration) -> Result<(), NotYetVisible> {
        let deadline = Instant::now() + patience;
        let mut applied = self.applied.subscribe();
        if *applied.borrow_and_update() >= seq {
            return Ok(());
        }
        let said = self
            .nats
            .publish(self.awaited_subject.clone(), seq.to_string().into())
            .await;
        if let Err(error) = said {
            tracing::debug!(%error, seq, "cannot tell the projector what is awaited");
        }
        loop {
            if *applied.borrow_and_update() >= seq {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(NotYetVisible(seq));
            }
            let poll_at = (now + POLL_INTERVAL).min(deadline);
            tokio::select! {
                changed = applied.changed() => {
                    if changed.is_err() {
                        return Err(NotYetVisible(seq));
                    }
                }
                () = tokio::time::sleep_until(poll_at) => {
                    if let Ok(stored) = self.store.applied_seq(&self.projector).await {
                        watermark::raise(&self.applied, stored);
                    }
                }
            }
        }
    }
}
