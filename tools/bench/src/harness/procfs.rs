//! Memory and CPU time of processes (this one, the servers, the load workers), and the kernel's
//! count of dropped connection attempts, from `/proc`.

/// Clock ticks per second of `/proc/PID/stat` times (`USER_HZ`, 100 on every Linux platform).
const TICKS_PER_SECOND: f64 = 100.0;

/// Resident memory of `pid` in KiB (`VmRSS`), if it runs.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_rss_kib(&status)
}

/// CPU seconds `pid` has used so far, user plus system.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_seconds(&stat)
}

/// How often, machine-wide, a listening socket's accept queue was full and a connection attempt
/// was dropped (`TcpExt: ListenOverflows`): the client then retries its SYN a second or more later.
pub fn listen_overflows() -> Option<u64> {
    let netstat = std::fs::read_to_string("/proc/net/netstat").ok()?;
    parse_netstat(&netstat, "TcpExt:", "ListenOverflows")
}

/// A counter of `/proc/net/netstat`: a line of names, then a line of values, per section.
fn parse_netstat(netstat: &str, section: &str, name: &str) -> Option<u64> {
    let mut lines = netstat.lines().filter(|l| l.starts_with(section));
    let names = lines.next()?.split_whitespace();
    let values = lines.next()?.split_whitespace();
    names
        .zip(values)
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.parse().ok())
}

/// `VmRSS` of a `/proc/PID/status`, in KiB.
fn parse_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User plus system CPU seconds of a `/proc/PID/stat`.
fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    // "pid (comm) state ppid ...": comm may hold spaces; utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_and_cpu_time() {
        assert_eq!(
            parse_rss_kib("Name:\tedge\nVmRSS:\t  123456 kB\n"),
            Some(123_456)
        );
        let stat = "42 (tokio (rt) x) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9";
        assert_eq!(parse_cpu_seconds(stat), Some(3.0));
        let netstat = "TcpExt: SyncookiesSent ListenOverflows\nTcpExt: 0 548\nIpExt: A\nIpExt: 1\n";
        assert_eq!(
            parse_netstat(netstat, "TcpExt:", "ListenOverflows"),
            Some(548)
        );
        assert_eq!(parse_netstat(netstat, "TcpExt:", "Missing"), None);
        assert!(rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
        assert!(cpu_seconds(std::process::id()).is_some());
    }
}
