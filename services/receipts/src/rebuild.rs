//! `receipts rebuild`: recreates the whole read state from the log, for after Redis lost it
//! (flushed, restored from an old snapshot) or after a change to how events are applied.
//!
//! The workers must be stopped: the rebuild takes every partition's lease and refuses to run
//! while a worker holds one. It deletes the `rs:*` keys, applies the log from its first event
//! to its last (publishing nothing: clients saw those events), and points every partition's
//! consumer just past that, so the workers go on from there when they start again.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use chat_platform::connect;
use chat_schemas::decode;
use futures::StreamExt;

use crate::lease::Lease;
use crate::settings::{consumer_name, Settings};
use crate::state::{LoggedEvent, ReadState};
use crate::worker::WorkerError;
use chat_read_state::ReadKeys;

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildReport {
    /// Events applied.
    pub events: u64,
    /// The last sequence applied.
    pub last_seq: u64,
    /// Keys deleted before applying.
    pub deleted_keys: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// Deletes and recreates the read state from the whole log.
pub async fn rebuild(settings: &Settings) -> Result<RebuildReport, WorkerError> {
    let started = Instant::now();
    let config = &settings.receipts;
    config.validate()?;
    let log = settings.nats.event_log();
    let (_client, jetstream) = connect::nats(&settings.nats).await?;
    let mut stream = connect::event_stream(&jetstream, &log).await?;
    let mut redis = connect::redis(&settings.redis).await?;
    let keys = ReadKeys::new(settings.redis.key_prefix.clone());

    let mut leases = Vec::new();
    for partition in 0..config.partitions {
        let name = consumer_name(partition, config.partitions);
        match Lease::try_acquire(&redis, keys.lease(&name), keys.epochs(), config.lease()).await? {
            Some(lease) => leases.push(lease),
            None => {
                for lease in leases {
                    lease.release().await;
                }
                return Err(WorkerError::Consumer {
                    name,
                    stream: log.stream_name().to_owned(),
                    message: "a receipts worker is running this partition; stop every worker \
                              before a rebuild"
                        .into(),
                });
            }
        }
    }

    let deleted_keys = delete_state(&mut redis, &keys).await?;
    let consumer_error = |message: String| WorkerError::Consumer {
        name: "rebuild".into(),
        stream: log.stream_name().to_owned(),
        message,
    };
    let last_seq = stream
        .info()
        .await
        .map_err(|e| consumer_error(e.to_string()))?
        .state
        .last_sequence;
    let mut state = ReadState::new(redis.clone(), keys.clone());
    let mut events = 0;
    if last_seq > 0 {
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: log.all_rooms(),
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| consumer_error(e.to_string()))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| consumer_error(e.to_string()))?
            .ready_chunks(1_024);
        let mut done = false;
        while !done {
            let Some(chunk) = messages.next().await else {
                break;
            };
            let mut batch = Vec::with_capacity(chunk.len());
            for message in chunk {
                let message = message.map_err(|e| consumer_error(e.to_string()))?;
                let seq = message
                    .info()
                    .map_err(|e| consumer_error(e.to_string()))?
                    .stream_sequence;
                if seq > last_seq {
                    done = true;
                    break;
                }
                done = seq == last_seq;
                if let Ok(envelope) = decode(&message.payload) {
                    batch.push(LoggedEvent { seq, envelope });
                }
            }
            events += u64::try_from(batch.len()).unwrap_or(0);
            state
                .apply(&batch, None, 0)
                .await
                .map_err(|e| consumer_error(e.to_string()))?;
        }
    }

    for partition in 0..config.partitions {
        let name = consumer_name(partition, config.partitions);
        if stream.consumer_info(&name).await.is_ok() {
            stream
                .delete_consumer(&name)
                .await
                .map_err(|e| consumer_error(e.to_string()))?;
        }
        redis::cmd("SET")
            .arg(keys.progress(&name))
            .arg(last_seq)
            .query_async::<()>(&mut redis)
            .await?;
    }
    for lease in leases {
        lease.release().await;
    }
    Ok(RebuildReport {
        events,
        last_seq,
        deleted_keys,
        elapsed: started.elapsed(),
    })
}

/// Deletes every `rs:*` key of the deployment.
async fn delete_state(
    redis: &mut chat_platform::redis_connection::RedisConnection,
    keys: &ReadKeys,
) -> Result<u64, redis::RedisError> {
    let found = redis.keys_matching(&keys.state_pattern()).await?;
    let mut deleted = 0;
    for chunk in found.chunks(1_000) {
        deleted += redis::cmd("DEL")
            .arg(chunk)
            .query_async::<u64>(redis)
            .await?;
    }
    Ok(deleted)
}
