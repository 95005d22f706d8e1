//! Retrying a batch until Cassandra takes it: backoff between attempts, in-progress acks so
//! JetStream does not redeliver the batch meanwhile, and giving up only when asked to stop (the
//! unacked batch is then redelivered to the next run, so nothing is lost).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_nats::jetstream::message::Acker;
use async_nats::jetstream::AckKind;
use futures::FutureExt;
use tokio::time::Instant;

use chat_platform::backoff::Backoff;

/// The batch was given up because the projector is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Abandoned;

/// The stop request, which can be checked without waiting and waited on repeatedly.
pub(crate) struct Shutdown {
    signal: Pin<Box<dyn Future<Output = ()> + Send>>,
    requested: bool,
}

impl Shutdown {
    /// Stops when `signal` completes.
    pub(crate) fn new(signal: impl Future<Output = ()> + Send + 'static) -> Self {
        Self {
            signal: Box::pin(signal),
            requested: false,
        }
    }

    /// Whether stopping was requested, without waiting.
    pub(crate) fn requested(&mut self) -> bool {
        if !self.requested && self.signal.as_mut().now_or_never().is_some() {
            self.requested = true;
        }
        self.requested
    }

    /// Completes once stopping is requested (at once if it already was).
    pub(crate) async fn wait(&mut self) {
        if !self.requested {
            self.signal.as_mut().await;
            self.requested = true;
        }
    }

    /// Sleeps until `deadline` unless stopping is requested first.
    pub(crate) async fn sleep_until(&mut self, deadline: Instant) -> Result<(), Abandoned> {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => Ok(()),
            () = self.wait() => Err(Abandoned),
        }
    }
}

/// Sends in-progress acks for a batch at a fraction of the ack wait, so a batch held back by
/// retries stays assigned to this projector.
pub(crate) struct Keepalive<'a> {
    ackers: &'a [Acker],
    interval: Duration,
    last_sent: Instant,
}

impl<'a> Keepalive<'a> {
    /// Keeps `ackers` (the batch's messages, fetched at `fetched`) from redelivery under
    /// `ack_wait`.
    pub(crate) fn new(ackers: &'a [Acker], ack_wait: Duration, fetched: Instant) -> Self {
        Self {
            ackers,
            interval: ack_wait / 3,
            last_sent: fetched,
        }
    }

    fn next_due(&self) -> Instant {
        self.last_sent + self.interval
    }

    async fn extend_if_due(&mut self) {
        if Instant::now() < self.next_due() {
            return;
        }
        for acker in self.ackers {
            if let Err(error) = acker.ack_with(AckKind::Progress).await {
                tracing::warn!(%error, "cannot send in-progress ack");
            }
        }
        self.last_sent = Instant::now();
        tracing::debug!(messages = self.ackers.len(), "in-progress acks sent");
    }
}

/// The retry state of one batch.
pub(crate) struct Retry<'a> {
    backoff: Backoff,
    shutdown: &'a mut Shutdown,
    keepalive: Option<Keepalive<'a>>,
}

impl<'a> Retry<'a> {
    /// Retries with `backoff`, giving up on `shutdown`, keeping the batch alive if it has acks.
    pub(crate) fn new(
        backoff: Backoff,
        shutdown: &'a mut Shutdown,
        keepalive: Option<Keepalive<'a>>,
    ) -> Self {
        Self {
            backoff,
            shutdown,
            keepalive,
        }
    }

    /// Logs a failed attempt and waits out the backoff, sending in-progress acks when due.
    pub(crate) async fn after_failure(
        &mut self,
        what: &str,
        error: &(dyn fmt::Display + Sync),
    ) -> Result<(), Abandoned> {
        chat_platform::metrics::retried();
        let delay = self.backoff.next_delay();
        tracing::warn!(
            %error,
            attempt = self.backoff.attempts(),
            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "{what} failed; retrying"
        );
        let until = Instant::now() + delay;
        loop {
            if let Some(keepalive) = self.keepalive.as_mut() {
                keepalive.extend_if_due().await;
            }
            if Instant::now() >= until {
                return Ok(());
            }
            let wake = self
                .keepalive
                .as_ref()
                .map_or(until, |k| k.next_due().min(until));
            self.shutdown.sleep_until(wake).await?;
        }
    }

    /// Starts the backoff over after a step succeeded.
    pub(crate) fn succeeded(&mut self) {
        self.backoff.reset();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn quick() -> Backoff {
        Backoff::new(Duration::from_millis(20), Duration::from_millis(40))
    }

    #[tokio::test]
    async fn a_failure_waits_out_the_backoff() {
        let mut shutdown = Shutdown::new(std::future::pending());
        let mut retry = Retry::new(quick(), &mut shutdown, None);
        let started = Instant::now();
        assert_eq!(retry.after_failure("test", &"boom").await, Ok(()));
        assert_eq!(retry.after_failure("test", &"boom").await, Ok(()));
        assert!(started.elapsed() >= Duration::from_millis(60));
        retry.succeeded();
        assert_eq!(retry.backoff.attempts(), 0);
    }

    #[tokio::test]
    async fn stopping_abandons_the_retry() {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let mut shutdown = Shutdown::new(async move {
            let _ = stopped.await;
        });
        assert!(!shutdown.requested());
        let mut long = Backoff::new(Duration::from_secs(60), Duration::from_secs(60));
        long.next_delay();
        let mut retry = Retry::new(long, &mut shutdown, None);
        let _ = stop.send(());
        let started = Instant::now();
        assert_eq!(retry.after_failure("test", &"boom").await, Err(Abandoned));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(shutdown.requested(), "stays requested once seen");
        shutdown.wait().await;
    }

    #[tokio::test]
    async fn keepalives_fall_due_a_third_into_the_ack_wait() {
        let fetched = Instant::now();
        let keepalive = Keepalive::new(&[], Duration::from_secs(9), fetched);
        assert_eq!(keepalive.next_due(), fetched + Duration::from_secs(3));
    }
}
