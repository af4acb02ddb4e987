//! Okta: the event hook (`hook`, `POST /okta` and its verification `GET`)
//! and the Users/Groups API (`api`).

pub mod api;
pub mod hook;
