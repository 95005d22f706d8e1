//! A minimal STOMP-over-WebSocket client for tests, built on the edge's own frame codec.

use std::collections::VecDeque;
use std::time::Duration;

use edge::stomp::{Command, Frame, Parsed, Parser};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for a frame it expects.
pub const WAIT: Duration = Duration::from_secs(10);

/// One STOMP connection to an edge.
pub struct StompClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    parser: Parser,
    frames: VecDeque<Frame>,
    closed: bool,
    ignore_presence: bool,
    /// The subprotocol the edge chose.
    pub protocol: Option<String>,
}

impl StompClient {
    /// Opens the WebSocket at `{base_url}/ws` offering the STOMP subprotocols; no CONNECT yet.
    pub async fn open(base_url: &str) -> Self {
        let url = format!("{}/ws", base_url.replacen("http://", "ws://", 1));
        let mut request = url
            .into_client_request()
            .unwrap_or_else(|e| panic!("ws request: {e}"));
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "v12.stomp, v11.stomp, v10.stomp"
                .parse()
                .unwrap_or_else(|e| panic!("header: {e}")),
        );
        let (ws, response) = tokio_tungstenite::connect_async(request)
            .await
            .unwrap_or_else(|e| panic!("ws connect: {e}"));
        let protocol = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Self {
            ws,
            parser: Parser::default(),
            frames: VecDeque::new(),
            closed: false,
            ignore_presence: false,
            protocol,
        }
    }

    /// From now on, drops INFO and OUT messages, for tests about other events.
    pub fn ignoring_presence(mut self) -> Self {
        self.ignore_presence = true;
        self
    }

    /// Opens and CONNECTs with `token`; panics unless CONNECTED comes back.
    pub async fn connect(base_url: &str, token: &str) -> Self {
        let mut client = Self::open(base_url).await;
        client
            .send(
                Frame::new(Command::Connect)
                    .with_header("accept-version", "1.2")
                    .with_header("Authorization", format!("Bearer {token}")),
            )
            .await;
        let connected = client.next().await;
        assert_eq!(connected.command, Command::Connected, "{connected:?}");
        client
    }

    /// Sends a frame.
    pub async fn send(&mut self, frame: Frame) {
        let text = String::from_utf8(frame.encode()).unwrap_or_else(|e| panic!("utf8: {e}"));
        self.send_text(text).await;
    }

    /// Sends raw text as one WebSocket message.
    pub async fn send_text(&mut self, text: String) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .unwrap_or_else(|e| panic!("ws send: {e}"));
    }

    /// Subscribes with `id` to `destination`, plus extra headers; waits for the receipt.
    pub async fn subscribe(&mut self, id: &str, destination: &str, extra: &[(&str, &str)]) {
        let receipt = format!("sub-{id}");
        let mut frame = Frame::new(Command::Subscribe)
            .with_header("id", id)
            .with_header("destination", destination)
            .with_header("receipt", receipt.as_str());
        for (name, value) in extra {
            frame = frame.with_header(*name, *value);
        }
        self.send(frame).await;
        self.expect_receipt(&receipt).await;
    }

    /// Reads frames until the RECEIPT `id`; MESSAGE frames read meanwhile stay queued.
    pub async fn expect_receipt(&mut self, id: &str) {
        let mut held = Vec::new();
        loop {
            let frame = self.next().await;
            if frame.command == Command::Receipt && frame.header("receipt-id") == Some(id) {
                break;
            }
            assert_ne!(frame.command, Command::Error, "{frame:?}");
            held.push(frame);
        }
        for frame in held.into_iter().rev() {
            self.frames.push_front(frame);
        }
    }

    /// The next frame, or `None` when the connection closed or nothing came within `within`.
    pub async fn next_within(&mut self, within: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(frame) = self.frames.pop_front() {
                return Some(frame);
            }
            if self.closed {
                return None;
            }
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            let bytes = match message {
                Some(Ok(Message::Text(text))) => text.as_str().as_bytes().to_vec(),
                Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    self.closed = true;
                    continue;
                }
                Some(Ok(_)) => continue,
            };
            let mut items = Vec::new();
            self.parser
                .feed(&bytes, &mut items)
                .unwrap_or_else(|e| panic!("edge sent a bad frame: {e}"));
            let ignore_presence = self.ignore_presence;
            self.frames
                .extend(items.into_iter().filter_map(|item| match item {
                    Parsed::Frame(frame) if ignore_presence && is_presence(&frame) => None,
                    Parsed::Frame(frame) => Some(frame),
                    Parsed::HeartBeat => None,
                }));
        }
    }

    /// The next frame; panics when none comes within [`WAIT`].
    pub async fn next(&mut self) -> Frame {
        self.next_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("no frame within {WAIT:?}"))
    }

    /// The next MESSAGE frame and its JSON body; panics on anything else.
    pub async fn message(&mut self) -> (Frame, Value) {
        let frame = self.next().await;
        assert_eq!(frame.command, Command::Message, "{frame:?}");
        let body = serde_json::from_slice(&frame.body).unwrap_or_else(|e| panic!("body: {e}"));
        (frame, body)
    }

    /// The ERROR frame that must come next, after which the edge closes the connection.
    pub async fn error(&mut self) -> Frame {
        let frame = self.next().await;
        assert_eq!(frame.command, Command::Error, "{frame:?}");
        assert!(
            self.next_within(WAIT).await.is_none() && self.closed,
            "the edge must close the connection after ERROR"
        );
        frame
    }

    /// Whether the edge closed the connection.
    pub fn is_closed(&self) -> bool {
        self.closed
    }
}

/// Whether `frame` is an INFO or OUT message.
fn is_presence(frame: &Frame) -> bool {
    frame.command == Command::Message
        && serde_json::from_slice::<Value>(&frame.body)
            .is_ok_and(|body| body["type"] == "INFO" || body["type"] == "OUT")
}
