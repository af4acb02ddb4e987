# --- Where it runs -----------------------------------------------------------

variable "name" {
  description = "Prefix of every resource name (and the Okta hook's display name)."
  type        = string
  default     = "idp-duo-relay"
}

variable "project" {
  description = "GCP project id to deploy into."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))
    error_message = "project must be a GCP project id (6-30 lowercase letters, digits, hyphens), not its name or number."
  }
}

variable "region" {
  description = "Cloud Run region, e.g. europe-west1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a GCP region name such as us-central1 or europe-west1."
  }
}

variable "image" {
  description = "The relay-gcp container image, pushed to Artifact Registry: REGION-docker.pkg.dev/PROJECT/REPOSITORY/relay-gcp:TAG (a tag or @sha256 digest)."
  type        = string
}

variable "labels" {
  description = "Labels added to every GCP resource."
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
  description = "Secret key of the Admin API application. Stored in Secret Manager, never in a plain environment variable."
  type        = string
  sensitive   = true
}

# --- Okta ---------------------------------------------------------------------

variable "okta_org_url" {
  description = "Your Okta org, e.g. https://acme.okta.com (not the -admin address)."
  type        = string

  validation {
    condition     = can(regex("^https://[^./]+\\.[^/]+/?$", var.okta_org_url)) && !strcontains(var.okta_org_url, "-admin.")
    error_message = "okta_org_url must look like https://acme.okta.com (the org URL, not the -admin console address)."
  }
}

variable "okta_api_token" {
  description = "API token Terraform uses to create the event hook (an admin allowed to manage event hooks). null: the provider reads OKTA_API_TOKEN, or OAuth settings, from the environment."
  type        = string
  default     = null
  sensitive   = true
}

variable "register_hook" {
  description = "Create and verify the Okta event hook. false: register it by hand with the okta_hook_url and hook_secret outputs (the Okta provider is still configured, see README)."
  type        = bool
  default     = true
}

variable "okta_auth_header" {
  description = "Header Okta sends the secret in."
  type        = string
  default     = "Authorization"
}

variable "relay_okta_api_token" {
  description = "Optional read-only Okta API token for the relay itself, to fetch new profiles on user.account.update_profile (renames). null: such events are skipped with a log line. Better a different, read-only token than okta_api_token."
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
  description = "During a rotation only: the secret being replaced, so the relay accepts both until Okta sends the new one. Set it from `terraform output -raw hook_secret` before changing hook_rotation, and back to null afterwards."
  type        = string
  default     = null
  sensitive   = true
}

# --- Behaviour -------------------------------------------------------------------

variable "deprovision_action" {
  description = "What a deleted Okta user becomes in Duo: delete or disable."
  type        = string
  default     = "delete"
}

variable "group_filter" {
  description = "Optional regex: only matching Okta groups are synced to Duo."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Retention of the relay's logs, in days."
  type        = number
  default     = 30
}

variable "alert_email" {
  description = "Optional address the alert policy notifies."
  type        = string
  default     = null
}

variable "queue_enabled" {
  description = "Queue mode (durable delivery): the service publishes each event to Pub/Sub (ordering key per user) and answers at once; a push subscription with an OIDC token brings them back to /pubsub/push, applied with retries; failures land in the dead-letter topic with their reason (relay-gcp dlq list|show|replay). false = sync mode (apply inside the request)."
  type        = bool
  default     = false
}

variable "reconcile_schedule" {
  description = "Scheduled reconcile (README \"Reconcile\"): when to converge Duo with the IdP, as an unix-cron expression in UTC, e.g. \"0 * * * *\" (hourly). Needs relay_okta_api_token. null (default): no schedule."
  type        = string
  default     = null
}

variable "catch_up_enabled" {
  description = "Scheduled catch-up (README \"Catch-up\"): read the Okta System Log from a checkpoint and apply what the hook missed, with alarms when a run fails or the lag passes catch_up_lag_alarm_seconds. Needs relay_okta_api_token (scope okta.logs.read). false (default): off."
  type        = bool
  default     = false
  nullable    = false
}

variable "catch_up_schedule" {
  description = "When catch-up runs: a unix-cron expression in UTC (default \"*/15 * * * *\"). null: the module's default."
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
