//! The one retry policy for Duo calls.
//!
//! Duo answers a rate limit with 429 / 42901 and no `Retry-After` header, so
//! the client backs off exponentially with jitter, as Duo's official clients
//! do (1 s doubling to 32 s, plus up to 1 s of jitter). Server errors and
//! transport failures are retried only for requests that are safe to repeat;
//! other 4xx never are. The total time spent sleeping is capped by `budget` so
//! a serverless caller can give up early and re-queue the work instead of
//! sleeping through its invocation.

use std::time::Duration;

/// Whether a request may be sent again after a failure whose effect is
/// unknown (5xx, timeout, dropped connection). A 429 is always safe to retry:
/// Duo did not act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Reads, deletes and "set these fields" modifications.
    Safe,
    /// Creates and anything Duo might apply twice, or where a retry could
    /// only repeat a permanent refusal (e.g. the 50001 object limit).
    Unsafe,
}

/// Backoff and budget for retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included. `1` disables retries.
    pub max_attempts: u32,
    /// The first backoff; doubled after each retry.
    pub initial_backoff: Duration,
    /// The largest single backoff.
    pub max_backoff: Duration,
    /// Up to this much random extra delay is added to each backoff so that
    /// many workers do not retry in lock-step.
    pub max_jitter: Duration,
    /// The most time to spend sleeping between attempts, all retries
    /// together. A retry whose backoff would exceed it is not made and the
    /// last error is returned instead.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    /// Duo's official clients' schedule: 1, 2, 4, 8, 16, 32 s (+ ≤1 s jitter),
    /// seven attempts in about 70 s.
    fn default() -> Self {
        Self {
            max_attempts: 7,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(32),
            max_jitter: Duration::from_secs(1),
            budget: Duration::from_secs(75),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// A short budget for callers that answer a webhook within seconds and can
    /// re-queue what still fails: three attempts, at most ~3 s of sleeping.
    pub fn short(budget: Duration) -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(2),
            max_jitter: Duration::from_millis(250),
            budget,
        }
    }

    /// The backoff before retry number `retry` (1-based), without jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// The backoff with jitter drawn from `rng`.
    pub(crate) fn backoff_with_jitter(&self, retry: u32, rng: &mut fastrand::Rng) -> Duration {
        let jitter_ms = u64::try_from(self.max_jitter.as_millis()).unwrap_or(u64::MAX);
        let jitter = if jitter_ms == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(rng.u64(0..=jitter_ms))
        };
        self.backoff(retry).saturating_add(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_matches_official_clients() {
        let p = RetryPolicy::default();
        let secs: Vec<u64> = (1..=7).map(|r| p.backoff(r).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 32]);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let p = RetryPolicy::default();
        let mut rng = fastrand::Rng::with_seed(7);
        for retry in 1..=6 {
            for _ in 0..100 {
                let d = p.backoff_with_jitter(retry, &mut rng);
                assert!(d >= p.backoff(retry));
                assert!(d <= p.backoff(retry) + p.max_jitter);
            }
        }
    }

    #[test]
    fn huge_retry_numbers_saturate() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(u32::MAX), p.max_backoff);
    }
}
