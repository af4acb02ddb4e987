//! Fault injection: latency, 429s and 500s, applied after signature
//! verification and before the tenant is touched (a faulted call changes
//! nothing); lost answers, applied to a write after the tenant changed (the
//! change stays, the client sees a failure); and Duo's undocumented choices
//! a test may switch (a DELETE of something absent answered 404).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Faults to inject into every signed Duo call (not `/_sim/` calls).
///
/// JSON form (`POST /_sim/faults`): `{"rate_429":0.5,"rate_500":0,"latency_ms":20,"seed":1,
/// "rate_lost_answer":0.1,"rate_truncated":0,"absent_delete_not_found":true}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Probability (0..=1) of answering 429 / 42901.
    pub rate_429: f64,
    /// Probability (0..=1) of answering 500 / 50001.
    pub rate_500: f64,
    /// Added before every answer.
    #[serde(rename = "latency_ms", with = "millis")]
    pub latency: Duration,
    /// Seed for the dice, so a faulty run can be replayed.
    pub seed: Option<u64>,
    /// Probability (0..=1) that a write (`POST`, `DELETE`) that succeeded is
    /// answered 500 / 50001 anyway: the change was made, the answer was lost
    /// (a proxy or load balancer failing after Duo acted).
    pub rate_lost_answer: f64,
    /// Probability (0..=1) that a write that succeeded is answered 200 with
    /// its JSON cut short: the change was made, the answer is unreadable.
    pub rate_truncated: f64,
    /// Answer 404 / 40401 to a `DELETE` of a user, group, membership or
    /// phone/token association that does not exist. Off by default: Duo documents "if the user is already deleted,
    /// does nothing" (a success), but says nothing of groups, and other
    /// stand-ins answer 404; a client must treat both as "gone".
    pub absent_delete_not_found: bool,
}

/// What the dice decided for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Injected {
    None,
    TooManyRequests,
    ServerError,
}

/// What the dice decided for a write that succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterWrite {
    Answer,
    LoseAnswer,
    Truncate,
}

/// The active faults and their random source.
#[derive(Debug)]
pub(crate) struct FaultState {
    faults: Faults,
    rng: fastrand::Rng,
}

impl Default for FaultState {
    fn default() -> Self {
        Self {
            faults: Faults::default(),
            rng: fastrand::Rng::new(),
        }
    }
}

impl FaultState {
    pub(crate) fn set(&mut self, faults: Faults) {
        self.rng = faults
            .seed
            .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
        self.faults = faults;
    }

    pub(crate) fn latency(&self) -> Duration {
        self.faults.latency
    }

    pub(crate) fn absent_delete_not_found(&self) -> bool {
        self.faults.absent_delete_not_found
    }

    /// Rolls for a write that succeeded: its answer lost (500) first, then
    /// cut short.
    pub(crate) fn roll_after_write(&mut self) -> AfterWrite {
        if self.faults.rate_lost_answer > 0.0 && self.rng.f64() < self.faults.rate_lost_answer {
            AfterWrite::LoseAnswer
        } else if self.faults.rate_truncated > 0.0 && self.rng.f64() < self.faults.rate_truncated {
            AfterWrite::Truncate
        } else {
            AfterWrite::Answer
        }
    }

    /// Rolls for one call: 429 is checked first, then 500.
    pub(crate) fn roll(&mut self) -> Injected {
        if self.faults.rate_429 > 0.0 && self.rng.f64() < self.faults.rate_429 {
            Injected::TooManyRequests
        } else if self.faults.rate_500 > 0.0 && self.rng.f64() < self.faults.rate_500 {
            Injected::ServerError
        } else {
            Injected::None
        }
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_seeds() {
        let mut st = FaultState::default();
        assert_eq!(st.roll(), Injected::None);
        st.set(Faults {
            rate_429: 1.0,
            ..Faults::default()
        });
        assert_eq!(st.roll(), Injected::TooManyRequests);
        st.set(Faults {
            rate_500: 1.0,
            ..Faults::default()
        });
        assert_eq!(st.roll(), Injected::ServerError);
        let half = Faults {
            rate_429: 0.5,
            seed: Some(42),
            ..Faults::default()
        };
        st.set(half.clone());
        let a: Vec<_> = (0..32).map(|_| st.roll()).collect();
        st.set(half);
        let b: Vec<_> = (0..32).map(|_| st.roll()).collect();
        assert_eq!(a, b);
        assert!(a.contains(&Injected::None) && a.contains(&Injected::TooManyRequests));
    }

    #[test]
    fn after_write_rolls() {
        let mut st = FaultState::default();
        assert_eq!(st.roll_after_write(), AfterWrite::Answer);
        st.set(Faults {
            rate_lost_answer: 1.0,
            ..Faults::default()
        });
        assert_eq!(st.roll_after_write(), AfterWrite::LoseAnswer);
        st.set(Faults {
            rate_truncated: 1.0,
            absent_delete_not_found: true,
            ..Faults::default()
        });
        assert_eq!(st.roll_after_write(), AfterWrite::Truncate);
        assert!(st.absent_delete_not_found());
        let f: Faults =
            serde_json::from_str(r#"{"rate_lost_answer":0.5,"absent_delete_not_found":true}"#)
                .expect("json");
        assert_eq!((f.rate_lost_answer, f.absent_delete_not_found), (0.5, true));
    }

    #[test]
    fn json_form_uses_milliseconds() {
        let f: Faults = serde_json::from_str(r#"{"rate_429":0.25,"latency_ms":15}"#).expect("json");
        assert_eq!(
            (f.rate_429, f.latency, f.seed),
            (0.25, Duration::from_millis(15), None)
        );
        let back = serde_json::to_value(&f).expect("json");
        assert_eq!(back["latency_ms"], 15);
    }
}
