//! What Redis reports, kept for the tables: memory by kind of key, main-thread CPU and time in
//! scripts.

use std::collections::BTreeMap;

/// Bytes by kind of key: kind -> (keys, bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Usage(pub(super) BTreeMap<String, (i64, i64)>);

impl Usage {
    /// Every kind together.
    pub(super) fn total(&self) -> i64 {
        self.0.values().map(|(_, bytes)| bytes).sum()
    }

    /// The bytes of the named kinds.
    pub(super) fn of(&self, kinds: &[&str]) -> i64 {
        kinds
            .iter()
            .filter_map(|k| self.0.get(*k))
            .map(|(_, bytes)| bytes)
            .sum()
    }

    /// What `self` holds beyond `before`, kind by kind.
    pub(super) fn minus(&self, before: &Usage) -> Usage {
        let mut delta = self.clone();
        for (kind, (keys, bytes)) in &before.0 {
            let entry = delta.0.entry(kind.clone()).or_default();
            entry.0 -= keys;
            entry.1 -= bytes;
        }
        delta.0.retain(|_, (keys, bytes)| *keys != 0 || *bytes != 0);
        delta
    }

    /// `kind keys bytes/unit` for every kind, to show where the bytes are.
    pub(super) fn by_kind(&self, unit: f64) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(kind, (keys, bytes))| {
                format!("{kind} ({keys} keys) {:.1}", *bytes as f64 / unit)
            })
            .collect();
        parts.join(", ")
    }
}

/// Redis's own counters at one moment, or their growth over a phase.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct RedisStats {
    /// Main-thread CPU (user + system), µs: everything Redis serialises.
    pub(super) cpu_us: f64,
    /// Time inside `EVALSHA`, µs: running the script and the commands it calls.
    pub(super) script_us: u64,
}

impl RedisStats {
    /// Growth from `before` to `self`.
    pub(super) fn since(self, before: RedisStats) -> RedisStats {
        RedisStats {
            cpu_us: self.cpu_us - before.cpu_us,
            script_us: self.script_us.saturating_sub(before.script_us),
        }
    }

    /// Both phases together.
    pub(super) fn plus(self, other: RedisStats) -> RedisStats {
        RedisStats {
            cpu_us: self.cpu_us + other.cpu_us,
            script_us: self.script_us + other.script_us,
        }
    }
}
