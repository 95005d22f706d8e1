//! `chat-testenv`: an isolated test environment for test suites that are not written in Rust
//! (the Node STOMP suite).
//!
//! Reserves a fresh stream, subject prefix, keyspace and Redis prefix exactly like `TestEnv`,
//! prints one JSON object of the `CHAT_*` environment variables that point services at them, then
//! waits until its standard input closes and removes everything again.

use std::io::Read;

use chat_tests::TestEnv;

#[tokio::main]
async fn main() {
    let env = TestEnv::new().await;
    let vars: serde_json::Map<String, serde_json::Value> = env
        .service_env()
        .into_iter()
        .map(|(key, value)| (key, value.into()))
        .collect();
    println!("{}", serde_json::Value::Object(vars));
    let mut sink = Vec::new();
    let waited = tokio::task::spawn_blocking(move || std::io::stdin().read_to_end(&mut sink)).await;
    if let Ok(Err(e)) = waited {
        eprintln!("chat-testenv: reading stdin: {e}");
    }
    drop(env);
}
