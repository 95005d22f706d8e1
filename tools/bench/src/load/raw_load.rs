//! The baseline: the same users as plain NATS clients, one client connection each (so the NATS
//! server, like the edge, writes every delivery to a socket of its own), subscribed to their
//! room's core subject, publishing the same payloads at the same rate.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::worker::{Outcome, Shared};

/// User `user`'s NATS client, subscribed to its room's subject.
pub async fn open(
    url: &str,
    user: &str,
    subject: &str,
    timeout: Duration,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> anyhow::Result<(async_nats::Client, tokio::task::JoinHandle<Outcome>)> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(timeout)
        // Small buffers and queues: thousands of clients per process, tiny messages.
        .read_buffer_capacity(4096)
        .client_capacity(64)
        .subscription_capacity(1024)
        .connect(url)
        .await
        .context("nats connect")?;
    let mut subscriber = client
        .subscribe(subject.to_owned())
        .await
        .context("subscribe")?;
    // The server has the subscription once it answered the flush's PING.
    client.flush().await.context("flush")?;
    let user = user.to_owned();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return Outcome::Held,
                message = subscriber.next() => match message {
                    Some(message) => shared.received(&message.payload, &user),
                    None => return Outcome::Dropped("subscription ended".into()),
                },
            }
        }
    });
    Ok((client, task))
}

/// Publishes message `index` from `user` to `subject`: the JSON a CHAT event has on the edge.
pub async fn publish(
    client: &async_nats::Client,
    subject: &str,
    user: &str,
    index: u64,
    shared: &Shared,
) -> anyhow::Result<()> {
    let mut payload = serde_json::json!({
        "type": "CHAT",
        "roomId": subject,
        "messageId": index.to_string(),
        "senderId": user,
        "content": shared.content(index),
    });
    if let Some(id) = shared.client_message_id(user, index) {
        payload["clientMessageId"] = id.into();
    }
    client
        .publish(subject.to_owned(), payload.to_string().into())
        .await
        .context("publish")
}
