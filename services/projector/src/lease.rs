//! One applying projector per name: the active process holds a lease in a JetStream key-value
//! bucket while it applies, renewing it well before it expires; a second process waits as a
//! standby and takes over once the holder stops renewing (a crash) or releases it (shutdown).
//!
//! The bucket's `max_age` is the lease's lifetime, so a key nobody renews disappears by itself.
//! Taking the lease is `create` (it succeeds only when the key is absent or deleted); renewing is
//! `update` with the revision of the holder's last write, which the server refuses once anyone
//! else wrote the key or it expired. The revision is the holder's fencing token.
//!
//! A holder also keeps its own conservative deadline (when its last successful renewal was
//! *sent*, plus the lifetime, minus a margin): the server's copy expires later than that, so
//! once [`Lease::held`] is false no other process can hold the lease yet, and while it is true
//! no other process holds it — whatever the renewer has noticed.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind};
use async_nats::jetstream::stream::StorageType;
use chat_schemas::EventLog;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The lease bucket could not be created, or a lease request failed for a reason other than
/// someone else holding it.
#[derive(Debug, thiserror::Error)]
#[error("lease bucket {bucket}: {message}")]
pub struct LeaseError {
    /// The bucket.
    pub bucket: String,
    /// What JetStream reported.
    pub message: String,
}

/// Creates the deployment's lease bucket, or brings an existing one to `ttl` (every process of
/// one name must use the same `lease_ms`). In memory: a lease outlives no restart of NATS
/// anyway, since a restart takes longer than a lease lasts.
pub async fn bucket(
    jetstream: &async_nats::jetstream::Context,
    log: &EventLog,
    ttl: Duration,
) -> Result<kv::Store, LeaseError> {
    let name = log.lease_bucket();
    jetstream
        .create_or_update_key_value(kv::Config {
            bucket: name.clone(),
            description: "Which projector process applies the log (one key per name)".into(),
            history: 1,
            max_age: ttl,
            storage: StorageType::Memory,
            num_replicas: log.replicas(),
            ..Default::default()
        })
        .await
        .map_err(|e| LeaseError {
            bucket: name,
            message: e.to_string(),
        })
}

/// How much earlier than the server a holder gives its lease up: room for the delay between
/// sending a renewal and the server storing it, and between checking [`Lease::held`] and the
/// next request reaching the server.
fn margin(ttl: Duration) -> Duration {
    (ttl / 6).min(Duration::from_millis(500))
}

/// A held lease.
pub struct Lease {
    kv: kv::Store,
    key: String,
    state: Arc<Mutex<Held>>,
    /// Cancelled when the lease was lost: another holder wrote it, or no renewal succeeded in
    /// time.
    pub lost: CancellationToken,
    renewer: tokio::task::JoinHandle<()>,
}

/// The holder's view of its lease: its fencing token and until when it may act on it.
#[derive(Debug, Clone, Copy)]
struct Held {
    revision: u64,
    until: Instant,
}

impl Lease {
    /// Tries once to take the lease `key` for `ttl` (the bucket's `max_age`); `None` while
    /// another process holds it. `holder` is stored as the value, for operators.
    ///
    /// The try gives up after a third of `ttl`, not JetStream's 5 s: while the bucket's stream
    /// elects a leader (its old one frozen or cut off) a request gets no answer at all, and the
    /// next try should go out soon after the election, since nobody applies the log meanwhile.
    /// A try that gave up may still have taken the lease; it then expires unused after `ttl`.
    pub async fn try_acquire(
        kv: &kv::Store,
        key: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, LeaseError> {
        let sent = Instant::now();
        let patience = ttl / 3;
        let created = tokio::time::timeout(patience, kv.create(key, holder.to_owned().into()))
            .await
            .map_err(|_| lease_error(kv, &format!("no answer within {patience:?}")))?;
        let revision = match created {
            Ok(revision) => revision,
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(lease_error(kv, &e)),
        };
        let state = Arc::new(Mutex::new(Held {
            revision,
            until: sent + ttl - margin(ttl),
        }));
        let lost = CancellationToken::new();
        let renewer = tokio::spawn(renew(
            kv.clone(),
            key.to_owned(),
            holder.to_owned(),
            ttl,
            state.clone(),
            lost.clone(),
        ));
        Ok(Some(Lease {
            kv: kv.clone(),
            key: key.to_owned(),
            state,
            lost,
            renewer,
        }))
    }

    /// Whether this process may still act as the holder: not lost, and its own deadline not
    /// passed. Checked before every fetch and every batch's writes.
    pub fn held(&self) -> bool {
        !self.lost.is_cancelled() && Instant::now() < self.current().until
    }

    /// The fencing token: the revision of the holder's last write of the key.
    pub fn revision(&self) -> u64 {
        self.current().revision
    }

    fn current(&self) -> Held {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives the lease up so a standby can take over at once; a lease already lost is left
    /// alone (the delete is revision-checked, so it never removes another holder's lease).
    pub async fn release(self) {
        self.renewer.abort();
        if !self.held() {
            return;
        }
        let revision = self.revision();
        if let Err(error) = self
            .kv
            .delete_expect_revision(&self.key, Some(revision))
            .await
        {
            tracing::warn!(%error, key = %self.key, "cannot release the lease; it expires by itself");
        }
    }
}

impl Drop for Lease {
    /// A lease given up without [`Lease::release`] (it was lost) stops renewing.
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

fn lease_error(kv: &kv::Store, error: &dyn std::fmt::Display) -> LeaseError {
    LeaseError {
        bucket: kv.name.clone(),
        message: error.to_string(),
    }
}

/// Renews every third of `ttl` with the last revision; cancels `lost` when the server refuses
/// (someone else wrote the key, or it expired) or when no renewal succeeded before the
/// holder's deadline.
async fn renew(
    kv: kv::Store,
    key: String,
    holder: String,
    ttl: Duration,
    state: Arc<Mutex<Held>>,
    lost: CancellationToken,
) {
    let lock = || state.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        tokio::time::sleep(ttl / 3).await;
        let Held { revision, until } = *lock();
        let sent = Instant::now();
        let renewal = kv.update(&key, holder.clone().into(), revision);
        match tokio::time::timeout_at(until, renewal).await {
            Ok(Ok(next)) => {
                *lock() = Held {
                    revision: next,
                    until: sent + ttl - margin(ttl),
                };
            }
            Ok(Err(error)) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                tracing::error!(%key, revision, "the projector lease was taken over or expired");
                lost.cancel();
                return;
            }
            Ok(Err(error)) if Instant::now() < until => {
                tracing::warn!(%error, %key, "cannot renew the projector lease; retrying");
            }
            Ok(Err(_)) | Err(_) => {
                tracing::error!(%key, revision, "the projector lease expired before a renewal");
                lost.cancel();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_gives_up_before_the_server_expires_its_lease() {
        assert_eq!(
            margin(Duration::from_secs(3)),
            Duration::from_millis(500),
            "renewals every second leave room for one failure"
        );
        assert!(margin(Duration::from_secs(1)) < Duration::from_millis(200));
    }
}
