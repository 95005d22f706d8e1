//! A whole system for one test: the test's [`TestEnv`], a projector, a receipts worker and an
//! edge serving HTTP on a random port, all in this process, plus an HTTP client speaking for
//! any user.

use std::future::Future;

use reqwest::Method;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::TestEnv;

/// A running edge and projector over a fresh environment.
pub struct TestApp {
    /// The environment (stream, keyspace, Redis prefix) the services use.
    pub env: TestEnv,
    /// `http://127.0.0.1:PORT` of the edge.
    pub base_url: String,
    /// The edge's settings, for starting more edges or minting tokens.
    pub edge_settings: edge::Settings,
    http: reqwest::Client,
    tasks: Vec<JoinHandle<()>>,
    projector: Option<Stoppable>,
    receipts: Option<Stoppable>,
    notifier: Option<Stoppable>,
}

/// A service task of this process that stops gracefully when asked.
type Stoppable = (tokio::sync::oneshot::Sender<()>, JoinHandle<()>);

/// Runs `service` (given the future that completes when it should stop) on a task.
fn spawn_stoppable<E, F, Fut>(name: &'static str, service: F) -> Stoppable
where
    E: std::fmt::Display,
    F: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
{
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = spawn_logged(
        name,
        service(Box::pin(async move {
            let _ = stopped.await;
        })),
    );
    (stop, task)
}

/// Asks a stoppable service to stop and waits for it.
async fn stop(service: Option<Stoppable>) {
    if let Some((stop, task)) = service {
        let _ = stop.send(());
        task.await.unwrap_or_else(|e| panic!("service task: {e}"));
    }
}

impl TestApp {
    /// Starts a projector, a receipts worker and an edge with default limits.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a projector, a receipts worker and an edge whose settings `configure` may adjust
    /// first.
    pub async fn start_with(configure: impl FnOnce(&mut edge::Settings)) -> Self {
        Self::start_in(TestEnv::new().await, configure).await
    }

    /// Starts a projector, a receipts worker and an edge on `env`, the edge's settings adjusted
    /// by `configure` first.
    pub async fn start_in(env: TestEnv, configure: impl FnOnce(&mut edge::Settings)) -> Self {
        let mut edge_settings =
            edge::Settings::load().unwrap_or_else(|e| panic!("edge settings: {e}"));
        edge_settings.nats = env.nats_settings.clone();
        edge_settings.cassandra = env.cassandra_settings.clone();
        edge_settings.redis = env.redis_settings.clone();
        edge_settings.edge.listen = "127.0.0.1:0".into();
        configure(&mut edge_settings);

        let mut app = Self {
            env,
            base_url: String::new(),
            edge_settings,
            http: reqwest::Client::new(),
            tasks: Vec::new(),
            projector: None,
            receipts: None,
            notifier: None,
        };
        app.start_projector();
        app.start_receipts();
        let (url, task) = app.spawn_edge().await;
        app.base_url = url;
        app.tasks.push(task);
        app
    }

    /// Starts the projector on this environment in the background (it runs from the start
    /// unless [`TestApp::stop_projector`] stopped it).
    fn start_projector(&mut self) {
        let mut settings =
            projector::Settings::load().unwrap_or_else(|e| panic!("projector settings: {e}"));
        settings.nats = self.env.nats_settings.clone();
        settings.cassandra = self.env.cassandra_settings.clone();
        settings.projector.health_listen = String::new();
        self.projector = Some(spawn_stoppable("projector", |stopped| {
            projector::run(settings, stopped)
        }));
    }

    /// Stops the in-process projector gracefully (it releases its lease), so that projector
    /// processes started by a test can take over.
    pub async fn stop_projector(&mut self) {
        stop(self.projector.take()).await;
    }

    /// The receipts worker's settings on this environment.
    pub fn receipts_settings(&self) -> receipts::Settings {
        let mut settings =
            receipts::Settings::load().unwrap_or_else(|e| panic!("receipts settings: {e}"));
        settings.nats = self.env.nats_settings.clone();
        settings.redis = self.env.redis_settings.clone();
        settings.receipts.fetch_wait_ms = 50;
        settings.receipts.reap_interval_ms = 500;
        settings.receipts.health_listen = String::new();
        settings
    }

    /// Starts the receipts worker on this environment in the background (it runs from the
    /// start unless [`TestApp::stop_receipts`] stopped it).
    pub fn start_receipts(&mut self) {
        self.start_receipts_with(self.receipts_settings());
    }

    /// Starts the receipts worker with `settings` (from [`TestApp::receipts_settings`], changed
    /// by the test) in the background.
    pub fn start_receipts_with(&mut self, settings: receipts::Settings) {
        self.receipts = Some(spawn_stoppable("receipts", |stopped| {
            receipts::run(settings, stopped)
        }));
    }

    /// Stops the receipts worker gracefully (it releases its partition lease).
    pub async fn stop_receipts(&mut self) {
        stop(self.receipts.take()).await;
    }

    /// Starts a notifier with `settings` in the background and waits until its consumer
    /// exists (a new notifier pushes only events stored after that).
    pub async fn start_notifier(&mut self, settings: notifier::Settings) {
        let consumer = settings.notifier.consumer.clone();
        self.notifier = Some(spawn_stoppable("notifier", |stopped| {
            notifier::run(settings, stopped)
        }));
        self.wait_for_consumer(&consumer).await;
    }

    /// Waits up to 20 s until the durable consumer `name` exists on the test's stream.
    pub async fn wait_for_consumer(&self, name: &str) {
        let stream = self
            .env
            .jetstream
            .get_stream(self.env.log.stream_name())
            .await
            .unwrap_or_else(|e| panic!("stream: {e}"));
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        while stream.consumer_info(name).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "consumer {name} never appeared"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Stops the notifier gracefully (it finishes the events it started).
    pub async fn stop_notifier(&mut self) {
        stop(self.notifier.take()).await;
    }

    /// Starts another edge on the same environment; returns its base URL.
    pub async fn spawn_edge(&self) -> (String, JoinHandle<()>) {
        let state = edge::AppState::connect(&self.edge_settings)
            .await
            .unwrap_or_else(|e| panic!("edge start: {e}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local addr: {e}"));
        let router = state.router();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                eprintln!("edge stopped: {e}");
            }
        });
        (format!("http://{addr}"), task)
    }

    /// A valid token for `user`.
    pub fn token(&self, user: &str) -> String {
        let user = chat_schemas::UserId::parse(user).unwrap_or_else(|e| panic!("{user}: {e}"));
        edge::auth::mint(
            &self.edge_settings.jwt_secret,
            &user,
            std::time::Duration::from_secs(600),
        )
        .unwrap_or_else(|e| panic!("mint: {e}"))
    }

    /// Calls the API as `user` (no token when `None`) on this app's edge.
    pub async fn call(
        &self,
        method: Method,
        user: Option<&str>,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_at(&self.base_url, method, user, path, body).await
    }

    /// Calls the API as `user` on the edge at `base_url`.
    pub async fn call_at(
        &self,
        base_url: &str,
        method: Method,
        user: Option<&str>,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{base_url}{path}"));
        if let Some(user) = user {
            request = request.bearer_auth(self.token(user));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        send(request).await
    }

    /// Sends a prepared request (for raw bodies or custom headers).
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base_url))
    }

    /// `GET` as `user`.
    pub async fn get(&self, user: &str, path: &str) -> (u16, Value) {
        self.call(Method::GET, Some(user), path, None).await
    }

    /// `POST` a JSON body as `user`.
    pub async fn post(&self, user: &str, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, Some(user), path, Some(body)).await
    }

    /// `DELETE` as `user`.
    pub async fn delete(&self, user: &str, path: &str) -> (u16, Value) {
        self.call(Method::DELETE, Some(user), path, None).await
    }

    /// Creates a GROUP room of `creator` and `others` over HTTP and returns its id; panics
    /// unless it answers 201.
    pub async fn group(&self, creator: &str, others: &[&str]) -> String {
        let (status, room) = self
            .post(
                creator,
                "/api/rooms",
                serde_json::json!({"type": "GROUP", "name": "g", "userIds": others}),
            )
            .await;
        assert_eq!(status, 201, "{room}");
        room["roomId"].as_str().expect("roomId").to_owned()
    }

    /// How many events the test's stream holds.
    pub async fn stream_len(&self) -> u64 {
        let mut stream = self
            .env
            .jetstream
            .get_stream(self.env.log.stream_name())
            .await
            .unwrap_or_else(|e| panic!("stream: {e}"));
        stream
            .info()
            .await
            .unwrap_or_else(|e| panic!("stream info: {e}"))
            .state
            .messages
    }
}

/// Sends a request and returns the status and the JSON body (`Null` when empty).
pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("request failed: {e}"));
    let status = response.status().as_u16();
    let bytes = response
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("response body: {e}"));
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("response is not JSON: {}", String::from_utf8_lossy(&bytes)))
    };
    (status, body)
}

fn spawn_logged<E: std::fmt::Display>(
    name: &'static str,
    service: impl Future<Output = Result<(), E>> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = service.await {
            eprintln!("{name} stopped: {e}");
        }
    })
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        let services = self
            .projector
            .iter()
            .chain(&self.receipts)
            .chain(&self.notifier);
        for (_, task) in services {
            task.abort();
        }
    }
}
