//! The typestate between "a request arrived" and "we may read it".
//!
//! [`Verified`] can only be built inside this crate by the inbound
//! verification (`crate::verify`), and the parsers accept nothing else: an
//! unverified body cannot reach the business logic by construction.

use bytes::Bytes;

use crate::event::Source;

/// A delivery whose credentials (and signature, when configured) checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    source: Source,
    body: Bytes,
    /// `webhook-id` of a Standard Webhooks delivery, when one was verified.
    webhook_id: Option<String>,
}

impl Verified {
    /// Only `crate::verify` calls this.
    pub(crate) fn new(source: Source, body: Bytes, webhook_id: Option<String>) -> Self {
        Self {
            source,
            body,
            webhook_id,
        }
    }

    /// A delivery the operator recorded and hands to `idp-duo-relay replay`
    /// from a local file. It skips inbound authentication on purpose: the
    /// person running the command is the authority, not an HTTP header. The
    /// network path never calls this.
    pub fn trusted_local_file(source: Source, body: impl Into<Bytes>) -> Self {
        Self::new(source, body.into(), None)
    }

    pub fn source(&self) -> Source {
        self.source
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    pub fn webhook_id(&self) -> Option<&str> {
        self.webhook_id.as_deref()
    }

    /// For tests of later stages (parsers, planner) that start from a body
    /// known to be good. Not available outside tests of this crate.
    #[cfg(test)]
    pub(crate) fn for_tests(source: Source, body: impl Into<Bytes>) -> Self {
        Self::new(source, body.into(), None)
    }
}
