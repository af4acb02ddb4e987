# ---------------------------------------------------------------------------
# Where it runs
# ---------------------------------------------------------------------------

variable "project" {
  description = "GCP project id that receives everything (Cloud Run service, Firestore database, secrets, logs, alerts)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))
    error_message = "project must be a project id (6-30 lowercase letters, digits and hyphens, starting with a letter), not its name or number."
  }
}

variable "region" {
  description = "Cloud Run region, e.g. europe-west1; also the location of the log bucket and (unless firestore_location is set) of the Firestore database."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a GCP region such as us-central1 or europe-west1 (not a zone such as europe-west1-b, nor a multi-region)."
  }
}

variable "image" {
  description = "Container image built from crates/relay-gcp/Dockerfile and pushed to Artifact Registry, e.g. europe-west1-docker.pkg.dev/PROJECT/REPO/relay-gcp@sha256:... (a digest pins exactly what runs; a tag works too)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+(:[A-Za-z0-9._-]+|@sha256:[a-f0-9]{64})?$", var.image))
    error_message = "image must be an image reference such as REGION-docker.pkg.dev/PROJECT/REPO/relay-gcp:TAG or ...@sha256:DIGEST."
  }
}

variable "name" {
  description = "Prefix of every resource name (service, service account, secrets, database, log bucket, topics)."
  type        = string
  default     = "idp-duo-relay"

  validation {
    # Cloud Run service names must also start with a letter and not end with a hyphen.
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "labels" {
  description = "Labels added to every resource that takes labels."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------
# Duo Admin API
# ---------------------------------------------------------------------------

variable "duo_api_host" {
  description = "Duo Admin API hostname (DUO_API_HOST)."
  type        = string

  validation {
    condition     = can(regex("^api-[a-z0-9]+\\.duosecurity\\.com$", var.duo_api_host))
    error_message = "duo_api_host must look like api-1234abcd.duosecurity.com (Duo Admin Panel → Applications → Admin API)."
  }
}

variable "duo_ikey" {
  description = "Duo Admin API integration key (DUO_IKEY); not secret, set as a plain environment variable."
  type        = string

  validation {
    condition     = can(regex("^DI[A-Z0-9]{18}$", var.duo_ikey))
    error_message = "duo_ikey must be the Admin API integration key: DI followed by 18 uppercase letters or digits."
  }
}

variable "duo_skey" {
  description = "Duo Admin API secret key (DUO_SKEY); stored in Secret Manager."
  type        = string
  sensitive   = true
}

# ---------------------------------------------------------------------------
# IdP side: the shared secrets the relay checks on every delivery
# ---------------------------------------------------------------------------

variable "hook_sources" {
  description = "The IdPs that deliver to this relay: \"okta\", \"auth0\" and/or \"entra\". Each gets its hook secret (okta_auth_secret → OKTA_AUTH_SECRET, auth0_auth_secret → AUTH0_AUTH_SECRET, entra_client_state → ENTRA_CLIENT_STATE, with entra_client_secret → ENTRA_CLIENT_SECRET or, entra_credential = \"certificate\", entra_client_certificate → ENTRA_CLIENT_CERTIFICATE) stored as a secret of its own. It decides at plan time which secrets exist, so their values may be generated in the same apply (random_password): never derived from the values themselves, which are unknown until then."
  type        = set(string)
  nullable    = false

  validation {
    condition     = length(var.hook_sources) > 0 && alltrue([for s in var.hook_sources : contains(["okta", "auth0", "entra"], s)])
    error_message = "hook_sources must name at least one IdP, each \"okta\", \"auth0\" or \"entra\" (e.g. [\"okta\"])."
  }
}

variable "okta_auth_secret" {
  description = "Value Okta sends in okta_auth_header on every event hook delivery (OKTA_AUTH_SECRET; during a rotation \"new,old\"). Stored in Secret Manager. Set when hook_sources includes \"okta\" (and only then)."
  type        = string
  default     = null
  sensitive   = true
}

variable "auth0_auth_secret" {
  description = "Token Auth0 sends (Event Streams bearer token / Log Streams authorization token) (AUTH0_AUTH_SECRET; during a rotation \"new,old\"). Stored in Secret Manager. Set when hook_sources includes \"auth0\" (and only then)."
  type        = string
  default     = null
  sensitive   = true
}

variable "okta_auth_header" {
  description = "Header Okta sends the secret in (OKTA_AUTH_HEADER)."
  type        = string
  default     = "Authorization"

  validation {
    condition     = can(regex("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", var.okta_auth_header))
    error_message = "okta_auth_header must be an HTTP header name such as Authorization or X-Okta-Secret."
  }
}

# ---------------------------------------------------------------------------
# Optional IdP API access (profile and group lookups)
# ---------------------------------------------------------------------------

variable "okta_org_url" {
  description = "Okta org URL, e.g. https://example.okta.com (OKTA_ORG_URL); with okta_api_token, lets the relay fetch new profiles on profile updates."
  type        = string
  default     = null

  validation {
    condition     = var.okta_org_url == null ? true : can(regex("^https://[A-Za-z0-9.-]+(:[0-9]+)?/?$", var.okta_org_url))
    error_message = "okta_org_url must be an https URL such as https://example.okta.com (no path)."
  }
}

variable "okta_api_token" {
  description = "Okta API token, SSWS, read-only admin is enough (OKTA_API_TOKEN); stored in Secret Manager. Whether it is set must be known when planning (a variable or a data source, not a value generated in the same apply): it decides whether the secret exists."
  type        = string
  default     = null
  sensitive   = true
}

variable "auth0_domain" {
  description = "Auth0 tenant domain, e.g. example.eu.auth0.com (AUTH0_DOMAIN); with the client id/secret, lets the relay read role names."
  type        = string
  default     = null

  validation {
    condition     = var.auth0_domain == null ? true : can(regex("^[A-Za-z0-9.-]+$", var.auth0_domain))
    error_message = "auth0_domain must be a hostname such as example.eu.auth0.com (no https://, no path)."
  }
}

variable "auth0_client_id" {
  description = "Auth0 Management API M2M client id (AUTH0_CLIENT_ID)."
  type        = string
  default     = null
}

variable "auth0_client_secret" {
  description = "Auth0 Management API M2M client secret (AUTH0_CLIENT_SECRET); stored in Secret Manager. Whether it is set must be known when planning (a variable or a data source, not a value generated in the same apply): it decides whether the secret exists."
  type        = string
  default     = null
  sensitive   = true
}

# ---------------------------------------------------------------------------
# Behaviour
# ---------------------------------------------------------------------------

variable "deprovision_action" {
  description = "What an IdP user deletion does in Duo (DEPROVISION_ACTION): delete or disable."
  type        = string
  default     = "delete"

  validation {
    condition     = contains(["delete", "disable"], var.deprovision_action)
    error_message = "deprovision_action must be delete or disable."
  }
}

variable "group_filter" {
  description = "Optional regex (GROUP_FILTER): only IdP groups/roles whose name matches are synced."
  type        = string
  default     = null
}

variable "queue_enabled" {
  description = "Queue mode (durable delivery): create the Pub/Sub events topic, the ordered push subscription to the service's /pubsub/push (OIDC token of a dedicated push service account), the dead-letter topic and its subscription, and set RELAY_MODE=queue: the IdP gets 200 once an event is published, and the push applies it with retries and backoff."
  type        = bool
  default     = false
}

variable "queue_max_attempts" {
  description = "Queue mode: deliveries of a failing event before the relay moves it to dead letters with the reason (RELAY_QUEUE_MAX_ATTEMPTS). Pub/Sub's own dead-letter policy is set two attempts later, as a backstop."
  type        = number
  default     = 10

  validation {
    condition     = var.queue_max_attempts >= 3 && var.queue_max_attempts <= 98 && floor(var.queue_max_attempts) == var.queue_max_attempts
    error_message = "queue_max_attempts must be a whole number from 3 to 98 (Pub/Sub allows 5 to 100 delivery attempts, and its policy is set two above)."
  }
}

# ---------------------------------------------------------------------------
# Cloud Run
# ---------------------------------------------------------------------------

variable "min_instances" {
  description = "Minimum Cloud Run instances. 0 scales to zero (a cold start of a few hundred ms on the first delivery after idling); 1 keeps one warm and is billed."
  type        = number
  default     = 0

  validation {
    condition     = var.min_instances >= 0 && var.min_instances <= 100 && floor(var.min_instances) == var.min_instances
    error_message = "min_instances must be a whole number from 0 to 100."
  }
}

variable "max_instances" {
  description = "Maximum Cloud Run instances; bounds the concurrency against Duo's Admin API rate limits (each instance serves up to 80 requests at once)."
  type        = number
  default     = 10

  validation {
    condition     = var.max_instances >= 1 && var.max_instances <= 1000 && floor(var.max_instances) == var.max_instances
    error_message = "max_instances must be a whole number from 1 to 1000."
  }
}

variable "invoker_iam_disabled" {
  description = "false (default): grant roles/run.invoker to allUsers on this service. true: switch the service's invoker check off instead, for organisations whose policy (iam.allowedPolicyMemberDomains) refuses allUsers bindings. Either way the relay authenticates every delivery itself."
  type        = bool
  default     = false
}

variable "deletion_protection" {
  description = "Protect the Cloud Run service and the Firestore database from terraform destroy. The database only holds idempotency records that expire after 7 days, so it is off by default."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------
# Firestore (idempotency store)
# ---------------------------------------------------------------------------

variable "firestore_database" {
  description = "Firestore database id for the idempotency records (RELAY_FIRESTORE_DATABASE). Default: a database named after `name`, so the module never touches a project's (default) database."
  type        = string
  default     = null

  validation {
    condition     = var.firestore_database == null ? true : (var.firestore_database == "(default)" || can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$", var.firestore_database)))
    error_message = "firestore_database must be (default) or 4-63 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "create_firestore_database" {
  description = "Create the Firestore database (native mode). Set false to use an existing native-mode database named firestore_database (e.g. a (default) database that already exists); the TTL policy is still added to its relay-idempotency collection group."
  type        = bool
  default     = true
}

variable "firestore_location" {
  description = "Firestore location (a region such as europe-west1, or a multi-region such as eur3/nam5). Default: region."
  type        = string
  default     = null

  validation {
    condition     = var.firestore_location == null ? true : can(regex("^[a-z]+(-[a-z]+[0-9]+|[0-9]+)$", var.firestore_location))
    error_message = "firestore_location must be a Firestore location such as europe-west1, nam5 or eur3."
  }
}

# ---------------------------------------------------------------------------
# Logs and alerts
# ---------------------------------------------------------------------------

variable "log_retention_days" {
  description = "Days the service's logs are kept in the dedicated log bucket this module creates (1-3650). The project's _Default bucket also receives them and keeps its own retention (30 days unless changed project-wide)."
  type        = number
  default     = 30

  validation {
    condition     = var.log_retention_days >= 1 && var.log_retention_days <= 3650 && floor(var.log_retention_days) == var.log_retention_days
    error_message = "log_retention_days must be a whole number of days from 1 to 3650 (Cloud Logging's limits for a log bucket)."
  }
}

variable "alert_email" {
  description = "Email address the alert policies notify (one email notification channel); null = incidents are only shown in Cloud Monitoring."
  type        = string
  default     = null

  validation {
    condition     = var.alert_email == null ? true : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alert_email))
    error_message = "alert_email must be an email address such as oncall@example.com."
  }
}

variable "notification_channels" {
  description = "More Cloud Monitoring notification channel ids (projects/P/notificationChannels/N: PagerDuty, Slack, …) every alert policy notifies, besides the alert_email channel."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "duo_throttled_alert_threshold" {
  description = "Events that met Duo 429s (metric <name>-duo-throttled-events) per 5 minutes that, sustained for 15 minutes, open the duo-throttled incident. A few are normal during bursts: the relay backs off."
  type        = number
  default     = 5
  nullable    = false

  validation {
    condition     = var.duo_throttled_alert_threshold >= 1
    error_message = "duo_throttled_alert_threshold must be at least 1."
  }
}

variable "log_metric_wait" {
  description = "How long the first apply waits between creating the log-based metrics and creating the alert policies on them (Cloud Monitoring refuses a policy on a metric it has not learnt of yet; Google says this can take up to 10 minutes, usually it is about a minute). Paid once, alongside the service's creation; raise it if an apply still fails with \"Cannot find metric(s)\" (or simply apply again)."
  type        = string
  default     = "120s"
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]+[sm]$", var.log_metric_wait))
    error_message = "log_metric_wait must be a duration such as 120s or 5m."
  }
}

variable "duo_rate_per_minute" {
  description = "Duo Admin API calls a minute the relay may spend in all: Duo's budget is per account (about 300 modifications and 300 reads a minute, as Duo staff quoted it), while each instance paces itself. Each instance that can apply events at once gets its share as DUO_RATE_PER_MINUTE (README \"One Duo pace\"): the budget divided by max_instances, one more for each of the scheduled reconcile and catch-up jobs that runs (never below 6)."
  type        = number
  default     = 600
  nullable    = false

  validation {
    condition     = var.duo_rate_per_minute >= 6 && var.duo_rate_per_minute <= 1000000 && floor(var.duo_rate_per_minute) == var.duo_rate_per_minute
    error_message = "duo_rate_per_minute must be a whole number of calls a minute from 6 to 1000000."
  }
}
