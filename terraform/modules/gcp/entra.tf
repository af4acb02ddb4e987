# Microsoft Entra ID as a source (README "Entra ID"): Graph change
# notifications on /entra, authenticated by the subscriptions'
# clientState, and the Graph reads they trigger, with the relay's own app
# registration (terraform/idp/entra makes one). The tenant and client ids
# are plain environment variables; the clientState and the client secret
# are Secret Manager secrets the service reads at start (secrets.tf,
# run.tf), like every other secret. Whether they exist is decided by
# hook_sources containing "entra", a variable, so the values may be
# generated in the same apply.

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
  description = "The app registration's client secret (ENTRA_CLIENT_SECRET); stored in Secret Manager. Set when hook_sources includes \"entra\"; may come from the same apply (terraform/idp/entra's client_secret)."
  type        = string
  default     = null
  sensitive   = true
}

variable "entra_client_state" {
  description = "The clientState of the relay's Graph subscriptions (ENTRA_CLIENT_STATE; during a rotation \"new,old\"); stored in Secret Manager. Set when hook_sources includes \"entra\" (and only then)."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition = var.entra_client_state == null ? true : (
      length(split(",", var.entra_client_state)) <= 3 &&
      alltrue([for s in split(",", var.entra_client_state) : length(trimspace(s)) >= 16 && length(trimspace(s)) <= 128 && can(regex("^[ -~]+$", s))])
    )
    error_message = "entra_client_state must be 16-128 printable ASCII characters (the relay refuses shorter, Graph allows at most 128); for a rotation at most 3 comma-separated values."
  }
}

locals {
  entra_enabled = contains(var.hook_sources, "entra")

  # Plain variables, keyed on the variable above; their values (the client
  # id of an app registration made in the same apply) may be unknown.
  entra_env = local.entra_enabled ? {
    ENTRA_TENANT_ID = var.entra_tenant_id
    ENTRA_CLIENT_ID = var.entra_client_id
  } : {}
}
