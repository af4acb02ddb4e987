# --- Where it runs -----------------------------------------------------------

variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "idp-duo-relay"
}

variable "region" {
  description = "AWS region to deploy into, e.g. us-east-1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+$", var.region))
    error_message = "region must be an AWS region name such as us-east-1 or eu-central-1."
  }
}

variable "lambda_zip_path" {
  description = "The built function: cargo lambda build --release --arm64 -p relay-aws --output-format zip writes target/lambda/bootstrap/bootstrap.zip."
  type        = string
  default     = "../../../target/lambda/bootstrap/bootstrap.zip"
}

variable "tags" {
  description = "Tags added to every AWS resource."
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
  description = "Secret key of the Admin API application. Stored in Secrets Manager, never in a plain environment variable."
  type        = string
  sensitive   = true
}

# --- Entra ID ----------------------------------------------------------------------

variable "entra_tenant_id" {
  description = "The Entra ID tenant whose users and groups are synced (ENTRA_TENANT_ID): terraform/idp/entra's tenant_id output."
  type        = string
}

variable "entra_client_id" {
  description = "The relay's app registration (ENTRA_CLIENT_ID): terraform/idp/entra's client_id output."
  type        = string
}

variable "entra_client_secret" {
  description = "The app registration's client secret (ENTRA_CLIENT_SECRET), stored in Secrets Manager: terraform/idp/entra's client_secret output (export TF_VAR_entra_client_secret=\"$(terraform -chdir=../../idp/entra output -raw client_secret)\"). After idp/entra rotates it, apply here again. null: entra_client_certificate instead (exactly one of the two)."
  type        = string
  default     = null
  sensitive   = true
}

variable "entra_client_certificate" {
  description = "Instead of entra_client_secret (exactly one of the two): PEM text holding the certificate registered on the app (Entra admin center → App registrations → Certificates & secrets → Certificates; terraform/idp/entra does not register one) and its unencrypted RSA private key, stored in Secrets Manager as ENTRA_CLIENT_CERTIFICATE (export TF_VAR_entra_client_certificate=\"$(cat relay.key relay.crt)\"). null (default): the client secret."
  type        = string
  default     = null
  sensitive   = true
}

# --- Behaviour -------------------------------------------------------------------

variable "deprovision_action" {
  description = "What a deleted Entra ID user becomes in Duo: delete or disable."
  type        = string
  default     = "delete"
}

variable "group_filter" {
  description = "Optional regex: only matching Entra ID groups are synced to Duo."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention of the function's log group, in days."
  type        = number
  default     = 30
}

variable "alert_email" {
  description = "Optional address the alarms (function errors, throttles) notify."
  type        = string
  default     = null
}

variable "queue_enabled" {
  description = "Queue mode (durable delivery): the function URL enqueues each event into an SQS FIFO queue (one message group per user) and answers at once; the same function, triggered by SQS, applies them with retries; failures land in the dead-letter queue with their reason (bootstrap dlq list|show|replay). false = sync mode (apply inside the request)."
  type        = bool
  default     = false
}

variable "reconcile_schedule" {
  description = "Scheduled reconcile (README \"Reconcile\"): when to converge Duo with Entra ID (every user and group read from Graph), as an EventBridge Scheduler expression in UTC, e.g. \"rate(1 day)\" or \"cron(0 3 * * ? *)\". null (default): no schedule."
  type        = string
  default     = null
}

variable "catch_up_enabled" {
  description = "Scheduled catch-up from Microsoft Graph (README \"Catch-up\", \"Entra ID\"): each run creates or renews the relay's Graph subscriptions (they expire 28 days after the last renewal: without runs, notifications stop), applies what the notifications missed from the users/groups delta queries, and with entra_audit_log polls the audit log for MFA resets; alarms when a run fails or the lag passes catch_up_lag_alarm_seconds. true (default). false: run `idp-duo-relay entra subscribe` yourself at least every 28 days (output entra_subscribe)."
  type        = bool
  default     = true
  nullable    = false
}

variable "catch_up_schedule" {
  description = "When catch-up runs: an EventBridge Scheduler expression in UTC (default \"rate(15 minutes)\", every 15 minutes; an MFA reset in Entra reaches Duo within this interval plus Entra's audit-log latency). null: the module's default."
  type        = string
  default     = null
}

variable "catch_up_window" {
  description = "How far back the first catch-up run reads the audit log (RELAY_CATCH_UP_WINDOW), e.g. \"24h\". null: the module's default (24h)."
  type        = string
  default     = null
}

variable "catch_up_lag_alarm_seconds" {
  description = "Alarm when catch-up has not caught up with Graph for longer than this many seconds. null: the module's default (3600)."
  type        = number
  default     = null
}

variable "entra_audit_log" {
  description = "MFA resets from Entra ID: every scheduled catch-up run also polls the directory audit log (Admin/User deleted security info → the user's Duo devices removed, the user kept). Set it together with terraform/idp/entra's audit_log_enabled = true, which grants the AuditLog.Read.All it needs (without it every poll is refused and the run fails). Needs catch_up_enabled. An MFA reset reaches Duo within catch_up_schedule's interval (default 15 minutes) plus Entra's own audit-log latency. Default false."
  type        = bool
  default     = false
  nullable    = false
}

variable "entra_notification_url" {
  description = "Where Graph delivers (ENTRA_NOTIFICATION_URL): an https URL reaching the relay's /entra route, for a custom domain or a gateway in front of the function URL. null (default): the function URL + /entra (set on the catch-up function only: the hook function's own URL in its own environment would be a cycle)."
  type        = string
  default     = null
}

variable "user_sync" {
  description = "Who and what is synced, passed to the module as is: attribute mapping (username_attribute, e.g. \"entra:onPremisesSamAccountName\"), scope_groups, exclude_groups / exclude_usernames / exclude_directory_synced, phone_attribute, … — the fields and the relay variables each sets are in the module's user_sync variable and the README (\"Attribute mapping\"). Empty: today's defaults."
  type        = any
  default     = {}
}
