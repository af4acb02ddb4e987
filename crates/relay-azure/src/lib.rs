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
//! the table and the queue are; [`key_vault`]: reading a reference the
//! platform did not resolve with the app's identity), the idempotency store on Table Storage
//! ([`table`], SharedKey signing in [`shared_key`], managed-identity tokens)
//! with the Duo group index beside it ([`groups`]), and queue mode
//! (`RELAY_MODE=queue`): the Storage queue the accept stage
//! puts events on and the poison queue of dead letters ([`queue`]), and the
//! queue-trigger worker ([`worker`]). Verifying, parsing, planning and
//! applying are `relay-core`'s; HTTP is `relay-server`'s.

pub mod catch_up;
pub mod groups;
mod identity;
pub mod key_vault;
pub mod queue;
pub mod reconcile;
pub mod settings;
pub mod shared_key;
pub mod table;
pub mod worker;

pub use groups::TableGroupIndex;
pub use key_vault::{KeyVaultReadError, Patience, resolve_key_vault_references};
pub use queue::{AzureEventQueue, PoisonQueue, StorageQueue};
pub use settings::{QueueSettings, TableSettings, check_key_vault_references, listen};
pub use table::TableStore;

/// The app settings `relay-azure` refuses to start without under the
/// Functions host, whatever else the Function App holds (each missing one
/// stops start-up with a message naming it). `DUO_SKEY` is normally a Key
/// Vault reference the platform resolves before the process starts.
/// `RELAY_TABLE_NAME` is not among them: it defaults to
/// [`settings::DEFAULT_TABLE_NAME`]. `tests/required_env.rs` checks this list
/// against the start-up code and writes it to
/// `terraform/modules/azure/required-env.json`, which the Terraform tests read.
pub const REQUIRED_ENV: &[&str] = &["DUO_API_HOST", "DUO_IKEY", "DUO_SKEY"];

/// At least one of these must be set as well (a source without its secret
/// answers 401): not a plain list, so not part of [`REQUIRED_ENV`].
pub const REQUIRED_ONE_OF_ENV: &[&str] = &[
    "OKTA_AUTH_SECRET",
    "AUTH0_AUTH_SECRET",
    "ENTRA_CLIENT_STATE",
];

/// Where the idempotency table is: one of these must be set.
/// `AZURE_STORAGE_TABLE_ENDPOINT` selects the managed identity (role *Storage
/// Table Data Contributor*); without it the table is reached with the account
/// key of the `AzureWebJobsStorage` connection string. A Function App whose
/// host storage is identity-based (`AzureWebJobsStorage__accountName`, no
/// connection string — what the Terraform module deploys) therefore needs
/// `AZURE_STORAGE_TABLE_ENDPOINT`.
pub const TABLE_ONE_OF_ENV: &[&str] = &["AZURE_STORAGE_TABLE_ENDPOINT", "AzureWebJobsStorage"];

/// Required too, but set by the platform, never by a deployment:
/// `FUNCTIONS_CUSTOMHANDLER_PORT` by the Functions host for its custom
/// handler (required once `FUNCTIONS_WORKER_RUNTIME` says the process runs
/// under the host), `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` by App Service
/// when the app has a managed identity (required with
/// `AZURE_STORAGE_TABLE_ENDPOINT`).
pub const PLATFORM_ENV: &[&str] = &[
    "FUNCTIONS_CUSTOMHANDLER_PORT",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
];
