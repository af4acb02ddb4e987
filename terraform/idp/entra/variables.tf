variable "display_name" {
  description = "Display name of the relay's app registration (and its service principal) in Entra ID."
  type        = string
  default     = "idp-duo-relay"

  validation {
    condition     = length(trimspace(var.display_name)) > 0 && length(var.display_name) <= 120
    error_message = "display_name must be 1-120 characters."
  }
}

variable "audit_log_enabled" {
  description = "Also grant AuditLog.Read.All, which the MFA-reset poll of Entra's audit log needs (the relay modules' entra_audit_log on the scheduled catch-up, or `idp-duo-relay entra audit`). Off by default: least privilege for a relay that only follows users and groups."
  type        = bool
  default     = false
  nullable    = false
}

variable "client_secret_rotation_days" {
  description = "Days after which the next apply replaces the relay's client secret (time_rotating): the new secret is created, handed to the relay's secret store, and the old one deleted, in one apply."
  type        = number
  default     = 90
  nullable    = false

  validation {
    condition     = var.client_secret_rotation_days >= 1 && var.client_secret_rotation_days <= 365 && floor(var.client_secret_rotation_days) == var.client_secret_rotation_days
    error_message = "client_secret_rotation_days must be a whole number of days from 1 to 365."
  }
}

variable "client_secret_grace_days" {
  description = "Days the client secret stays valid after its rotation date: the window in which someone must run terraform apply (which rotates it) before Entra ID refuses the old secret and the relay can no longer read Graph. Its end date is the rotation date plus this."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = var.client_secret_grace_days >= 1 && var.client_secret_grace_days <= 365 && floor(var.client_secret_grace_days) == var.client_secret_grace_days
    error_message = "client_secret_grace_days must be a whole number of days from 1 to 365."
  }
}
