//! CPU seconds this process and each local server used over an interval, and how that prints.

use std::time::Duration;

use super::procfs::cpu_seconds;
use super::servers::{self, SERVERS};

/// CPU seconds used so far by this process and by each server.
pub struct CpuTimes {
    /// This process: the bench and whatever services it runs inside.
    this: Option<f64>,
    /// Each of [`SERVERS`], if found.
    servers: [Option<f64>; SERVERS.len()],
}

/// CPU seconds used in an interval.
pub struct CpuUse(CpuTimes);

impl CpuTimes {
    /// The counters now: the start of an interval.
    pub fn now() -> Self {
        Self {
            this: cpu_seconds(std::process::id()),
            servers: SERVERS.map(|(name, comm)| servers::pid(name, comm).and_then(cpu_seconds)),
        }
    }

    /// What was used since `self` was read.
    pub fn until_now(&self) -> CpuUse {
        let now = Self::now();
        let delta = |before: Option<f64>, after: Option<f64>| Some(after? - before?);
        CpuUse(Self {
            this: delta(self.this, now.this),
            servers: std::array::from_fn(|i| delta(self.servers[i], now.servers[i])),
        })
    }
}

impl CpuUse {
    /// `this process 3.1 s (1.2 cores), cassandra ...; 412 µs per push`: CPU seconds per
    /// process over `wall`, and all of them together per each of `count` units.
    pub fn describe(&self, wall: Duration, count: usize, unit: &str) -> String {
        let wall = wall.as_secs_f64();
        let each = std::iter::once(("this process", self.0.this))
            .chain(SERVERS.iter().map(|(name, _)| *name).zip(self.0.servers));
        let mut total = 0.0;
        let mut parts = Vec::new();
        for (name, seconds) in each {
            match seconds {
                Some(s) => {
                    total += s;
                    parts.push(format!("{name} {s:.1} s ({:.2} cores)", s / wall));
                }
                None => parts.push(format!("{name} n/a")),
            }
        }
        format!(
            "{}; together {:.0} µs per {unit}",
            parts.join(", "),
            total * 1e6 / count as f64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_each_process_and_the_sum_per_unit() {
        let used = CpuUse(CpuTimes {
            this: Some(2.0),
            servers: [Some(1.0), None, Some(1.0)],
        });
        assert_eq!(
            used.describe(Duration::from_secs(2), 4_000, "push"),
            "this process 2.0 s (1.00 cores), cassandra 1.0 s (0.50 cores), redis n/a, \
             nats 1.0 s (0.50 cores); together 1000 µs per push"
        );
        assert!(CpuTimes::now().until_now().0.this.is_some());
    }
}
