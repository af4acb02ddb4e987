//! One Duo pace for the whole process: a token bucket shared by every task
//! that calls Duo, which slows down when Duo answers 429 and recovers after.
//!
//! Duo's Admin API budget is per account, and Duo sends no `Retry-After` and
//! no rate-limit headers (our reference notes §3.4), so the client cannot be
//! told its share; it can only keep under a configured pace and back off when
//! refused. Per-call exponential backoff alone made every worker sleep
//! 250–750 ms per 429 on its own, holding its slot, while the others kept
//! hitting the limit. Here a 429 instead cuts the shared rate (multiplicative
//! decrease: by half when nearly every recent call was refused, less when
//! the 429 is one among many answered calls; at most once per
//! [`DECREASE_WINDOW`], so a burst of 429s from calls sent before the cut
//! counts once), and the rate climbs
//! back linearly to the ceiling over [`RECOVERY`] (additive increase). A
//! retry after a 429 waits for its next token at the reduced rate, not for a
//! private backoff.
//!
//! Defaults come from the limits Duo staff quoted (modify 300/min, get one
//! object 300/min, get one page 200/min): a relay event is a lookup and a
//! write, so 600 calls a minute — half reads, half writes — stays within
//! both 300s; the burst of 30 lets a short spike through at once.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The fewest calls a minute a run of 429s can cut the pace to.
const FLOOR_PER_MINUTE: f64 = 6.0;
/// 429s within this long of the last cut do not cut again: they answer
/// calls sent before the cut took effect.
pub const DECREASE_WINDOW: Duration = Duration::from_secs(1);
/// How long a cut rate takes to climb back from the floor to the ceiling.
pub const RECOVERY: Duration = Duration::from_secs(30);

/// The pace: a ceiling and a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaceConfig {
    /// Calls a minute at most (`DUO_RATE_PER_MINUTE`).
    pub per_minute: f64,
    /// Calls that may go at once after a quiet spell (`DUO_RATE_BURST`).
    pub burst: f64,
}

impl Default for PaceConfig {
    /// Duo's published figures: see the module documentation.
    fn default() -> Self {
        Self {
            per_minute: 600.0,
            burst: 30.0,
        }
    }
}

#[derive(Debug)]
struct State {
    /// Calls a second allowed now (≤ the ceiling).
    rate: f64,
    /// Tokens in the bucket; negative when calls are reserved ahead.
    tokens: f64,
    updated: Instant,
    last_cut: Option<Instant>,
    cuts: u64,
    /// Calls sent and 429s seen in this window and the one before (each
    /// [`DECREASE_WINDOW`] long): how much of the traffic Duo refused.
    window: [(u64, u64); 2],
    window_start: Instant,
}

impl State {
    /// The share of recent calls Duo answered 429 (1 when none was sent).
    fn refused_share(&self) -> f64 {
        let (calls, refused) = self
            .window
            .iter()
            .fold((0, 0), |(c, r), (wc, wr)| (c + wc, r + wr));
        if calls == 0 {
            1.0
        } else {
            (refused as f64 / calls as f64).min(1.0)
        }
    }
}

/// The shared bucket. Cheap to call from many tasks: one short lock per call,
/// never held across an await.
#[derive(Debug)]
pub struct Pacer {
    ceiling: f64,
    burst: f64,
    state: Mutex<State>,
}

impl Pacer {
    pub fn new(config: PaceConfig) -> Self {
        let ceiling = (config.per_minute / 60.0).max(FLOOR_PER_MINUTE / 60.0);
        let burst = config.burst.max(1.0);
        Self {
            ceiling,
            burst,
            state: Mutex::new(State {
                rate: ceiling,
                tokens: burst,
                updated: Instant::now(),
                last_cut: None,
                cuts: 0,
                window: [(0, 0); 2],
                window_start: Instant::now(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Brings the bucket and the rate up to `now`.
    fn refill(&self, s: &mut State, now: Instant) {
        let elapsed = now.saturating_duration_since(s.updated).as_secs_f64();
        s.updated = now;
        s.tokens = (s.tokens + elapsed * s.rate).min(self.burst);
        let floor = FLOOR_PER_MINUTE / 60.0;
        s.rate =
            (s.rate + elapsed * (self.ceiling - floor) / RECOVERY.as_secs_f64()).min(self.ceiling);
        let age = now.saturating_duration_since(s.window_start);
        if age >= DECREASE_WINDOW {
            s.window = if age >= DECREASE_WINDOW * 2 {
                [(0, 0); 2]
            } else {
                [s.window[1], (0, 0)]
            };
            s.window_start = now;
        }
    }

    /// Takes the next call's token, unless it would be due later than
    /// `within`: answers how long to wait before sending, or `Err` with the
    /// wait that was too long (nothing taken).
    pub fn reserve_within(&self, within: Duration) -> Result<Duration, Duration> {
        let mut s = self.state();
        self.refill(&mut s, Instant::now());
        let wait = if s.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - s.tokens) / s.rate)
        };
        if wait > within {
            return Err(wait);
        }
        s.tokens -= 1.0;
        s.window[1].0 += 1;
        Ok(wait)
    }

    /// Waits until a token is free, without taking it: a queue worker calls
    /// this before it takes a message, so it never holds a subject while
    /// waiting for the pace.
    pub async fn ready(&self) {
        loop {
            let wait = {
                let mut s = self.state();
                self.refill(&mut s, Instant::now());
                if s.tokens >= 1.0 {
                    return;
                }
                Duration::from_secs_f64((1.0 - s.tokens) / s.rate)
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Duo answered 429: cut the rate (once per [`DECREASE_WINDOW`]) by up to
    /// half, in proportion to the share of recent calls refused, and drop
    /// any saved-up burst.
    pub fn throttled(&self) {
        let now = Instant::now();
        let mut s = self.state();
        self.refill(&mut s, now);
        s.window[1].1 += 1;
        if s.last_cut
            .is_some_and(|at| now.duration_since(at) < DECREASE_WINDOW)
        {
            return;
        }
        s.last_cut = Some(now);
        s.cuts += 1;
        // Halved when (nearly) everything is refused, as when the account's
        // budget is spent; a stray 429 among many answered calls trims the
        // rate only a little, so it does not starve the relay.
        let factor = 1.0 - 0.5 * s.refused_share();
        s.rate = (s.rate * factor).max(FLOOR_PER_MINUTE / 60.0);
        s.tokens = s.tokens.min(0.0);
    }

    /// Calls a minute allowed now.
    pub fn per_minute(&self) -> f64 {
        let mut s = self.state();
        self.refill(&mut s, Instant::now());
        s.rate * 60.0
    }

    /// How often a 429 has cut the rate.
    pub fn cuts(&self) -> u64 {
        self.state().cuts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let p = Pacer::new(PaceConfig {
            per_minute: 60.0,
            burst: 3.0,
        });
        for _ in 0..3 {
            assert_eq!(p.reserve_within(Duration::ZERO), Ok(Duration::ZERO));
        }
        // The 4th is due in about a second (1 a second), the 5th in two.
        let fourth = p.reserve_within(Duration::from_secs(5)).unwrap();
        assert!(fourth > Duration::from_millis(900) && fourth <= Duration::from_secs(1));
        let fifth = p.reserve_within(Duration::from_secs(5)).unwrap();
        assert!(fifth > Duration::from_millis(1900));
        // Not within half a second: refused, nothing taken.
        let refused = p.reserve_within(Duration::from_millis(500)).unwrap_err();
        assert!(refused > Duration::from_secs(2));
    }

    #[test]
    fn a_429_halves_the_rate_once_per_window_and_drops_the_burst() {
        let p = Pacer::new(PaceConfig {
            per_minute: 600.0,
            burst: 30.0,
        });
        p.throttled();
        p.throttled();
        p.throttled();
        assert_eq!(p.cuts(), 1);
        let rate = p.per_minute();
        assert!((300.0..301.0).contains(&rate), "{rate}");
        // No saved-up burst after a cut: the next call waits its turn.
        assert!(p.reserve_within(Duration::from_secs(1)).unwrap() > Duration::ZERO);
    }

    #[test]
    fn a_stray_429_among_many_answered_calls_trims_the_rate_a_little() {
        let p = Pacer::new(PaceConfig {
            per_minute: 6_000.0,
            burst: 100.0,
        });
        for _ in 0..99 {
            p.reserve_within(Duration::from_secs(1)).unwrap();
        }
        p.throttled();
        let rate = p.per_minute();
        assert!((5_969.0..5_980.0).contains(&rate), "{rate}");
    }

    #[test]
    fn the_rate_never_falls_below_the_floor_nor_climbs_past_the_ceiling() {
        let p = Pacer::new(PaceConfig {
            per_minute: 600.0,
            burst: 1.0,
        });
        {
            let mut s = p.state();
            s.rate = 0.01;
            s.last_cut = None;
        }
        p.throttled();
        assert!(p.per_minute() >= FLOOR_PER_MINUTE);
        {
            let mut s = p.state();
            s.updated = s
                .updated
                .checked_sub(RECOVERY * 2)
                .expect("an instant a minute ago");
        }
        assert!((p.per_minute() - 600.0).abs() < 1e-6);
    }
}
