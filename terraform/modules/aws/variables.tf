# Inputs shared by modules/aws, modules/azure and modules/gcp come first
# (same names, same meaning); the AWS-only ones follow.

variable "name" {
  description = "Prefix of every resource name (function, role, table, secret, log group, topic, queues)."
  type        = string
  default     = "idp-duo-relay"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9-]{3,32}$", var.name))
    error_message = "name must be 3 to 32 characters: lowercase letters, digits and hyphens."
  }
}

variable "duo_api_host" {
  description = "Duo Admin API host name, e.g. api-1234abcd.duosecurity.com (Duo Admin Panel → Applications → Admin API). Set as DUO_API_HOST."
  type        = string

  validation {
    condition     = can(regex("^api-[a-z0-9]+\\.duosecurity\\.com$", var.duo_api_host))
    error_message = "duo_api_host must look like api-1234abcd.duosecurity.com (Duo Admin Panel → Applications → Admin API)."
  }
}

variable "duo_ikey" {
  description = "Duo Admin API integration key (DI followed by 18 letters or digits). Not secret: set as DUO_IKEY in the function's environment."
  type        = string

  validation {
    condition     = can(regex("^DI[A-Z0-9]{18}$", var.duo_ikey))
    error_message = "duo_ikey must be the Admin API integration key: DI followed by 18 capital letters or digits (Duo Admin Panel → Applications → Admin API)."
  }
}

variable "duo_skey" {
  description = "Duo Admin API secret key (40 characters). Stored in the Secrets Manager secret as DUO_SKEY, never in the environment. Required unless existing_secret_arn is set."
  type        = string
  default     = null
  sensitive   = true
}

variable "hook_sources" {
  description = "The IdPs that deliver to this relay: \"okta\", \"auth0\" and/or \"entra\", each with its hook secret (okta_auth_secret, auth0_auth_secret, entra_client_state with entra_client_secret or entra_client_certificate). Entra ID needs it (its plain settings are keyed on it). Optional here (all secrets go into one JSON secret, whose keys need not be known at plan time), checked against the secrets that are set when given; the gcp and azure modules require it. null: not checked."
  type        = set(string)
  default     = null

  validation {
    condition     = var.hook_sources == null || try(length(var.hook_sources) > 0 && alltrue([for s in var.hook_sources : contains(["okta", "auth0", "entra"], s)]), false)
    error_message = "hook_sources must name at least one IdP, each \"okta\", \"auth0\" or \"entra\" (e.g. [\"okta\"]), or be null."
  }
}

variable "okta_auth_secret" {
  description = "Value Okta sends in the OKTA_AUTH_HEADER header of each event hook delivery (at least 16 characters; \"new,old\" during a rotation). Stored in the secret as OKTA_AUTH_SECRET. Set this, auth0_auth_secret, or both."
  type        = string
  default     = null
  sensitive   = true
}

variable "auth0_auth_secret" {
  description = "Token Auth0 sends (Authorization: Bearer <token>) with each Event Stream or Log Stream delivery (at least 16 characters; \"new,old\" during a rotation). Stored in the secret as AUTH0_AUTH_SECRET. Set this, okta_auth_secret, or both."
  type        = string
  default     = null
  sensitive   = true
}

variable "okta_auth_header" {
  description = "Header Okta sends the secret in (the event hook's authentication field). Set as OKTA_AUTH_HEADER."
  type        = string
  default     = "Authorization"
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9-]+$", var.okta_auth_header))
    error_message = "okta_auth_header must be an HTTP header name: letters, digits and hyphens, e.g. Authorization or X-Okta-Secret."
  }
}

variable "okta_org_url" {
  description = "Optional: Okta org URL (https://acme.okta.com, not the -admin address), with okta_api_token, so the relay can fetch full profiles and group names. Set as OKTA_ORG_URL."
  type        = string
  default     = null

  validation {
    condition     = var.okta_org_url == null || (can(regex("^https://[A-Za-z0-9.-]+/?$", var.okta_org_url)) && !can(regex("-admin\\.", var.okta_org_url)))
    error_message = "okta_org_url must be the org URL like https://acme.okta.com (https, no path, not the -admin console address)."
  }
}

variable "okta_api_token" {
  description = "Optional: Okta API token (SSWS; a read-only admin is enough), with okta_org_url. Stored in the secret as OKTA_API_TOKEN."
  type        = string
  default     = null
  sensitive   = true
}

variable "auth0_domain" {
  description = "Optional: the Auth0 tenant's canonical domain (acme.us.auth0.com, no https://), with auth0_client_id and auth0_client_secret, for role names from the Management API. Set as AUTH0_DOMAIN."
  type        = string
  default     = null

  validation {
    condition     = var.auth0_domain == null || can(regex("^[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)+$", var.auth0_domain))
    error_message = "auth0_domain must be a bare domain like acme.us.auth0.com (no https://, no path)."
  }
}

variable "auth0_client_id" {
  description = "Optional: client id of the Auth0 machine-to-machine application (read:users, read:roles). Set as AUTH0_CLIENT_ID."
  type        = string
  default     = null

  validation {
    condition     = var.auth0_client_id == null || can(regex("^\\S+$", var.auth0_client_id))
    error_message = "auth0_client_id must not be empty or contain spaces; leave it null to run without Auth0 Management API lookups."
  }
}

variable "auth0_client_secret" {
  description = "Optional: client secret of that Auth0 application. Stored in the secret as AUTH0_CLIENT_SECRET."
  type        = string
  default     = null
  sensitive   = true
}

variable "deprovision_action" {
  description = "What a user deleted in the IdP becomes in Duo: delete or disable. Set as DEPROVISION_ACTION."
  type        = string
  default     = "delete"
  nullable    = false

  validation {
    condition     = contains(["delete", "disable"], var.deprovision_action)
    error_message = "deprovision_action must be delete or disable."
  }
}

variable "group_filter" {
  description = "Optional regular expression: only IdP groups/roles whose name matches are synced to Duo. Set as GROUP_FILTER."
  type        = string
  default     = null

  validation {
    condition     = var.group_filter == null ? true : length(trimspace(var.group_filter)) > 0
    error_message = "group_filter must not be empty; leave it null to sync every group."
  }
}

variable "log_retention_days" {
  description = "Days CloudWatch Logs keeps the function's log (0 = never expire)."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts: 0 (never expire), 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."
  }
}

variable "alert_email" {
  description = "Optional: e-mail address subscribed to the alarm topic (AWS sends a confirmation mail first; the subscription is pending until it is confirmed)."
  type        = string
  default     = null

  validation {
    condition     = var.alert_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alert_email))
    error_message = "alert_email must be one e-mail address, like oncall@example.com."
  }
}

variable "alarm_actions" {
  description = "More ARNs every alarm notifies (ALARM and OK) besides the module's own SNS topic, e.g. an existing on-call topic."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the relay's own metrics (embedded metric format in its log lines; sets RELAY_METRICS_NAMESPACE). Null = IdpDuoRelay/<name>, so two deployments in one account keep their metrics and alarms apart."
  type        = string
  default     = null

  validation {
    condition     = var.metrics_namespace == null ? true : (can(regex("^[^:][ -~]{0,254}$", var.metrics_namespace)) && !startswith(var.metrics_namespace, "AWS/"))
    error_message = "metrics_namespace must be 1-255 printable ASCII characters, not starting with ':' or 'AWS/'."
  }
}

variable "duo_throttled_alarm_threshold" {
  description = "Duo 429 answers (metric DuoThrottled) per 5 minutes that, in 3 periods in a row, raise the duo-throttled alarm. A few 429s are normal during bursts: the relay backs off."
  type        = number
  default     = 5
  nullable    = false

  validation {
    condition     = var.duo_throttled_alarm_threshold >= 1
    error_message = "duo_throttled_alarm_threshold must be at least 1."
  }
}

variable "queue_enabled" {
  description = "Durable delivery (queue mode): the function URL's requests only verify, parse and put events on an SQS FIFO queue (answering at once); the same function, invoked by the queue's event source mapping, applies them with retries, and what cannot be applied goes to a FIFO dead-letter queue with its reason (`bootstrap dlq list|show|replay`). Creates both queues and the mapping, grants the function the queue actions, alarms on dead letters, sets RELAY_MODE=queue, RELAY_QUEUE_URL and RELAY_DLQ_URL, and raises the function timeout to 60 s."
  type        = bool
  default     = false
  nullable    = false
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
  nullable    = false
}

# AWS only.

variable "queue_batch_size" {
  description = "Queue mode: messages per worker invocation (SQS FIFO event sources take at most 10)."
  type        = number
  default     = 10
  nullable    = false

  validation {
    condition     = var.queue_batch_size >= 1 && var.queue_batch_size <= 10 && floor(var.queue_batch_size) == var.queue_batch_size
    error_message = "queue_batch_size must be a whole number from 1 to 10 (the most a FIFO queue's event source takes)."
  }
}

variable "queue_max_concurrency" {
  description = "Queue mode: the most worker invocations at once (the event source mapping's maximum concurrency; Duo's Admin API rate limits are per account)."
  type        = number
  default     = 5
  nullable    = false

  validation {
    condition     = var.queue_max_concurrency >= 2 && var.queue_max_concurrency <= 1000 && floor(var.queue_max_concurrency) == var.queue_max_concurrency
    error_message = "queue_max_concurrency must be a whole number from 2 to 1000 (the range Lambda accepts)."
  }
}

variable "queue_max_attempts" {
  description = "Queue mode: attempts at an event before it is dead-lettered (RELAY_QUEUE_MAX_ATTEMPTS; retries back off from 2 s, doubling, up to 5 min). A permanent failure is dead-lettered at once."
  type        = number
  default     = 8
  nullable    = false

  validation {
    condition     = var.queue_max_attempts >= 1 && var.queue_max_attempts <= 100 && floor(var.queue_max_attempts) == var.queue_max_attempts
    error_message = "queue_max_attempts must be a whole number from 1 to 100."
  }
}

variable "queue_max_receive_count" {
  description = "Queue mode: SQS's own redrive to the dead-letter queue after this many receives — a backstop for a message the function never finishes (crash, timeout). Receives also count the waits behind a failed message of the same user, so keep it well above queue_max_attempts × queue_batch_size."
  type        = number
  default     = 100
  nullable    = false

  validation {
    condition     = var.queue_max_receive_count >= 10 && var.queue_max_receive_count <= 1000 && floor(var.queue_max_receive_count) == var.queue_max_receive_count
    error_message = "queue_max_receive_count must be a whole number from 10 to 1000."
  }
}

variable "lambda_zip_path" {
  description = "Path of the function's zip, built with `cargo lambda build --release --arm64 -p relay-aws --output-format zip` (→ target/lambda/bootstrap/bootstrap.zip at the repository root). A relative path is taken from the directory terraform runs in."
  type        = string

  validation {
    condition     = can(regex("\\.zip$", var.lambda_zip_path)) && fileexists(var.lambda_zip_path)
    error_message = "lambda_zip_path must name an existing .zip: build it first with `cargo lambda build --release --arm64 -p relay-aws --output-format zip` (→ target/lambda/bootstrap/bootstrap.zip)."
  }
}

variable "reserved_concurrency" {
  description = "Optional cap on concurrent executions of the function (reserved concurrency). Null leaves it on the account's unreserved pool: an account with the default quota of 10 cannot reserve any, and throttled deliveries are answered 429 (Okta retries only once)."
  type        = number
  default     = null

  validation {
    condition     = var.reserved_concurrency == null ? true : (floor(var.reserved_concurrency) == var.reserved_concurrency && var.reserved_concurrency >= 1)
    error_message = "reserved_concurrency must be a whole number of at least 1 (0 would stop the function), or null for no reservation."
  }
}

variable "existing_secret_arn" {
  description = "Optional: ARN of an existing Secrets Manager secret (a JSON object holding DUO_SKEY and OKTA_AUTH_SECRET and/or AUTH0_AUTH_SECRET, and optionally OKTA_API_TOKEN, AUTH0_CLIENT_SECRET, WEBHOOK_SIGNING_SECRETS). When set, the module creates no secret and ignores the secret variables."
  type        = string
  default     = null

  validation {
    condition     = var.existing_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.existing_secret_arn))
    error_message = "existing_secret_arn must be a Secrets Manager secret ARN, like arn:aws:secretsmanager:eu-west-1:123456789012:secret:idp-duo-relay-AbCdEf."
  }
}

variable "kms_key_arn" {
  description = "Optional: ARN of a customer-managed KMS key for the secret, the table, the queues, the log group, the alarm topic and the function's environment. Null uses the AWS-managed keys (and a small key of the module's own for the alarm topic). The key policy must let CloudWatch Logs (logs.<region>.amazonaws.com) and CloudWatch alarms (cloudwatch.amazonaws.com) use it; the function's role gets kms:Decrypt on it."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), not an alias."
  }
}

variable "webhook_signing_secrets" {
  description = "Optional: Standard Webhooks secrets (whsec_…, comma-separated during a rotation); when set, every delivery must also carry a valid signature. Stored in the secret as WEBHOOK_SIGNING_SECRETS."
  type        = string
  default     = null
  sensitive   = true
}

variable "secret_ttl_seconds" {
  description = "Seconds the function trusts a fetched secret before reading it again (RELAY_SECRET_TTL_SECS): how long a rotated secret takes to be picked up without a redeploy."
  type        = number
  default     = 300
  nullable    = false

  validation {
    condition     = var.secret_ttl_seconds >= 0 && floor(var.secret_ttl_seconds) == var.secret_ttl_seconds
    error_message = "secret_ttl_seconds must be a whole number of seconds, 0 or more."
  }
}

variable "secret_recovery_window_days" {
  description = "Days a destroyed secret can still be restored (0 deletes it at once, so the same name can be created again right away; otherwise 7 to 30)."
  type        = number
  default     = 7
  nullable    = false

  validation {
    condition     = var.secret_recovery_window_days == 0 || (var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30)
    error_message = "secret_recovery_window_days must be 0 or from 7 to 30."
  }
}

variable "queue_age_alarm_seconds" {
  description = "Queue mode: alarm when the oldest event in the queue has waited longer than this (seconds) to be applied."
  type        = number
  default     = 900

  validation {
    condition     = var.queue_age_alarm_seconds >= 60
    error_message = "queue_age_alarm_seconds must be at least 60."
  }
}

variable "duo_rate_per_minute" {
  description = "Duo Admin API calls a minute the relay may spend in all: Duo's budget is per account (about 300 modifications and 300 reads a minute, as Duo staff quoted it), while each instance paces itself. Each instance that can apply events at once gets its share as DUO_RATE_PER_MINUTE (README \"One Duo pace\"): in queue mode the budget divided by queue_max_concurrency, in sync mode by reserved_concurrency (the whole budget when unreserved: nothing bounds the instances then), one more for each of the scheduled reconcile and catch-up that runs (never below 6)."
  type        = number
  default     = 600
  nullable    = false

  validation {
    condition     = var.duo_rate_per_minute >= 6 && var.duo_rate_per_minute <= 1000000 && floor(var.duo_rate_per_minute) == var.duo_rate_per_minute
    error_message = "duo_rate_per_minute must be a whole number of calls a minute from 6 to 1000000."
  }
}
