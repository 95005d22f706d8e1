//! Applying one batch of the log: plan every event in order, write all planned rows
//! concurrently, then record progress. Shared by the live projector and replay.

use chat_schemas::{ChatEvent, Envelope};

use crate::plan;
use crate::retry::{Abandoned, Retry};
use crate::settings::ProjectorSettings;
use crate::state::{PendingBuckets, RoomCache};
use crate::store::{Store, StoreError};

/// A decoded event at its position in the log.
#[derive(Debug, Clone)]
pub(crate) struct LogEvent {
    /// Its stream sequence, which is also its message id.
    pub(crate) seq: i64,
    /// The event.
    pub(crate) envelope: Envelope,
}

impl LogEvent {
    /// Decodes the event stored at `seq`; `None` (with a warning) for what cannot be projected:
    /// bytes that are no envelope, and types newer than this build.
    pub(crate) fn decode(seq: u64, payload: &[u8]) -> Option<Self> {
        let Ok(seq) = i64::try_from(seq) else {
            tracing::error!(seq, "sequence beyond the CQL bigint range; event skipped");
            return None;
        };
        match chat_schemas::decode(payload) {
            Ok(envelope) if envelope.event == ChatEvent::Unknown => {
                tracing::warn!(seq, v = envelope.v, "event of an unknown type skipped");
                None
            }
            Ok(envelope) => Some(Self { seq, envelope }),
            Err(error) => {
                tracing::warn!(seq, %error, "undecodable event skipped");
                None
            }
        }
    }
}

/// Applies batches to one keyspace, remembering room state between them.
pub(crate) struct Applier {
    store: Store,
    cache: RoomCache,
    name: String,
    bucket_millis: i64,
    max_in_flight: usize,
}

impl Applier {
    /// An applier writing through `store` as configured by `settings`.
    pub(crate) fn new(store: Store, settings: &ProjectorSettings) -> Self {
        Self {
            store,
            cache: RoomCache::new(settings.cache_rooms),
            name: settings.name.clone(),
            bucket_millis: settings.bucket_millis(),
            max_in_flight: settings.max_in_flight,
        }
    }

    /// The statements it writes with, also for reads outside a batch.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Forgets the cached room state: at the start of a term as the active projector, since
    /// another process may have applied events since this one last planned.
    pub(crate) fn forget(&mut self) {
        self.cache.clear();
    }

    /// Applies `events`, then records `last_seq` (the batch's last sequence, skipped events
    /// included) as applied. Failures are retried until they succeed or `retry` gives up.
    pub(crate) async fn apply(
        &mut self,
        events: &[LogEvent],
        last_seq: i64,
        retry: &mut Retry<'_>,
    ) -> Result<(), Abandoned> {
        let mut writes = loop {
            match self.plan(events).await {
                Ok(writes) => break writes,
                Err(error) => {
                    self.cache.clear();
                    retry.after_failure("reading room state", &error).await?;
                }
            }
        };
        retry.succeeded();
        let total = writes.len();
        loop {
            let failed = self.store.execute_all(writes, self.max_in_flight).await;
            let Some((_, error)) = failed.first() else {
                break;
            };
            writes = failed
                .iter()
                .flat_map(|(group, _)| group.iter().cloned())
                .collect();
            let what = format!("{} of {total} writes up to seq {last_seq}", writes.len());
            retry.after_failure(&what, error).await?;
        }
        retry.succeeded();
        while let Err(error) = self.store.write_progress(&self.name, last_seq).await {
            retry.after_failure("recording progress", &error).await?;
        }
        tracing::debug!(
            events = events.len(),
            writes = total,
            last_seq,
            "batch applied"
        );
        Ok(())
    }

    /// Plans every event of the batch in log order.
    async fn plan(&mut self, events: &[LogEvent]) -> Result<Vec<plan::Write>, StoreError> {
        let rooms = events.iter().map(|e| e.envelope.room_id.as_uuid());
        self.cache
            .preload(rooms, &self.store, self.max_in_flight)
            .await?;
        let mut pending = PendingBuckets::new();
        let mut writes = Vec::new();
        for LogEvent { seq, envelope } in events {
            let room = envelope.room_id.as_uuid();
            let needs = plan::needs(&envelope.event, *seq);
            let facts = self
                .cache
                .facts(room, *seq, &needs, &pending, &self.store)
                .await?;
            let planned = plan::plan(envelope, *seq, &facts, self.bucket_millis);
            if let Some(start) = planned.new_bucket {
                pending.entry(room).or_default().push(start);
            }
            self.cache.record(room, &planned);
            writes.extend(planned.writes);
        }
        Ok(plan::coalesce(writes))
    }
}
