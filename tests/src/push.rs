//! Push notifications in tests: the strict FCM emulator in this process, a service account key
//! whose `token_uri` points at it, and the notifier (in this process or as a child).

use std::path::PathBuf;

use serde_json::Value;

use crate::{send, TestEnv};

/// A running FCM emulator and a key file for it.
pub struct PushKit {
    /// `http://127.0.0.1:PORT` of the emulator: the notifier's `fcm_base_url`.
    pub url: String,
    /// A copy of the test service account key with `token_uri` at this emulator.
    pub key_file: PathBuf,
    emulator: fcm_emulator::RunningEmulator,
    http: reqwest::Client,
}

/// The repository's test service account key and its public key.
fn infra(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../infra/fcm-emulator")
        .join(name)
}

impl PushKit {
    /// Starts an emulator on a free port and writes a key file for it.
    pub async fn start() -> Self {
        let config = fcm_emulator::EmulatorConfig::from_files(
            "127.0.0.1:0"
                .parse()
                .unwrap_or_else(|e| panic!("addr: {e}")),
            infra("service-account.json"),
            infra("public-key.pem"),
        )
        .unwrap_or_else(|e| panic!("emulator config: {e}"));
        let emulator = fcm_emulator::start(config)
            .await
            .unwrap_or_else(|e| panic!("emulator: {e}"));
        let url = emulator.url();
        let key_file = Self::key_file_for(&format!("{url}/token"));
        Self {
            url,
            key_file,
            emulator,
            http: reqwest::Client::new(),
        }
    }

    /// A copy of the test key whose `token_uri` is `token_uri`.
    pub fn key_file_for(token_uri: &str) -> PathBuf {
        let text = std::fs::read_to_string(infra("service-account.json"))
            .unwrap_or_else(|e| panic!("test key: {e}"));
        let mut key: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("key: {e}"));
        key["token_uri"] = Value::from(token_uri);
        let path = std::env::temp_dir().join(format!("fcm-key-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&path, key.to_string()).unwrap_or_else(|e| panic!("write key: {e}"));
        path
    }

    /// Notifier settings on `env` sending to this emulator, with quick retries.
    pub fn notifier_settings(&self, env: &TestEnv) -> notifier::Settings {
        let mut settings =
            notifier::Settings::load().unwrap_or_else(|e| panic!("notifier settings: {e}"));
        settings.nats = env.nats_settings.clone();
        settings.redis = env.redis_settings.clone();
        settings.cassandra = env.cassandra_settings.clone();
        settings.notifier.fcm_base_url = self.url.clone();
        settings.notifier.service_account_file = self.key_file.clone();
        settings.notifier.fetch_wait_ms = 50;
        settings.notifier.initial_backoff_ms = 50;
        settings.notifier.max_backoff_ms = 1_000;
        settings.notifier.health_listen = String::new();
        settings
    }

    /// Environment variables that point a notifier binary at this emulator.
    pub fn notifier_env(&self) -> Vec<(String, String)> {
        vec![
            ("CHAT_NOTIFIER__FCM_BASE_URL".into(), self.url.clone()),
            (
                "CHAT_NOTIFIER__SERVICE_ACCOUNT_FILE".into(),
                self.key_file.display().to_string(),
            ),
            ("CHAT_NOTIFIER__FETCH_WAIT_MS".into(), "50".into()),
            ("CHAT_NOTIFIER__INITIAL_BACKOFF_MS".into(), "50".into()),
        ]
    }

    /// Calls the emulator's admin API.
    pub async fn admin(&self, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/admin{path}", self.url);
        let request = match body {
            Some(body) => self.http.post(url).json(&body),
            None => self.http.get(url),
        };
        let (status, answer) = send(request).await;
        assert!(
            (200..300).contains(&status),
            "admin {path}: {status} {answer}"
        );
        answer
    }

    /// Every push the emulator accepted, in arrival order.
    pub async fn deliveries(&self) -> Vec<Value> {
        let answer = self.admin("/deliveries", None).await;
        answer["deliveries"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for PushKit {
    fn drop(&mut self) {
        self.emulator.handle.abort();
        let _ = std::fs::remove_file(&self.key_file);
    }
}
