# Microsoft Entra ID as a source (README "Entra ID"): Graph change
# notifications on /entra, authenticated by the subscriptions'
# clientState, and the Graph reads they trigger, with the relay's own app
# registration (terraform/idp/entra makes one). The tenant and client ids
# are plain environment variables; the clientState and the client secret
# (or, entra_credential = "certificate", the certificate) are Secret Manager secrets the service reads at start (secrets.tf,
# run.tf), like every other secret. Whether they exist is decided by
# hook_sources containing "entra" and entra_credential, variables, so the values may be
# generated in the same apply.
#
# The Graph subscriptions (28-day lifetime) are created and renewed by the
# scheduled catch-up with catch_up_source "entra" (catch_up.tf): its job
# gets ENTRA_NOTIFICATION_URL, the service's URL + /entra (or
# entra_notification_url). The service does not: its own URL in its own
# environment would be a dependency cycle. Without it, a
# `subscriptionRemoved` lifecycle notification is logged and the next
# scheduled run re-creates the subscription (README "Entra ID").

variable "entra_tenant_id" {
  description = "Entra ID tenant id (ENTRA_TENANT_ID; a GUID or a verified domain). Set when hook_sources includes \"entra\" (and only then): notifications carry no values, every one is read from Graph."
  type        = string
  default     = null

  validation {
    condition     = var.entra_tenant_id == null ? true : can(regex("^[A-Za-z0-9.-]+$", var.entra_tenant_id))
    error_message = "entra_tenant_id must be the tenant's GUID or a verified domain such as contoso.onmicrosoft.com."
  }
}

variable "entra_client_id" {
  description = "Client (application) id of the relay's app registration (ENTRA_CLIENT_ID). Set with entra_tenant_id."
  type        = string
  default     = null
}

variable "entra_client_secret" {
  description = "The app registration's client secret (ENTRA_CLIENT_SECRET); stored in Secret Manager. Set when hook_sources includes \"entra\" with entra_credential \"secret\", the default; may come from the same apply (terraform/idp/entra's client_secret). Not with entra_client_certificate."
  type        = string
  default     = null
  sensitive   = true
}

variable "entra_credential" {
  description = "How the relay proves itself to Microsoft Graph: \"secret\" (default; entra_client_secret → ENTRA_CLIENT_SECRET) or \"certificate\" (entra_client_certificate → ENTRA_CLIENT_CERTIFICATE, a signed client assertion per token request). A plain variable on purpose: it decides at plan time which secret exists, and a credential made in the same apply is unknown until then (deciding from the values fails with \"Invalid for_each argument\")."
  type        = string
  default     = "secret"
  nullable    = false

  validation {
    condition     = contains(["secret", "certificate"], var.entra_credential)
    error_message = "entra_credential must be \"secret\" (entra_client_secret) or \"certificate\" (entra_client_certificate)."
  }
}

variable "entra_client_certificate" {
  description = "Instead of entra_client_secret (with entra_credential = \"certificate\"; exactly one of the two): PEM text holding the app registration's certificate and its unencrypted RSA private key (PKCS#8 \"PRIVATE KEY\" or PKCS#1 \"RSA PRIVATE KEY\"), stored in Secret Manager and read by the service and the catch-up job from there (ENTRA_CLIENT_CERTIFICATE). The app registration must hold the certificate's public part (Entra admin center → App registrations → Certificates & secrets). Set when hook_sources includes \"entra\" and entra_credential is \"certificate\"; may come from the same apply."
  type        = string
  default     = null
  sensitive   = true
}

variable "entra_client_state" {
  description = "The clientState of the relay's Graph subscriptions (ENTRA_CLIENT_STATE; during a rotation \"new,old\"); stored in Secret Manager. Set when hook_sources includes \"entra\" (and only then)."
  type        = string
  default     = null
  sensitive   = true
}

variable "entra_notification_url" {
  description = "Where the relay's Graph subscriptions deliver (ENTRA_NOTIFICATION_URL; the scheduled catch-up creates and renews them there): an https URL that reaches this relay's /entra route, for a custom domain or a gateway in front of the Cloud Run service. null (default) = the service URL + /entra (output entra_notification_url). A subscription is found again by this exact URL: changing it makes the next run create new ones (delete the old ones in Graph)."
  type        = string
  default     = null

  validation {
    condition     = var.entra_notification_url == null ? true : can(regex("^https://[^/\\s?#]+(/\\S*)?$", var.entra_notification_url))
    error_message = "entra_notification_url must be an https URL (Graph delivers only to https), e.g. https://relay.example.com/entra."
  }
}

variable "entra_audit_log" {
  description = "Also poll Entra ID's directory audit log for MFA resets (Admin/User deleted security info) on every scheduled catch-up run: ENTRA_AUDIT_LOG = \"true\" on the catch-up job. Only with catch_up_enabled and catch_up_source \"entra\". Needs the AuditLog.Read.All permission (terraform/idp/entra with audit_log_enabled = true): without it every poll is refused and the run fails. An MFA reset reaches Duo within the catch_up_schedule interval plus Entra's own audit-log latency. Default false."
  type        = bool
  default     = false
  nullable    = false
}

locals {
  entra_enabled = contains(var.hook_sources, "entra")

  # The URL the subscriptions deliver to (the same string in the output and
  # in every run: Graph's subscriptions are matched on it).
  entra_notification_url = coalesce(var.entra_notification_url, "${local.service_url}/entra")

  # The scheduled catch-up's Entra settings (catch_up.tf), keyed on
  # variables only.
  catch_up_entra_env = local.catch_up_source == "entra" ? merge(
    { ENTRA_NOTIFICATION_URL = local.entra_notification_url },
    var.entra_audit_log ? { ENTRA_AUDIT_LOG = "true" } : {},
  ) : {}

  # Plain variables, keyed on the variable above; their values (the client
  # id of an app registration made in the same apply) may be unknown.
  entra_env = local.entra_enabled ? {
    ENTRA_TENANT_ID = var.entra_tenant_id
    ENTRA_CLIENT_ID = var.entra_client_id
  } : {}

  # The Graph credential (entra_credential): the environment variable it
  # is stored as, decided by that plain variable alone (plan time), and
  # whether the chosen value is given and the other one is not (these read
  # the values, which may be unknown until apply: only preconditions use
  # them, and Terraform checks those at apply then).
  entra_credential_env   = var.entra_credential == "certificate" ? "ENTRA_CLIENT_CERTIFICATE" : "ENTRA_CLIENT_SECRET"
  entra_credential_given = var.entra_credential == "certificate" ? var.entra_client_certificate != null : var.entra_client_secret != null
  entra_credential_alone = var.entra_credential == "certificate" ? var.entra_client_secret == null : var.entra_client_certificate == null

  # The certificate's shape: what relay-core's Certificate::from_pem reads,
  # a CERTIFICATE block and an RSA key it can use unencrypted (an EC or an
  # encrypted key is refused at start). Checked by a precondition on this
  # bool, not by a validation of the variable: Terraform's message for a
  # failed validation quotes the value, even of a sensitive variable of the
  # root module (seen with Terraform 1.11); this one shows none.
  entra_certificate_shape_ok = var.entra_client_certificate == null ? true : (strcontains(var.entra_client_certificate, "-----BEGIN CERTIFICATE-----") && strcontains(var.entra_client_certificate, "PRIVATE KEY-----") && !strcontains(var.entra_client_certificate, "ENCRYPTED PRIVATE KEY") && !strcontains(var.entra_client_certificate, "EC PRIVATE KEY"))

  # A catch-up of Entra ID needs the app registration and the clientState
  # (the subscriptions it creates carry it), and its credential.
  entra_catch_up_ready = local.entra_enabled && var.entra_tenant_id != null && var.entra_client_id != null && local.entra_credential_given && var.entra_client_state != null

  # The alerts' words for a catch-up of Entra ID (catch_up.tf).
  entra_denied  = "a Graph 401/403 means the app registration lacks a permission (User.Read.All, Group.Read.All; AuditLog.Read.All for the audit poll) or its client secret expired (terraform/idp/entra rotates it: apply here again after it) or its certificate did (or is not the one registered on the app)"
  entra_delayed = "Changes Graph did not notify (a disabled or deleted user, a group change) wait that long, and so do MFA resets from the audit log; a run that fails also leaves the subscriptions unrenewed (Graph drops them at expiry, 28 days after the last renewal)."
}
