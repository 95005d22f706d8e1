//! Two edge processes on one test environment, for what must hold across edges: a client on
//! one sees what a client on the other did.

use crate::stomp::StompClient;
use crate::{ServiceProcess, TestApp};

/// A [`TestApp`] (its own in-process edge, projector and receipts worker) plus two edge
/// processes, A and B, on the same environment.
pub struct TwoEdges {
    /// The environment, its workers and the HTTP API (on its in-process edge).
    pub app: TestApp,
    /// Edge process A.
    pub a: ServiceProcess,
    /// Edge process B.
    pub b: ServiceProcess,
}

impl TwoEdges {
    /// Starts the app and both edge processes.
    pub async fn start() -> Self {
        let app = TestApp::start().await;
        let a = ServiceProcess::start("edge", &app.env, &[]);
        let b = ServiceProcess::start("edge", &app.env, &[]);
        Self { app, a, b }
    }

    /// The base URL of edge A (`on_a`) or B.
    pub fn url(&self, on_a: bool) -> &str {
        if on_a {
            &self.a.url
        } else {
            &self.b.url
        }
    }

    /// A CONNECTed client of `user` on edge A or B that skips INFO and OUT.
    pub async fn client(&self, on_a: bool, user: &str) -> StompClient {
        StompClient::connect(self.url(on_a), &self.app.token(user))
            .await
            .ignoring_presence()
    }
}
