//! One process per partition: a worker holds its partition's lease in Redis while it applies,
//! renewing it well before it expires; a second worker for the same partition waits as a
//! standby and takes over once the holder stops renewing. The lease is also the fence of every
//! write: taking the lease hands out the next fencing epoch, which every room the holder writes
//! records and every older holder is then refused by (`state::Fence`), so a holder that lost
//! its lease cannot write a room its successor touched, whatever its renewer has noticed yet.

use std::time::Duration;

use chat_platform::redis_connection::RedisConnection;
use redis::RedisResult;
use tokio_util::sync::CancellationToken;

use crate::state::Fence;

/// Renews the lease only while this holder still owns it.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

/// Releases the lease only if this holder still owns it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// A held partition lease.
pub struct Lease {
    redis: RedisConnection,
    key: String,
    holder: String,
    epoch: u64,
    /// Cancelled when the lease was lost (another holder, or renewals failed past expiry).
    pub lost: CancellationToken,
    renewer: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Tries once to take the lease at `key` for `ttl`; a holder gets the next epoch of
    /// `epochs`, one counter for every partition, so a room that moves to another partition
    /// (a changed partition count) is fenced by epochs that still only grow.
    pub async fn try_acquire(
        redis: &RedisConnection,
        key: String,
        epochs: String,
        ttl: Duration,
    ) -> RedisResult<Option<Lease>> {
        let mut conn = redis.clone();
        let holder = uuid::Uuid::new_v4().to_string();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let taken: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(&holder)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut conn)
            .await?;
        if taken.is_none() {
            return Ok(None);
        }
        let epoch: u64 = match redis::cmd("INCR").arg(&epochs).query_async(&mut conn).await {
            Ok(epoch) => epoch,
            Err(error) => {
                let _: RedisResult<i64> = redis::Script::new(RELEASE)
                    .key(&key)
                    .arg(&holder)
                    .invoke_async(&mut conn)
                    .await;
                return Err(error);
            }
        };
        let lost = CancellationToken::new();
        let renewer = tokio::spawn(renew(conn, key.clone(), holder.clone(), ttl, lost.clone()));
        Ok(Some(Lease {
            redis: redis.clone(),
            key,
            holder,
            epoch,
            lost,
            renewer,
        }))
    }

    /// What the scripts check before they write: this lease's key, token and epoch.
    pub fn fence(&self) -> Fence {
        Fence {
            key: self.key.clone(),
            holder: self.holder.clone(),
            epoch: self.epoch,
        }
    }

    /// Gives the lease up so a standby can take over at once.
    pub async fn release(mut self) {
        self.renewer.abort();
        let released: RedisResult<i64> = redis::Script::new(RELEASE)
            .key(&self.key)
            .arg(&self.holder)
            .invoke_async(&mut self.redis)
            .await;
        if let Err(error) = released {
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

/// Renews every third of `ttl`; gives up (cancelling `lost`) when the lease is someone else's
/// or could not be renewed for longer than `ttl`.
async fn renew(
    mut redis: RedisConnection,
    key: String,
    holder: String,
    ttl: Duration,
    lost: CancellationToken,
) {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let script = redis::Script::new(RENEW);
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(ttl / 3).await;
        match script
            .key(&key)
            .arg(&holder)
            .arg(ttl_ms)
            .invoke_async::<i64>(&mut redis)
            .await
        {
            Ok(1) => renewed = tokio::time::Instant::now(),
            Ok(_) => {
                tracing::error!(%key, "the partition lease was taken over");
                lost.cancel();
                return;
            }
            Err(error) if renewed.elapsed() >= ttl => {
                tracing::error!(%error, %key, "the partition lease expired while Redis failed");
                lost.cancel();
                return;
            }
            Err(error) => tracing::warn!(%error, %key, "cannot renew the partition lease"),
        }
    }
}
