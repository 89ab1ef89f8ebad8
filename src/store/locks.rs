//! Per-target mutual exclusion: two actions on the same object never run at the same time.
//!
//! On PostgreSQL the lock is a session-level `pg_advisory_lock` on a 64-bit hash of the
//! target, held by a connection of a pool reserved for locks for as long as the action runs,
//! so replicas sharing the database exclude each other. The pool is separate from the store's:
//! a lock holder also needs a store connection to record its outcome, and sharing one pool
//! would let lock holders starve each other of it. If the holder cannot unlock (its future was
//! cancelled or the unlock failed), its connection is closed instead of returned: ending the
//! session is what releases a session lock for certain.
//!
//! SQLite serves one process (its file cannot be shared by replicas), so an async mutex per
//! target in this process is the whole coordination there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio::time::Instant;

use super::Store;

/// How long to wait for a lock connection. The pool has one connection per execution slot,
/// so a wait means the database is slow to accept connections; the action's own deadline
/// bounds it further.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a target could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The lock was still held by another action when the deadline passed.
    #[error("target `{target}` stayed locked by another action for {waited:?}")]
    Busy {
        /// The target.
        target: String,
        /// How long this action waited.
        waited: Duration,
    },
    /// PostgreSQL refused or failed.
    #[error("cannot take the advisory lock of target `{target}` in PostgreSQL")]
    Database {
        /// The target.
        target: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
}

/// The lock manager of one process.
#[derive(Debug)]
pub enum TargetLocks {
    /// PostgreSQL advisory locks on a dedicated pool.
    Postgres(PgPool),
    /// In-process mutexes; entries are removed when their last user releases them.
    Local(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>),
}

/// A held lock; call [`Held::release`] (dropping it also releases, less gracefully).
#[derive(Debug)]
pub enum Held<'a> {
    /// An advisory lock and the session holding it.
    Postgres {
        /// The session; `None` once released.
        conn: Option<PoolConnection<sqlx::Postgres>>,
        /// The lock key.
        key: i64,
    },
    /// An in-process lock.
    Local {
        /// The guard; `None` once released.
        guard: Option<tokio::sync::OwnedMutexGuard<()>>,
        /// The map to clean up.
        locks: &'a TargetLocks,
        /// The target.
        target: String,
    },
}

/// The advisory-lock key of a target: the first 8 bytes of a SHA-256 over a Reflex-specific
/// prefix, so other applications' advisory locks on the same database are unlikely to clash.
pub fn lock_key(target: &str) -> i64 {
    let mut hasher = Sha256::new();
    hasher.update(b"reflex-target\0");
    hasher.update(target.as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

impl TargetLocks {
    /// Locks matching the store: advisory locks with `slots` connections on PostgreSQL,
    /// in-process mutexes on SQLite.
    pub fn for_store(store: &Store, slots: usize) -> Self {
        match store {
            Store::Postgres { pool, .. } => {
                let options = (*pool.connect_options()).clone();
                let pool = PgPoolOptions::new()
                    .max_connections(u32::try_from(slots).unwrap_or(u32::MAX))
                    .min_connections(0)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_lazy_with(options);
                TargetLocks::Postgres(pool)
            }
            Store::Sqlite { .. } => TargetLocks::Local(Mutex::default()),
        }
    }

    /// Waits until `target` is free (or `deadline`), then holds it.
    pub async fn lock(&self, target: &str, deadline: Instant) -> Result<Held<'_>, Error> {
        let started = Instant::now();
        let busy = || Error::Busy {
            target: target.to_owned(),
            waited: started.elapsed(),
        };
        match self {
            TargetLocks::Postgres(pool) => {
                let database = |source| Error::Database {
                    target: target.to_owned(),
                    source,
                };
                let mut conn = match tokio::time::timeout_at(deadline, pool.acquire()).await {
                    Ok(conn) => conn.map_err(database)?,
                    Err(_) => return Err(busy()),
                };
                let key = lock_key(target);
                let take = sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(key)
                    .execute(&mut *conn);
                match tokio::time::timeout_at(deadline, take).await {
                    Ok(Ok(_)) => Ok(Held::Postgres {
                        conn: Some(conn),
                        key,
                    }),
                    Ok(Err(err)) => {
                        conn.close_on_drop();
                        Err(database(err))
                    }
                    Err(_) => {
                        // The server may still grant the lock to this session: end it.
                        conn.close_on_drop();
                        Err(busy())
                    }
                }
            }
            TargetLocks::Local(map) => {
                let mutex = {
                    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                    Arc::clone(map.entry(target.to_owned()).or_default())
                };
                match tokio::time::timeout_at(deadline, mutex.lock_owned()).await {
                    Ok(guard) => Ok(Held::Local {
                        guard: Some(guard),
                        locks: self,
                        target: target.to_owned(),
                    }),
                    Err(_) => {
                        self.forget_unused(target);
                        Err(busy())
                    }
                }
            }
        }
    }

    /// Drops the map entry of `target` when nobody holds or waits for it.
    fn forget_unused(&self, target: &str) {
        if let TargetLocks::Local(map) = self {
            let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
            if map
                .get(target)
                .is_some_and(|mutex| Arc::strong_count(mutex) == 1)
            {
                map.remove(target);
            }
        }
    }
}

impl Held<'_> {
    /// Releases the lock: unlocks and returns the session to the pool (PostgreSQL), or
    /// unlocks the mutex.
    pub async fn release(mut self) {
        if let Held::Postgres { conn, key } = &mut self
            && let Some(mut session) = conn.take()
        {
            let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(*key)
                .execute(&mut *session)
                .await;
            if let Err(err) = unlocked {
                tracing::warn!(error = %err, "advisory unlock failed; closing the session");
                session.close_on_drop();
            }
        }
        // A local lock is released by the drop, which also cleans up its map entry.
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        match self {
            // Not released (the future was cancelled): the session must not go back to the
            // pool still holding the lock.
            Held::Postgres { conn, .. } => {
                if let Some(session) = conn.as_mut() {
                    session.close_on_drop();
                }
            }
            Held::Local {
                guard,
                locks,
                target,
            } => {
                if guard.take().is_some() {
                    locks.forget_unused(target);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable_and_distinct_per_target() {
        assert_eq!(
            lock_key("deployment/shop/web"),
            lock_key("deployment/shop/web")
        );
        assert_ne!(
            lock_key("deployment/shop/web"),
            lock_key("deployment/shop/api")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_local_lock_excludes_a_second_holder_until_released() {
        let locks = TargetLocks::Local(Mutex::default());
        let far = Instant::now() + Duration::from_secs(60);
        let first = locks.lock("t", far).await.expect("free");
        let soon = Instant::now() + Duration::from_secs(1);
        let err = locks.lock("t", soon).await.expect_err("held");
        assert!(matches!(err, Error::Busy { .. }), "{err}");
        assert!(
            locks.lock("other", soon).await.is_ok(),
            "other targets are free"
        );
        first.release().await;
        let again = locks.lock("t", far).await.expect("released");
        again.release().await;
        if let TargetLocks::Local(map) = &locks {
            assert!(
                map.lock().expect("map").is_empty(),
                "entries are cleaned up"
            );
        }
    }
}
