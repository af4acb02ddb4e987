# Microsoft Entra ID as a source (README "Entra ID"): Graph change
# notifications on /entra, authenticated by the subscriptions'
# clientState, and the Graph reads they trigger, with the relay's own app
# registration (terraform/idp/entra makes one). The tenant and client ids
# are plain environment variables of the function; the clientState and the
# client secret are keys of the Secrets Manager secret (main.tf), which
# relay-aws reads them from (crates/relay-aws/src/secrets.rs
# SECRET_VARIABLES: set in the plain environment, they would be refused).
# The plain ones are keyed on hook_sources containing "entra", a variable,
# so the client id may come from an app registration made in the same
# apply without hiding the rest of the environment from the plan.

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
  description = "The app registration's client secret; stored in the secret as ENTRA_CLIENT_SECRET. Set when hook_sources includes \"entra\" (unless existing_secret_arn holds it); may come from the same apply (terraform/idp/entra's client_secret)."
  type        = string
  default     = null
  sensitive   = true
}

variable "entra_client_state" {
  description = "The clientState of the relay's Graph subscriptions (during a rotation \"new,old\"); stored in the secret as ENTRA_CLIENT_STATE. Set when hook_sources includes \"entra\" (unless existing_secret_arn holds it)."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.entra_client_state == null || can([for s in split(",", var.entra_client_state) : regex("^[\\x20-\\x7e]{16,128}$", trimspace(s))])
    error_message = "entra_client_state must be 16-128 printable ASCII characters (the relay refuses shorter, Graph allows at most 128; each comma-separated value during a rotation)."
  }
}

locals {
  entra_enabled = var.hook_sources == null ? false : contains(var.hook_sources, "entra")

  environment_entra = local.entra_enabled ? {
    ENTRA_TENANT_ID = var.entra_tenant_id
    ENTRA_CLIENT_ID = var.entra_client_id
  } : {}
}
