//! The I/O of one WebSocket connection: bytes in through the STOMP parser, frames out one per
//! WebSocket message, deliveries from the hub, heart-beats, limits and shutdown.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;

use super::hub::{ConnId, Mailbox};
use super::session::{Flow, SendJob, SendOutcome, Session, StompError, UNAVAILABLE};
use crate::app::AppState;
use crate::stomp::{Frame, Limits, Parsed, Parser, HEART_BEAT};

/// How long a write to a client may take before the client counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a closing connection waits for the client's answer to its Close frame.
const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a new connection may take to send CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Most SENDs one connection may have accepted but not yet stored (the rate limit keeps honest
/// clients far below; a stalled projector must not let the queue grow without bound).
const MAX_QUEUED_SENDS: usize = 256;

/// How long a closing connection may take to store the SENDs it had accepted.
const FINISH_SENDS_TIMEOUT: Duration = Duration::from_secs(8);

/// A SEND being stored.
type Sending = std::pin::Pin<Box<dyn std::future::Future<Output = SendOutcome> + Send>>;

/// Far enough in the future to mean "never" for a timer.
const NEVER: Duration = Duration::from_secs(86_400 * 365);

/// Serves one upgraded WebSocket until either side closes it.
pub async fn serve(socket: WebSocket, state: Arc<AppState>, conn: ConnId) {
    let _open = crate::observe::OpenConnection::open();
    let (mut sink, mut stream) = socket.split();
    let (tx, mut inbox) = mpsc::channel(state.edge.outbound_queue);
    let overflowed = CancellationToken::new();
    let mailbox = Mailbox {
        tx,
        overflowed: overflowed.clone(),
    };
    let mut session = Session::new(state.clone(), conn, mailbox);
    let mut parser = Parser::new(Limits {
        max_frame_size: state.edge.max_frame_bytes,
        max_body_size: state.edge.max_frame_bytes,
        ..Limits::default()
    });
    let shutdown = state.shutdown.clone();
    let started = Instant::now();
    let mut last_read = Instant::now();
    let mut last_write = Instant::now();
    let mut out: Vec<Frame> = Vec::new();
    let mut items: Vec<Parsed> = Vec::new();
    let mut sending: Option<Sending> = None;
    let mut queued: VecDeque<SendJob> = VecDeque::new();
    let mut disconnect_receipt: Option<String> = None;

    let reason = loop {
        let (send_every, expect_every) = session.heart_beats();
        let read_deadline = if session.is_connected() {
            // Twice the interval, as the spec suggests, to tolerate network delays.
            last_read + expect_every.map_or(NEVER, |d| d * 2)
        } else {
            started + CONNECT_TIMEOUT
        };
        let write_deadline = last_write + send_every.unwrap_or(NEVER);

        let mut close = None;
        let mut heart_beat = false;
        tokio::select! {
            message = stream.next() => {
                last_read = Instant::now();
                let bytes = match message {
                    Some(Ok(Message::Text(text))) => text.as_str().as_bytes().to_vec(),
                    Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Vec::new(),
                    Some(Ok(Message::Close(_))) | None => {
                        close = Some(("client closed", None));
                        Vec::new()
                    }
                    Some(Err(_)) => {
                        close = Some(("connection error", None));
                        Vec::new()
                    }
                };
                items.clear();
                let parsed = parser.feed(&bytes, &mut items);
                for item in items.drain(..) {
                    let Parsed::Frame(frame) = item else { continue };
                    match session.handle(frame, &mut out).await {
                        Ok(Flow::Continue) => {}
                        Ok(Flow::Send(job)) if queued.len() < MAX_QUEUED_SENDS => queued.push_back(job),
                        Ok(Flow::Send(_)) => {
                            close = Some(("error", Some(StompError::new(
                                "RATE_LIMITED",
                                "too many messages waiting to be stored",
                            ))));
                            break;
                        }
                        Ok(Flow::Disconnect(receipt)) => {
                            disconnect_receipt = receipt;
                            close = Some(("disconnected", None));
                            break;
                        }
                        Err(e) => { close = Some(("error", Some(e))); break; }
                    }
                }
                if close.is_none() {
                    if let Err(e) = parsed {
                        close = Some(("error", Some(StompError::from(e))));
                    }
                }
            }
            outcome = async {
                match sending.as_mut() {
                    Some(send) => send.await,
                    None => std::future::pending().await,
                }
            } => {
                sending = None;
                match outcome {
                    Ok(Some(receipt)) => out.push(Frame::receipt(&receipt)),
                    Ok(None) => {}
                    Err(e) => {
                        if e.code == UNAVAILABLE {
                            // As in `finish_sends`: the SENDs after it are dropped unanswered,
                            // else they would be stored before it, and the client's resend of
                            // it would land after them (a chaos run stored 12 so).
                            queued.clear();
                        }
                        close = Some(("error", Some(e)));
                    }
                }
            }
            Some(delivery) = inbox.recv() => {
                if let Err(e) = session.deliver(delivery, &mut out).await {
                    close = Some(("error", Some(e)));
                }
            }
            () = sleep_until(read_deadline) => {
                close = Some(if session.is_connected() {
                    ("heart-beat timeout", None)
                } else {
                    ("no CONNECT", Some(StompError::new("PROTOCOL_ERROR", "no CONNECT frame in time")))
                });
            }
            () = sleep_until(write_deadline) => heart_beat = true,
            () = overflowed.cancelled() => {
                crate::observe::slow_consumer();
                close = Some(("slow consumer", Some(StompError::new(
                    "SLOW_CONSUMER",
                    "the client does not read fast enough",
                ))));
            }
            () = shutdown.cancelled() => close = Some(("edge shutting down", None)),
        }

        if let Some((reason, error)) = close.take() {
            // Every SEND accepted before the end is stored and answered first, whatever ended
            // the connection (DISCONNECT, the client closing, shutdown, an ERROR), so an ERROR
            // never silently drops a SEND the edge had taken. The first failed SEND is the error
            // reported.
            let failed = timeout(
                FINISH_SENDS_TIMEOUT,
                finish_sends(&session, &mut sending, &mut queued, &mut out),
            )
            .await
            .unwrap_or(None);
            let error = failed.or(error);
            if let Some(error) = &error {
                tracing::debug!(conn, code = error.code, message = %error.message, "closing with ERROR");
            }
            match (&error, disconnect_receipt.take()) {
                (Some(error), _) => {
                    crate::observe::error_sent(error.code);
                    out.push(error.frame());
                }
                (None, Some(receipt)) => out.push(Frame::receipt(&receipt)),
                (None, None) => {}
            }
            close = Some((reason, error));
        } else if sending.is_none() {
            sending = queued.pop_front().map(|job| session.start_send(job));
        }
        let mut writes: Vec<Message> = out.drain(..).map(to_message).collect();
        if heart_beat && writes.is_empty() {
            writes.push(Message::Text(
                String::from_utf8_lossy(HEART_BEAT).into_owned().into(),
            ));
        }
        if !writes.is_empty() {
            if write_all(&mut sink, writes).await.is_err() {
                break "write failed";
            }
            last_write = Instant::now();
        }
        if let Some((reason, _)) = close {
            break reason;
        }
    };

    session.close();
    let code = if shutdown.is_cancelled() { 1001 } else { 1000 };
    let _ = timeout(
        WRITE_TIMEOUT,
        sink.send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))),
    )
    .await;
    // Read (and drop) what the client still sends until its Close answers ours: closing a socket
    // with unread input makes the kernel reset the connection, and the client would lose the
    // ERROR frame it has not read yet.
    let _ = timeout(CLOSE_HANDSHAKE_TIMEOUT, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    tracing::debug!(conn, reason, "connection closed");
}

/// Stores every SEND already accepted, in order, pushing their receipts, and returns the first
/// failure. A refused SEND (not a member, empty, ...) does not stop the ones after it; an
/// unavailable log does: the rest are dropped unanswered, for the client to send again.
async fn finish_sends(
    session: &Session,
    sending: &mut Option<Sending>,
    queued: &mut VecDeque<SendJob>,
    out: &mut Vec<Frame>,
) -> Option<StompError> {
    let mut first_error = None;
    loop {
        let Some(send) = sending
            .take()
            .or_else(|| queued.pop_front().map(|job| session.start_send(job)))
        else {
            return first_error;
        };
        match send.await {
            Ok(Some(receipt)) => out.push(Frame::receipt(&receipt)),
            Ok(None) => {}
            Err(e) => {
                let unavailable = e.code == UNAVAILABLE;
                first_error.get_or_insert(e);
                if unavailable {
                    queued.clear();
                    return first_error;
                }
            }
        }
    }
}

fn to_message(frame: Frame) -> Message {
    crate::observe::frame_sent(frame.command);
    let bytes = frame.encode();
    match String::from_utf8(bytes) {
        Ok(text) => Message::Text(text.into()),
        Err(e) => Message::Binary(e.into_bytes().into()),
    }
}

async fn write_all(
    sink: &mut futures::stream::SplitSink<WebSocket, Message>,
    messages: Vec<Message>,
) -> Result<(), ()> {
    let last = messages.len().saturating_sub(1);
    for (i, message) in messages.into_iter().enumerate() {
        let sent = if i == last {
            timeout(WRITE_TIMEOUT, sink.send(message)).await
        } else {
            timeout(WRITE_TIMEOUT, sink.feed(message)).await
        };
        if !matches!(sent, Ok(Ok(()))) {
            return Err(());
        }
    }
    Ok(())
}
