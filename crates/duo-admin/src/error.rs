//! One error type for everything a Duo call can end in.

use std::fmt;

/// What Duo said when it refused a request: the HTTP status, and the Duo error
/// code and messages when the body was Duo's `{"stat":"FAIL",…}` envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuoFailure {
    pub status: u16,
    pub code: Option<u32>,
    pub message: String,
    /// `message_detail`, which for 40002 names the offending parameter.
    pub detail: Option<String>,
}

impl fmt::Display for DuoFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(code) = self.code {
            write!(f, ", Duo code {code}")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

/// Why a Duo call failed. Variants carry Duo's code and message, never a key,
/// a signature or a request body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DuoError {
    /// 404 / 40401: the user, group or device does not exist.
    #[error("Duo: not found ({0})")]
    NotFound(DuoFailure),
    /// 400 / 40002 and other 400s: a parameter is invalid — which is also how
    /// Duo reports a duplicate username or alias (`detail` names it).
    #[error("Duo: invalid parameter ({0})")]
    InvalidParameter(DuoFailure),
    /// 401 / 40101-40103: wrong integration key, bad signature, or a `Date`
    /// too far from Duo's clock.
    #[error(
        "Duo: authentication failed ({0}); check DUO_IKEY, DUO_SKEY, DUO_API_HOST and the clock"
    )]
    Unauthorized(DuoFailure),
    /// 403: the Admin API application lacks a permission (grant).
    #[error("Duo: forbidden ({0}); the Admin API application lacks a permission")]
    Forbidden(DuoFailure),
    /// 429 / 42901, still refused when the retry budget ran out.
    #[error("Duo: rate limited after {attempts} attempt(s) ({failure})")]
    RateLimited { failure: DuoFailure, attempts: u32 },
    /// 5xx. 50001 is also how Duo reports a one-to-many limit (e.g. 100 groups
    /// per user) being exceeded.
    #[error("Duo: server error ({0})")]
    Server(DuoFailure),
    /// Any other non-success answer (405, 409, 3xx, …).
    #[error("Duo: unexpected answer ({0})")]
    Http(DuoFailure),
    /// No answer: connection refused, TLS failure, timeout.
    #[error("Duo: transport error ({kind}): {message}")]
    Transport {
        kind: TransportKind,
        message: String,
    },
    /// An answer that is not Duo's envelope (truncated, not JSON, wrong shape).
    #[error("Duo: malformed response (HTTP {status}): {reason}")]
    Decode { status: u16, reason: String },
    /// The request could not be built (caller input), so nothing was sent.
    #[error("Duo: invalid request: {0}")]
    InvalidRequest(String),
    /// The client configuration is unusable.
    #[error("Duo: invalid configuration: {0}")]
    Config(String),
}

/// What kind of transport failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    Timeout,
    Connect,
    Other,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Other => "io",
        })
    }
}

impl DuoError {
    /// Builds the error for a refused request from its status and envelope.
    /// The Duo code decides when present (its first three digits are the
    /// HTTP status it stands for); the HTTP status otherwise.
    pub fn from_failure(failure: DuoFailure) -> Self {
        let class = failure.code.map_or(failure.status, |code| {
            u16::try_from(code / 100).unwrap_or(failure.status)
        });
        match class {
            404 => Self::NotFound(failure),
            400 => Self::InvalidParameter(failure),
            401 => Self::Unauthorized(failure),
            403 => Self::Forbidden(failure),
            429 => Self::RateLimited {
                failure,
                attempts: 1,
            },
            500..=599 => Self::Server(failure),
            _ => Self::Http(failure),
        }
    }

    /// Duo's answer, when there was one.
    pub fn failure(&self) -> Option<&DuoFailure> {
        match self {
            Self::NotFound(f)
            | Self::InvalidParameter(f)
            | Self::Unauthorized(f)
            | Self::Forbidden(f)
            | Self::Server(f)
            | Self::Http(f)
            | Self::RateLimited { failure: f, .. } => Some(f),
            _ => None,
        }
    }

    /// Duo's error code (e.g. 40002), when it gave one.
    pub fn code(&self) -> Option<u32> {
        self.failure().and_then(|f| f.code)
    }

    /// True when the same request may succeed later without anyone changing
    /// anything: rate limits, server errors, transport trouble and garbled
    /// answers. A caller that re-queues work uses this to tell transient from
    /// permanent failures.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Server(_)
                | Self::Transport { .. }
                | Self::Decode { .. }
        )
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16, code: Option<u32>) -> DuoFailure {
        DuoFailure {
            status,
            code,
            message: "m".into(),
            detail: None,
        }
    }

    #[test]
    fn code_decides_over_status() {
        assert!(matches!(
            DuoError::from_failure(failure(200, Some(40401))),
            DuoError::NotFound(_)
        ));
        assert!(matches!(
            DuoError::from_failure(failure(400, Some(40002))),
            DuoError::InvalidParameter(_)
        ));
        assert!(matches!(
            DuoError::from_failure(failure(401, Some(40103))),
            DuoError::Unauthorized(_)
        ));
        assert!(matches!(
            DuoError::from_failure(failure(429, Some(42901))),
            DuoError::RateLimited { .. }
        ));
        assert!(matches!(
            DuoError::from_failure(failure(500, Some(50001))),
            DuoError::Server(_)
        ));
        assert!(matches!(
            DuoError::from_failure(failure(403, None)),
            DuoError::Forbidden(_)
        ));
        assert!(matches!(
            DuoError::from_failure(failure(502, None)),
            DuoError::Server(_)
        ));
        assert!(matches!(
            DuoError::from_failure(failure(405, Some(40501))),
            DuoError::Http(_)
        ));
    }

    #[test]
    fn transient_classification() {
        assert!(DuoError::from_failure(failure(429, None)).is_transient());
        assert!(DuoError::from_failure(failure(503, None)).is_transient());
        assert!(!DuoError::from_failure(failure(400, Some(40002))).is_transient());
        assert!(!DuoError::from_failure(failure(404, Some(40401))).is_transient());
        assert!(!DuoError::from_failure(failure(403, None)).is_transient());
    }

    #[test]
    fn display_names_code_and_detail() {
        let e = DuoError::from_failure(DuoFailure {
            status: 400,
            code: Some(40002),
            message: "Invalid request parameters".into(),
            detail: Some("username".into()),
        });
        assert_eq!(
            e.to_string(),
            "Duo: invalid parameter (HTTP 400, Duo code 40002: Invalid request parameters (username))"
        );
        assert_eq!(e.code(), Some(40002));
    }
}
