# ---------------------------------------------------------------------------
# Where it runs
# ---------------------------------------------------------------------------

variable "location" {
  description = "Azure region for every resource, e.g. westeurope or eastus2 (one that offers Linux Consumption Function Apps)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+[a-z0-9]*$", var.location))
    error_message = "location must be an Azure region name such as westeurope or eastus2 (lowercase, no spaces)."
  }
}

variable "resource_group_name" {
  description = "An existing resource group to deploy into; null (default) creates one named <name>-rg in location."
  type        = string
  default     = null

  validation {
    condition     = var.resource_group_name == null ? true : can(regex("^[-\\w.()]{1,89}[-\\w()]$", var.resource_group_name))
    error_message = "resource_group_name must be 1-90 letters, digits, underscores, hyphens, periods or parentheses, not ending with a period."
  }
}

variable "name" {
  description = "Prefix of every resource name (resource group, Function App, plan, identity, workspace, alerts); the storage account and Key Vault take a shortened form plus a random suffix."
  type        = string
  default     = "idp-duo-relay"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "package_zip_path" {
  description = "The built Function App zip: crates/relay-azure/package.sh writes target/azure-function-app.zip. Uploaded to a private blob the app runs from (WEBSITE_RUN_FROM_PACKAGE); a new build is a new blob and restarts the app on the next apply."
  type        = string

  validation {
    condition     = endswith(var.package_zip_path, ".zip") && fileexists(var.package_zip_path)
    error_message = "package_zip_path must be an existing .zip file: build it first with crates/relay-azure/package.sh (it writes target/azure-function-app.zip); a relative path is taken from the directory terraform runs in."
  }
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
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
  description = "Duo Admin API integration key (DUO_IKEY); not secret, set as a plain app setting."
  type        = string

  validation {
    condition     = can(regex("^DI[A-Z0-9]{18}$", var.duo_ikey))
    error_message = "duo_ikey must be the Admin API integration key: DI followed by 18 uppercase letters or digits."
  }
}

variable "duo_skey" {
  description = "Duo Admin API secret key (DUO_SKEY); stored in Key Vault, the app setting is a Key Vault reference."
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
  description = "Value Okta sends in okta_auth_header on every event hook delivery (OKTA_AUTH_SECRET; during a rotation \"new,old\"). Stored in Key Vault. Set when hook_sources includes \"okta\" (and only then)."
  type        = string
  default     = null
  sensitive   = true
}

variable "auth0_auth_secret" {
  description = "Token Auth0 sends (Event Streams bearer token / Log Streams authorization token) (AUTH0_AUTH_SECRET; during a rotation \"new,old\"). Stored in Key Vault. Set when hook_sources includes \"auth0\" (and only then)."
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

variable "webhook_signing_secrets" {
  description = "Optional Standard Webhooks secrets (WEBHOOK_SIGNING_SECRETS: whsec_…, comma-separated for a rotation). When set, every delivery must also carry a valid signature. Stored in Key Vault. Whether it is set must be known when planning (a variable or a data source, not a value generated in the same apply): it decides whether the secret exists."
  type        = string
  default     = null
  sensitive   = true
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
  description = "Okta API token, SSWS, read-only admin is enough (OKTA_API_TOKEN); stored in Key Vault. Whether it is set must be known when planning (a variable or a data source, not a value generated in the same apply): it decides whether the secret exists."
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
  description = "Auth0 Management API M2M client secret (AUTH0_CLIENT_SECRET); stored in Key Vault. Whether it is set must be known when planning (a variable or a data source, not a value generated in the same apply): it decides whether the secret exists."
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
  description = "Queue mode (durable delivery): create the Storage Queue and its poison queue, give the app's identity access to them, set RELAY_MODE=queue (the IdP gets 200 once an event is queued; the queue_worker function applies it with retries and dead-letters what fails), alert on poison messages, and run the app on one instance (app_scale_limit = 1, overriding max_instances) so events apply one at a time."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------
# Function App and storage
# ---------------------------------------------------------------------------

variable "max_instances" {
  description = "Most instances the Consumption plan may scale the app out to (site_config.app_scale_limit); bounds the concurrency against Duo's Admin API rate limits. Sync mode only: queue mode runs one instance."
  type        = number
  default     = 10

  validation {
    condition     = var.max_instances >= 1 && var.max_instances <= 200 && floor(var.max_instances) == var.max_instances
    error_message = "max_instances must be a whole number from 1 to 200 (the Linux Consumption plan's limit)."
  }
}

variable "storage_replication_type" {
  description = "Replication of the storage account (host state, the package blob, the idempotency table and the queues). LRS is enough: every record expires within 7 days and the package is rebuilt from source; ZRS where the region offers it survives a zone outage."
  type        = string
  default     = "LRS"

  validation {
    condition     = contains(["LRS", "ZRS", "GRS", "RAGRS", "GZRS", "RAGZRS"], var.storage_replication_type)
    error_message = "storage_replication_type must be one of LRS, ZRS, GRS, RAGRS, GZRS, RAGZRS."
  }
}

variable "shared_access_key_enabled" {
  description = "Keep the storage account's shared keys enabled. The Function App never uses them (host storage, package, table and queues all go through its managed identity); they are on by default only so Terraform can upload the package blob with the provider's defaults. Set false to disable them: the azurerm provider then needs storage_use_azuread = true, and this module gives the identity running Terraform Storage Blob Data Contributor on the package container."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------
# Logs and alerts
# ---------------------------------------------------------------------------

variable "log_retention_days" {
  description = "Days the Log Analytics workspace (and so Application Insights, which stores there) keeps the relay's logs."
  type        = number
  default     = 30

  validation {
    condition     = contains([30, 60, 90, 120, 180, 270, 365, 550, 730], var.log_retention_days)
    error_message = "log_retention_days must be one of 30, 60, 90, 120, 180, 270, 365, 550 or 730 (the values Application Insights accepts)."
  }
}

variable "alert_email" {
  description = "Email address the alerts notify (one action group with an email receiver); null = alerts fire in Azure Monitor without notifying anyone."
  type        = string
  default     = null

  validation {
    condition     = var.alert_email == null ? true : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alert_email))
    error_message = "alert_email must be an email address such as oncall@example.com."
  }
}

variable "action_group_ids" {
  description = "More Azure Monitor action group ids every alert notifies, besides the alert_email action group."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "duo_throttled_alert_threshold" {
  description = "Duo 429 answers (sum of the summary lines' duo_throttled) per 5 minutes that, in 3 windows in a row, fire the duo-throttled alert. A few are normal during bursts: the relay backs off."
  type        = number
  default     = 5
  nullable    = false

  validation {
    condition     = var.duo_throttled_alert_threshold >= 1
    error_message = "duo_throttled_alert_threshold must be at least 1."
  }
}

variable "role_propagation_wait" {
  description = "How long the first apply waits after creating role assignments before using them: the deployer's (Key Vault secrets, package upload) before Terraform writes, the app identity's before the Function App starts. Azure documents up to 10 minutes; if a secret write still fails with 403 ForbiddenByRbac, apply again."
  type        = string
  default     = "120s"
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]+[sm]$", var.role_propagation_wait))
    error_message = "role_propagation_wait must be a duration such as 120s or 5m."
  }
}

variable "duo_rate_per_minute" {
  description = "Duo Admin API calls a minute the relay may spend in all: Duo's budget is per account (about 300 modifications and 300 reads a minute, as Duo staff quoted it), while each instance paces itself. Each instance that can apply events at once gets its share as DUO_RATE_PER_MINUTE (README \"One Duo pace\"): in queue mode the whole budget (one instance), in sync mode the budget divided by max_instances (the reconcile timer runs in the same instances; never below 6)."
  type        = number
  default     = 600
  nullable    = false

  validation {
    condition     = var.duo_rate_per_minute >= 6 && var.duo_rate_per_minute <= 1000000 && floor(var.duo_rate_per_minute) == var.duo_rate_per_minute
    error_message = "duo_rate_per_minute must be a whole number of calls a minute from 6 to 1000000."
  }
}
