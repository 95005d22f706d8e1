//! Simulated app users on the edge: each one STOMP connection over WebSocket, CONNECTed with its
//! own token and subscribed to its room, sending what the schedule gives it and timing every
//! MESSAGE it receives.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use chat_schemas::UserId;
use edge::stomp::{Command, Frame, Parsed, Parser};
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::worker::{Outcome, Shared};

/// The subscription id of a connection's room-list feed (its room's is `0`).
const FEED: &str = "feed";

/// How long the minted tokens stay valid.
const TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);

/// How one connection reaches the edge.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The edge's HTTP address.
    pub addr: SocketAddr,
    /// Loopback source address to bind.
    pub source_ip: IpAddr,
    /// HS256 token secret.
    pub secret: String,
    /// Heart-beat interval offered and asked for; `None`: no heart-beats.
    pub heart_beat: Option<Duration>,
    /// Whether the connection also subscribes to its user's room-list feed.
    pub feeds: bool,
}

/// One client WebSocket to an edge.
pub type Ws = WebSocketStream<TcpStream>;

/// An HS256 token for user `name`, as the edge verifies them.
pub fn token(secret: &str, name: &str) -> anyhow::Result<String> {
    let user = UserId::parse(name).map_err(|e| anyhow!("user id {name:?}: {e}"))?;
    Ok(edge::auth::mint(secret, &user, TOKEN_TTL)?)
}

/// Opens `user`'s connection: WebSocket, CONNECT, SUBSCRIBE to `room` with a receipt (and to
/// the user's room-list feed, with `feeds`); then serves it in a task of its own until `stop`.
/// Returns the sender of the messages it is to send.
pub async fn open(
    endpoint: &Endpoint,
    user: &str,
    room: &str,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> anyhow::Result<(mpsc::Sender<u64>, tokio::task::JoinHandle<Outcome>)> {
    let mut ws = handshake(endpoint).await?;
    let mut parser = Parser::default();
    let connect = Frame::new(Command::Connect)
        .with_header("accept-version", "1.2")
        .with_header(
            "Authorization",
            format!("Bearer {}", token(&endpoint.secret, user)?),
        );
    let beats = endpoint.heart_beat.map_or(0, |d| d.as_millis());
    write(
        &mut ws,
        connect.with_header("heart-beat", format!("{beats},{beats}")),
    )
    .await?;
    expect(&mut ws, &mut parser, Command::Connected).await?;
    let subscribe = Frame::new(Command::Subscribe)
        .with_header("id", "0")
        .with_header("destination", format!("/sub/rooms/{room}"))
        .with_header("receipt", "sub-0");
    write(&mut ws, subscribe).await?;
    expect(&mut ws, &mut parser, Command::Receipt).await?;
    if endpoint.feeds {
        let feed = Frame::new(Command::Subscribe)
            .with_header("id", FEED)
            .with_header("destination", format!("/sub/users/{user}"))
            .with_header("receipt", "sub-feed");
        write(&mut ws, feed).await?;
        expect(&mut ws, &mut parser, Command::Receipt).await?;
    }

    let (tx, rx) = mpsc::channel(4);
    let connection = Connection {
        ws,
        parser,
        destination: format!("/pub/rooms/{room}/messages"),
        user: user.to_owned(),
        heart_beat: endpoint.heart_beat,
    };
    Ok((tx, tokio::spawn(connection.serve(rx, shared, stop))))
}

/// TCP from the endpoint's source address, then the WebSocket upgrade offering STOMP 1.2.
pub async fn handshake(endpoint: &Endpoint) -> anyhow::Result<Ws> {
    let socket = match endpoint.source_ip {
        IpAddr::V4(_) => TcpSocket::new_v4(),
        IpAddr::V6(_) => TcpSocket::new_v6(),
    }?;
    // Reuse ports of connections of earlier runs still in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket
        .bind(SocketAddr::new(endpoint.source_ip, 0))
        .with_context(|| format!("bind {}", endpoint.source_ip))?;
    let tcp = socket.connect(endpoint.addr).await.context("tcp connect")?;
    tcp.set_nodelay(true)?;
    let mut request = format!("ws://{}/ws", endpoint.addr).into_client_request()?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "v12.stomp".parse()?);
    // Small buffers: thousands of connections per process, tiny frames.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (ws, _) = tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
        .await
        .context("websocket upgrade")?;
    Ok(ws)
}

/// Sends one frame as one WebSocket text message.
pub async fn write(ws: &mut Ws, frame: Frame) -> anyhow::Result<()> {
    let text = String::from_utf8(frame.encode())?;
    ws.send(Message::Text(text.into())).await?;
    Ok(())
}

/// Reads frames until one with `command`; an ERROR or the end of the connection fails.
async fn expect(ws: &mut Ws, parser: &mut Parser, command: Command) -> anyhow::Result<()> {
    let mut items = Vec::new();
    loop {
        let Some(bytes) = read(ws).await? else {
            bail!("closed by the edge while waiting for {command}");
        };
        parser.feed(&bytes, &mut items)?;
        for item in items.drain(..) {
            match item {
                Parsed::Frame(frame) if frame.command == command => return Ok(()),
                Parsed::Frame(frame) if frame.command == Command::Error => {
                    bail!("ERROR {}", frame.header("message").unwrap_or_default())
                }
                _ => {}
            }
        }
    }
}

/// The next data of the connection; `None` when it closed.
pub async fn read(ws: &mut Ws) -> anyhow::Result<Option<Vec<u8>>> {
    loop {
        return match ws.next().await {
            Some(Ok(Message::Text(text))) => Ok(Some(text.as_bytes().to_vec())),
            Some(Ok(Message::Binary(bytes))) => Ok(Some(bytes.to_vec())),
            Some(Ok(Message::Close(_))) | None => Ok(None),
            Some(Ok(_)) => continue,
            Some(Err(e)) => Err(e.into()),
        };
    }
}

/// One open, subscribed connection.
struct Connection {
    ws: Ws,
    parser: Parser,
    destination: String,
    user: String,
    heart_beat: Option<Duration>,
}

impl Connection {
    /// Reads MESSAGE frames, sends what arrives on `sends` (message indexes) and heart-beats,
    /// until `stop` or until the edge ends the connection.
    async fn serve(
        mut self,
        mut sends: mpsc::Receiver<u64>,
        shared: Arc<Shared>,
        stop: CancellationToken,
    ) -> Outcome {
        let mut items = Vec::new();
        let beat_every = self.heart_beat.unwrap_or(Duration::from_secs(86_400));
        let mut next_beat = Instant::now() + beat_every;
        loop {
            tokio::select! {
                () = stop.cancelled() => return Outcome::Held,
                data = read(&mut self.ws) => {
                    let bytes = match data {
                        Ok(Some(bytes)) => bytes,
                        Ok(None) => return Outcome::Dropped("closed by the edge".into()),
                        Err(e) => return Outcome::Dropped(format!("read: {e}")),
                    };
                    if let Err(e) = self.parser.feed(&bytes, &mut items) {
                        return Outcome::Dropped(format!("bad frame from the edge: {e}"));
                    }
                    for item in items.drain(..) {
                        let Parsed::Frame(frame) = item else { continue };
                        match frame.command {
                            Command::Message if frame.header("subscription") == Some(FEED) => {
                                shared.feed_entry(&frame.body);
                            }
                            Command::Message => shared.received(&frame.body, &self.user),
                            Command::Error => {
                                let message = frame.header("message").unwrap_or_default();
                                return Outcome::Dropped(format!("ERROR {message}"));
                            }
                            _ => {}
                        }
                    }
                }
                Some(index) = sends.recv() => {
                    let mut body = serde_json::json!({"content": shared.content(index)});
                    if let Some(id) = shared.client_message_id(&self.user, index) {
                        body["clientMessageId"] = id.into();
                    }
                    let frame = Frame::new(Command::Send)
                        .with_header("destination", self.destination.as_str())
                        .with_header("content-type", "application/json")
                        .with_body(body.to_string());
                    if let Err(e) = write(&mut self.ws, frame).await {
                        return Outcome::Dropped(format!("send: {e}"));
                    }
                    next_beat = Instant::now() + beat_every;
                }
                () = sleep_until(next_beat), if self.heart_beat.is_some() => {
                    if let Err(e) = self.ws.send(Message::Text("\n".into())).await {
                        return Outcome::Dropped(format!("heart-beat: {e}"));
                    }
                    next_beat = Instant::now() + beat_every;
                }
            }
        }
    }
}
