//! [`Reloading`]: a value built from a secret that can be rotated under a
//! running function. The value is cached; the secret is read again when
//! the cached value is older than its TTL, or on demand (a delivery
//! refused for its secret: the sender may hold the rotated one), at most
//! once per interval so refused requests cannot make us hammer the secret
//! store. One read at a time; a read that fails, or finds the secret
//! unchanged or unusable, keeps the current value (it still works with the
//! previous secret). `Debug` never shows the value.
//!
//! What is read and built is the [`Reload`] source's business (the relay
//! from Secrets Manager's JSON secret, in `crate::AwsRelay`); relay-azure
//! and relay-gcp take their secrets from the platform's environment and
//! have no such logic.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Where a [`Reloading`] value comes from.
pub trait Reload: Send + Sync {
    type Value: Send + Sync;

    /// The secret's id, for logs (never its content).
    fn secret_id(&self) -> &str;

    /// Reads the secret again: the value to serve from now on when it
    /// changed; `None` keeps `current` (unchanged, unreadable, or its new
    /// version unusable: the source logs which).
    fn reload(&self, current: &Self::Value) -> impl Future<Output = Option<Self::Value>> + Send;
}

struct Schedule<T> {
    current: Arc<T>,
    /// When the secret is read again.
    next_read: Instant,
    /// The last read forced by [`Reloading::reread`].
    last_forced: Option<Instant>,
}

/// A value cached from a secret, read again after `ttl` or on demand (at
/// most once per `forced_interval`).
pub struct Reloading<S: Reload> {
    source: S,
    ttl: Duration,
    forced_interval: Duration,
    schedule: Mutex<Schedule<S::Value>>,
    /// One read of the secret at a time.
    reading: tokio::sync::Mutex<()>,
}

impl<S: Reload> fmt::Debug for Reloading<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloading")
            .field("secret_id", &self.source.secret_id())
            .field("ttl", &self.ttl)
            .field("forced_interval", &self.forced_interval)
            .finish_non_exhaustive()
    }
}

impl<S: Reload> Reloading<S> {
    /// `first`, built from the secret just read, served for `ttl`.
    pub fn new(source: S, first: S::Value, ttl: Duration, forced_interval: Duration) -> Self {
        Self {
            source,
            ttl,
            forced_interval,
            schedule: Mutex::new(Schedule {
                current: Arc::new(first),
                next_read: Instant::now() + ttl,
                last_forced: None,
            }),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    /// The value now cached, without reading the secret.
    pub fn cached(&self) -> Arc<S::Value> {
        Arc::clone(&self.schedule().current)
    }

    /// The current value, reading the secret first when its TTL ran out.
    pub async fn current(&self) -> Arc<S::Value> {
        {
            let schedule = self.schedule();
            if Instant::now() < schedule.next_read {
                return Arc::clone(&schedule.current);
            }
        }
        let _one_at_a_time = self.reading.lock().await;
        {
            // Another caller may have read it while we waited.
            let schedule = self.schedule();
            if Instant::now() < schedule.next_read {
                return Arc::clone(&schedule.current);
            }
        }
        self.read().await
    }

    /// A read on demand, `why` being logged: `Some` with the new value when
    /// the secret changed (or when it was reloaded since `seen` was taken:
    /// no read then), `None` when it did not or when the last forced read
    /// is too recent.
    pub async fn reread(&self, seen: &Arc<S::Value>, why: &str) -> Option<Arc<S::Value>> {
        let _one_at_a_time = self.reading.lock().await;
        {
            let mut schedule = self.schedule();
            if !Arc::ptr_eq(&schedule.current, seen) {
                return Some(Arc::clone(&schedule.current));
            }
            let now = Instant::now();
            if schedule
                .last_forced
                .is_some_and(|last| now.duration_since(last) < self.forced_interval)
            {
                tracing::debug!("{why}: a forced secret read ran recently; not reading again");
                return None;
            }
            schedule.last_forced = Some(now);
        }
        tracing::info!(
            secret_id = %self.source.secret_id(),
            "{why}: reading the secret again in case it was rotated"
        );
        let after = self.read().await;
        (!Arc::ptr_eq(&after, seen)).then_some(after)
    }

    fn schedule(&self) -> MutexGuard<'_, Schedule<S::Value>> {
        self.schedule.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the secret and keeps what the source answers. Call with
    /// `reading` held.
    async fn read(&self) -> Arc<S::Value> {
        let current = self.cached();
        let next = match self.source.reload(&current).await {
            Some(value) => Arc::new(value),
            None => current,
        };
        let mut schedule = self.schedule();
        schedule.current = Arc::clone(&next);
        schedule.next_read = Instant::now() + self.ttl;
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A secret whose version is set by the test; the value is "built" as
    /// `version:hunter2-…`, reloaded only when the version changed.
    struct Versioned {
        version: AtomicU64,
        reads: AtomicU64,
    }

    impl Reload for Versioned {
        type Value = (u64, String);

        fn secret_id(&self) -> &str {
            "relay"
        }

        async fn reload(&self, current: &(u64, String)) -> Option<(u64, String)> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let version = self.version.load(Ordering::SeqCst);
            (version != current.0).then(|| (version, format!("{version}:hunter2-secret")))
        }
    }

    fn reloading(ttl: Duration, forced: Duration) -> Reloading<Versioned> {
        let source = Versioned {
            version: AtomicU64::new(1),
            reads: AtomicU64::new(0),
        };
        Reloading::new(source, (1, "1:hunter2-secret".into()), ttl, forced)
    }

    fn reads(r: &Reloading<Versioned>) -> u64 {
        r.source().reads.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn the_ttl_decides_when_the_secret_is_read_again() {
        let r = reloading(Duration::from_secs(3600), Duration::ZERO);
        let first = r.current().await;
        r.source().version.store(2, Ordering::SeqCst);
        assert!(
            Arc::ptr_eq(&r.current().await, &first),
            "cached within the TTL"
        );
        assert_eq!(reads(&r), 0);

        let r = reloading(Duration::ZERO, Duration::ZERO);
        let first = r.current().await;
        assert!(Arc::ptr_eq(&r.current().await, &first), "unchanged: kept");
        r.source().version.store(2, Ordering::SeqCst);
        assert_eq!(r.current().await.0, 2);
        assert_eq!(reads(&r), 3);
    }

    #[tokio::test]
    async fn forced_reads_are_rate_limited_and_answer_only_a_change() {
        let r = reloading(Duration::from_secs(3600), Duration::from_secs(3600));
        let seen = r.cached();
        assert!(r.reread(&seen, "refused").await.is_none(), "unchanged");
        assert_eq!(reads(&r), 1);
        r.source().version.store(2, Ordering::SeqCst);
        assert!(r.reread(&seen, "refused").await.is_none(), "rate-limited");
        assert_eq!(reads(&r), 1);

        let r = reloading(Duration::from_secs(3600), Duration::ZERO);
        let seen = r.cached();
        r.source().version.store(2, Ordering::SeqCst);
        let fresh = r.reread(&seen, "refused").await.unwrap();
        assert_eq!(fresh.0, 2);
        assert!(Arc::ptr_eq(&r.cached(), &fresh));
        // A caller holding the old value gets the new one without a read.
        let again = r.reread(&seen, "refused").await.unwrap();
        assert!(Arc::ptr_eq(&again, &fresh));
        assert_eq!(reads(&r), 1);
    }

    #[test]
    fn debug_never_shows_the_value() {
        let r = reloading(Duration::ZERO, Duration::ZERO);
        let debug = format!("{r:?}");
        assert!(debug.contains("relay"));
        assert!(!debug.contains("hunter2"));
    }
}
