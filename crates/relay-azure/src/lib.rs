//! The relay as an Azure Functions custom handler.
//!
//! The Functions host starts the `relay-azure` binary (host.json
//! `customHandler.description.defaultExecutablePath`) and, with
//! `enableForwardingHttpRequest: true`, forwards each HTTP-triggered request
//! to it unchanged on `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT`, at the same
//! path the caller used — `/api/okta`, with the default `routePrefix` `api` —
//! and returns the handler's response as it is. So the binary serves the
//! shared router under `/api`. (Host source: `DefaultHttpWorkerService.GetPathValue`
//! in Azure/azure-functions-host uses the original request's path when
//! forwarding is on; docs: learn.microsoft.com/azure/azure-functions/functions-custom-handlers,
//! "HTTP-only function".)
//!
//! This crate owns what is Azure's and nothing else: reading the Function
//! App's settings ([`settings`]: port, unresolved Key Vault references, where
//! the table is) and the idempotency store on Table Storage ([`table`],
//! SharedKey signing in [`shared_key`], managed-identity tokens). Verifying,
//! parsing, planning and applying are `relay-core`'s; HTTP is
//! `relay-server`'s.

mod identity;
pub mod settings;
pub mod shared_key;
pub mod table;

pub use settings::{TableSettings, check_key_vault_references, listen};
pub use table::TableStore;
