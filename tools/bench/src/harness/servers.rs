//! The local servers (`scripts/servers`: Cassandra, Redis, NATS) and their pids, to read their
//! CPU time.

use std::path::PathBuf;

/// The servers: name (their pid file is `.local/run/NAME.pid`) and process name.
pub const SERVERS: [(&str, &str); 3] = [
    ("cassandra", "java"),
    ("redis", "redis-server"),
    ("nats", "nats-server"),
];

/// `.local/run` of this checkout, where `scripts/servers` and `scripts/up` record their pids.
fn run_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.local/run")
}

/// The pid of server `name`: the one `scripts/servers` recorded if that process is `comm`,
/// else the only process named `comm` (the servers may have been started from another checkout).
pub fn pid(name: &str, comm: &str) -> Option<u32> {
    let is = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
    };
    let file = run_dir().join(format!("{name}.pid"));
    if let Some(pid) = std::fs::read_to_string(file)
        .ok()
        .and_then(|pid| pid.trim().parse().ok())
    {
        if is(pid) {
            return Some(pid);
        }
    }
    let mut matching = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok()?.parse().ok())
        .filter(|&pid| is(pid));
    let pid = matching.next()?;
    matching.next().is_none().then_some(pid)
}
