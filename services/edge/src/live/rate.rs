//! A token bucket per connection: how many SENDs (or typing signals) it may pass on.

use tokio::time::Instant;

/// Allows `per_second` on average and `burst` at once.
#[derive(Debug)]
pub struct RateLimit {
    tokens: f64,
    burst: f64,
    per_second: f64,
    at: Instant,
}

impl RateLimit {
    /// A full bucket.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            per_second: f64::from(per_second),
            at: Instant::now(),
        }
    }

    /// Takes a token when there is one.
    pub fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_nothing_until_a_refill() {
        let mut limit = RateLimit::new(2, 2);
        assert!(limit.take() && limit.take());
        assert!(!limit.take(), "the burst is spent");
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_come_back_at_the_rate_and_never_above_the_burst() {
        let mut limit = RateLimit::new(2, 2);
        assert!(limit.take() && limit.take());
        tokio::time::advance(std::time::Duration::from_millis(400)).await;
        assert!(!limit.take(), "0.8 of a token after 400 ms at 2/s");
        tokio::time::advance(std::time::Duration::from_millis(100)).await;
        assert!(limit.take(), "one token after 500 ms");
        assert!(!limit.take());
        tokio::time::advance(std::time::Duration::from_secs(60)).await;
        assert!(
            limit.take() && limit.take(),
            "a long pause refills the burst"
        );
        assert!(!limit.take(), "and no more than the burst");
    }
}
