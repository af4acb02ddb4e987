//! Workspace end-to-end tests live in `tests/*.rs` next to this crate; this
//! library is empty on purpose (shared helpers go here when they are needed
//! by more than one test file).
