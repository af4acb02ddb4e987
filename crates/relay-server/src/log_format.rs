//! `RELAY_LOG_FORMAT`, which both the subscriber ([`crate::logging`]) and
//! the EMF metrics ([`crate::metrics`], JSON lines only) read.

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (the default off a terminal and in the cloud).
    Json,
    /// Human-readable lines.
    Pretty,
}

impl LogFormat {
    /// `RELAY_LOG_FORMAT`: `json` or `pretty`; `None` when unset.
    pub fn parse(value: Option<&str>) -> Result<Option<Self>, String> {
        match value.map(str::trim) {
            None | Some("") => Ok(None),
            Some("json") => Ok(Some(Self::Json)),
            Some("pretty") => Ok(Some(Self::Pretty)),
            Some(_) => Err("RELAY_LOG_FORMAT: must be `json` or `pretty`".into()),
        }
    }
}
