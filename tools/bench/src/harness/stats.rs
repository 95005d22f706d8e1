//! Latency histograms, percentiles and rates, and how numbers are printed.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Longest latency kept apart, in microseconds (2 minutes); longer ones count as this.
const MAX_US: u64 = 120_000_000;

/// Send-to-receive latencies, in microseconds, to 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self(Histogram::new_with_bounds(1, MAX_US, 3).expect("constant bounds are valid"))
    }
}

impl Latencies {
    /// Records one latency; below 1 µs counts as 1 µs.
    pub fn record(&mut self, us: u64) {
        self.0.saturating_record(us.clamp(1, MAX_US));
    }

    /// The latency at quantile `q` (0.5 = median), 0 when nothing was recorded.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.0.is_empty() {
            0
        } else {
            self.0.value_at_quantile(q)
        }
    }

    /// `p50 …  p90 …  p99 …  p99.9 …`, each value right-aligned in 8 characters, for the
    /// report's latency lines.
    pub fn percentiles(&self) -> String {
        format!(
            "p50 {:>8}  p90 {:>8}  p99 {:>8}  p99.9 {:>8}",
            format_us(self.quantile(0.5)),
            format_us(self.quantile(0.9)),
            format_us(self.quantile(0.99)),
            format_us(self.quantile(0.999)),
        )
    }

    /// The largest latency recorded.
    pub fn max(&self) -> u64 {
        self.0.max()
    }

    /// `(value, count)` pairs, to ship from a worker to the coordinator.
    pub fn buckets(&self) -> Vec<(u64, u64)> {
        self.0
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    /// Adds what [`Latencies::buckets`] of another histogram returned.
    pub fn add_buckets(&mut self, buckets: &[(u64, u64)]) {
        for &(value, count) in buckets {
            self.0.saturating_record_n(value.clamp(1, MAX_US), count);
        }
    }
}

/// A latency for people: `850 µs`, `1.25 ms`, `12.3 ms`, `1.50 s`.
pub fn format_us(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..10_000 => format!("{ms:.2} ms"),
        10_000..1_000_000 => format!("{ms:.1} ms"),
        _ => format!("{:.2} s", ms / 1000.0),
    }
}

/// `a / b` as a factor like `12.5x`, or `-` when `b` is zero.
pub fn format_ratio(a: f64, b: f64) -> String {
    if b == 0.0 {
        "-".to_owned()
    } else {
        format!("{:.2}x", a / b)
    }
}

/// The element at quantile `q` (0..=1) of a sorted slice, by nearest rank: the smallest one
/// that at least `q` of the slice is not above. `None` when the slice is empty.
pub fn percentile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

/// `count` per second of `elapsed` (a zero `elapsed` counts as a nanosecond).
pub fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// `duration` in milliseconds, for tables.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_latencies_with_a_sensible_unit() {
        assert_eq!(format_us(0), "0 µs");
        assert_eq!(format_us(850), "850 µs");
        assert_eq!(format_us(1_254), "1.25 ms");
        assert_eq!(format_us(12_345), "12.3 ms");
        assert_eq!(format_us(1_500_000), "1.50 s");
        assert_eq!(format_ratio(3.0, 2.0), "1.50x");
        assert_eq!(format_ratio(3.0, 0.0), "-");
    }

    #[test]
    fn percentiles_pick_by_nearest_rank() {
        let hundred: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&hundred, 0.50), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&hundred, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(
            percentile(&hundred[..1], 0.99),
            Some(Duration::from_millis(1))
        );
        let five: Vec<f64> = (1..=5).map(f64::from).collect();
        assert_eq!(percentile(&five, 0.99), Some(5.0));
        assert_eq!(percentile::<f64>(&[], 0.5), None);
        assert_eq!(per_second(500, Duration::from_millis(250)), 2_000.0);
        assert_eq!(ms(Duration::from_micros(1_500)), 1.5);
    }

    #[test]
    fn percentiles_survive_shipping_between_processes() {
        let mut worker = Latencies::default();
        for us in 1..=1000 {
            worker.record(us);
        }
        worker.record(0);
        let mut merged = Latencies::default();
        merged.add_buckets(&worker.buckets());
        merged.add_buckets(&worker.buckets());
        assert_eq!(merged.buckets().iter().map(|(_, n)| n).sum::<u64>(), 2002);
        assert_eq!(merged.quantile(0.5), 500);
        assert_eq!(merged.quantile(0.99), 990);
        assert_eq!(merged.max(), 1000);
        assert_eq!(Latencies::default().quantile(0.5), 0);
    }
}
