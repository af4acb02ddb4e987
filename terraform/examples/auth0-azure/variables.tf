# --- Where it runs -----------------------------------------------------------

variable "name" {
  description = "Prefix of every resource name (and of the Auth0 streams)."
  type        = string
  default     = "idp-duo-relay"
}

variable "subscription_id" {
  description = "Azure subscription to deploy into. null: taken from ARM_SUBSCRIPTION_ID."
  type        = string
  default     = null
}

variable "location" {
  description = "Azure region, e.g. westeurope (one that offers the Function App plan the module uses)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+[a-z0-9]*$", var.location))
    error_message = "location must be an Azure region name such as westeurope or eastus2 (lowercase, no spaces)."
  }
}

variable "package_zip_path" {
  description = "The built Function App: crates/relay-azure/package.sh writes target/azure-function-app.zip."
  type        = string
  default     = "../../../target/azure-function-app.zip"
}

variable "tags" {
  description = "Tags added to every Azure resource."
  type        = map(string)
  default     = {}
}

# --- Duo Admin API (Duo Admin Panel → Applications → Admin API) ---------------

variable "duo_api_host" {
  description = "API hostname of the Admin API application, e.g. api-1234abcd.duosecurity.com."
  type        = string
}

variable "duo_ikey" {
  description = "Integration key of the Admin API application (DI…, 20 characters)."
  type        = string
}

variable "duo_skey" {
  description = "Secret key of the Admin API application. Stored in Key Vault, never in a plain app setting."
  type        = string
  sensitive   = true
}

# --- Auth0 ------------------------------------------------------------------------

variable "auth0_domain" {
  description = "The tenant's canonical domain, e.g. acme.us.auth0.com (not a custom domain)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]*[a-z0-9]$", var.auth0_domain))
    error_message = "auth0_domain must be a bare host name such as acme.us.auth0.com (no https://, no path)."
  }
}

variable "auth0_client_id" {
  description = "Client id of the machine-to-machine application Terraform uses (Management API scopes for event and log streams). null: taken from AUTH0_CLIENT_ID."
  type        = string
  default     = null
}

variable "auth0_client_secret" {
  description = "Its client secret. null: taken from AUTH0_CLIENT_SECRET."
  type        = string
  default     = null
  sensitive   = true
}

variable "register_hook" {
  description = "Create the Auth0 Event Stream and Log Stream. false: register them by hand with the auth0_events_url, auth0_logs_url and hook_secret outputs (the Auth0 provider is still configured, see README)."
  type        = bool
  default     = true
}

variable "auth0_event_stream_enabled" {
  description = "Create the Event Stream (user.created, user.updated, user.deleted → /auth0)."
  type        = bool
  default     = true
}

variable "auth0_log_stream_enabled" {
  description = "Create the Log Stream (Management API and user-deletion logs → /auth0/logs): role changes, role members and MFA resets only arrive this way."
  type        = bool
  default     = true
}

variable "relay_auth0_client_id" {
  description = "Optional: a separate machine-to-machine application for the relay itself (read:users, read:roles), to look up role names and profiles. null: no lookups."
  type        = string
  default     = null
}

variable "relay_auth0_client_secret" {
  description = "Its client secret (stored in Key Vault)."
  type        = string
  default     = null
  sensitive   = true
}

# --- Hook secret rotation (README: "Rotate the hook secret") -------------------

variable "hook_rotation" {
  description = "Change this (1 → 2 → …) to generate a new hook secret."
  type        = number
  default     = 1
}

variable "previous_hook_secret" {
  description = "During a rotation only: the secret being replaced, so the relay accepts both until Auth0 sends the new one. Set it from `terraform output -raw hook_secret` before changing hook_rotation, and back to null afterwards."
  type        = string
  default     = null
  sensitive   = true
}

# --- Behaviour -------------------------------------------------------------------

variable "deprovision_action" {
  description = "What a deleted Auth0 user becomes in Duo: delete or disable."
  type        = string
  default     = "delete"
}

variable "group_filter" {
  description = "Optional regex: only matching Auth0 roles are synced to Duo."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Retention of the Log Analytics workspace behind Application Insights, in days."
  type        = number
  default     = 30
}

variable "alert_email" {
  description = "Optional address the alerts notify."
  type        = string
  default     = null
}

variable "queue_enabled" {
  description = "Queue mode (durable delivery): the HTTP function enqueues each event into a Storage queue and answers at once; the queue_worker function applies them with retries; failures land in the poison queue with their reason (relay-azure dlq list|show|replay). false = sync mode (apply inside the request)."
  type        = bool
  default     = false
}

variable "reconcile_schedule" {
  description = "Scheduled reconcile (README \"Reconcile\"): when to converge Duo with the IdP, as an NCRONTAB expression with seconds, in UTC, e.g. \"0 0 * * * *\" (hourly). Needs relay_auth0_client_id and relay_auth0_client_secret. null (default): no schedule."
  type        = string
  default     = null
}

variable "catch_up_enabled" {
  description = "Scheduled catch-up (README \"Catch-up\"): read the Auth0 tenant logs from a checkpoint and apply what the hook missed, with alarms when a run fails or the lag passes catch_up_lag_alarm_seconds. Needs relay_auth0_client_id and relay_auth0_client_secret (scope read:logs). false (default): off."
  type        = bool
  default     = false
  nullable    = false
}

variable "catch_up_schedule" {
  description = "When catch-up runs: an NCRONTAB expression with seconds, in UTC (default \"0 */15 * * * *\"). null: the module's default."
  type        = string
  default     = null
}

variable "catch_up_window" {
  description = "How far back the first catch-up run reads (RELAY_CATCH_UP_WINDOW), e.g. \"24h\". null: the module's default (24h)."
  type        = string
  default     = null
}

variable "catch_up_lag_alarm_seconds" {
  description = "Alarm when catch-up has not read the log to its end for longer than this many seconds. null: the module's default (3600)."
  type        = number
  default     = null
}

variable "user_sync" {
  description = "Who and what is synced, passed to the module as is: attribute mapping (username_attribute, …), scope_groups, exclude_groups / exclude_usernames / exclude_directory_synced, phone_attribute, … — the fields and the relay variables each sets are in the module's user_sync variable and the README (\"Attribute mapping\"). Empty: today's defaults."
  type        = any
  default     = {}
}
