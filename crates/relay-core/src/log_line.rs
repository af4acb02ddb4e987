//! The relay's summary log lines, named once: each line's `message` and
//! its field names. The writers (relay-core's [`crate::report`], queue and
//! catch-up) and the readers (relay-server's metrics, the EMF documents and
//! the Terraform contract built from them) use these constants, so a field
//! cannot be renamed on one side only. On-call queries, log-based metrics
//! and alerts depend on the names: they are stable.
//!
//! The writers pass them to `tracing` as constant field names
//! (`{ event::OUTCOME } = …`; the `tracing` crate docs: "Constant
//! expressions can also be used as field names … enclosed in curly
//! braces").
//!
//! Each line is declared once with [`log_line!`]: its `MESSAGE`, one
//! constant per field and `FIELDS`, every field in the order written.
//!
//! This module imports nothing from the crate (lowest layer).

/// Declares one line: a module with `MESSAGE`, a constant per field and
/// `FIELDS` (all of them, in order), so the list cannot miss a field.
macro_rules! log_line {
    (
        $(#[$doc:meta])*
        $line:ident = $message:literal {
            $( $(#[$field_doc:meta])* $name:ident = $field:literal, )+
        }
    ) => {
        $(#[$doc])*
        pub mod $line {
            /// The line's `message`.
            pub const MESSAGE: &str = $message;
            $(
                $(#[$field_doc])*
                pub const $name: &str = $field;
            )+
            /// Every field, in the order the line writes them.
            pub const FIELDS: &[&str] = &[$($name),+];
        }
    };
}

log_line! {
    /// The per-event summary line (one per IdP event; the README's "The
    /// per-event log line"), written by [`crate::report`].
    event = "event" {
        EVENT_ID = "event_id",
        SOURCE = "source",
        EVENT_TYPE = "event_type",
        SUBJECT = "subject",
        /// The operations' names, comma-separated.
        OPERATIONS = "operations",
        /// One of [`crate::report::OUTCOMES`].
        OUTCOME = "outcome",
        DETAIL = "detail",
        DUO_CALLS = "duo_calls",
        DUO_THROTTLED = "duo_throttled",
        DURATION_MS = "duration_ms",
    }
}

log_line! {
    /// The line queue mode writes when a message goes to dead letters.
    dead_letter = "dead_letter" {
        EVENT_ID = "event_id",
        SOURCE = "source",
        EVENT_TYPE = "event_type",
        SUBJECT = "subject",
        REASON = "reason",
        ATTEMPTS = "attempts",
    }
}

log_line! {
    /// The summary line of a catch-up run (the README's "Catch-up"; the
    /// catch-up lag alarms read `CHECKPOINT_LAG_S`).
    catch_up = "catch_up" {
        SOURCE = "source",
        STATUS = "status",
        DRY_RUN = "dry_run",
        RECORDS = "records",
        NEW = "new",
        DUPLICATES = "duplicates",
        FAILED = "failed",
        IGNORED = "ignored",
        PAGES = "pages",
        IDP_CALLS = "idp_calls",
        DUO_CALLS = "duo_calls",
        CHECKPOINT_LAG_S = "checkpoint_lag_s",
        CURSOR_FALLBACK = "cursor_fallback",
        ERROR = "error",
    }
}
