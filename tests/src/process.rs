//! Service binaries run as real processes, for tests about more than one process.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TestEnv;

/// A service binary running as a child process; killed when dropped.
pub struct ServiceProcess {
    child: Child,
    /// `http://127.0.0.1:PORT` when the service serves HTTP.
    pub url: String,
}

impl ServiceProcess {
    /// Starts the workspace binary `name` (built by `cargo build`) against `env`, with `extra`
    /// environment variables, and waits until `/healthz` answers when it serves HTTP.
    pub fn start(name: &str, env: &TestEnv, extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut command = Command::new(binary(name));
        command
            .envs(env.service_env())
            .env("CHAT_EDGE__LISTEN", format!("127.0.0.1:{port}"))
            // Workers serve no health port unless a test asks for one: parallel tests would
            // collide on the default ports.
            .env("CHAT_PROJECTOR__HEALTH_LISTEN", "")
            .env("CHAT_RECEIPTS__HEALTH_LISTEN", "")
            .env("CHAT_NOTIFIER__HEALTH_LISTEN", "")
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let process = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        if name == "edge" {
            process.wait_healthy();
        }
        process
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let address = self.url.trim_start_matches("http://").to_owned();
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&address).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not start listening", self.url);
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `within` for the process to end by itself; its exit status, or `None` when it
    /// still runs.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => return None,
            }
        }
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the process: `STOP` freezes it as a long stall
    /// or a partition would, until `CONT`.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid.clone()])
            .status()
            .unwrap_or_else(|e| panic!("kill -{signal} {pid}: {e}"));
        assert!(status.success(), "kill -{signal} {pid}: {status}");
    }

    /// Asks the process to stop (SIGTERM) and waits for it.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child
            .wait()
            .unwrap_or_else(|e| panic!("wait for {pid}: {e}"))
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The path of a workspace binary next to the test executable (`target/<profile>/<name>`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current exe: {e}"));
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap_or_else(|| panic!("unexpected test binary location {}", exe.display()));
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` first (scripts/test does)",
        path.display()
    );
    path
}

/// Ports handed to test servers: below Linux's default ephemeral range (32768–60999). A port
/// the kernel picks (`bind(0)`) lies inside that range, and between the check and the server's
/// own bind any process's outgoing connection may take it as its local port: a CI run lost a
/// worker's health listener that way (`Address already in use`).
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A port nobody listens on right now, outside the ephemeral range; a random start per call
/// (a fresh UUID's bits) keeps parallel tests and processes apart.
pub(crate) fn free_port() -> u16 {
    let span = TEST_PORTS.end - TEST_PORTS.start;
    let start = (uuid::Uuid::new_v4().as_u128() % u128::from(span)) as u16;
    (0..span)
        .map(|i| TEST_PORTS.start + (start + i) % span)
        .find(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        .unwrap_or_else(|| panic!("no free port in {TEST_PORTS:?}"))
}
