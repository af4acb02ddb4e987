variable "okta_enabled" {
  description = "Register the relay as an Okta event hook. false: create nothing here and register the hook by hand (terraform/README.md)."
  type        = bool
  default     = true
}

variable "okta_verify" {
  description = "Also verify the hook (Okta sends its one-time challenge to the relay, which must already be deployed and hold the secret). false: press Verify in the Okta admin console later."
  type        = bool
  default     = true
}

variable "okta_hook_name" {
  description = "The event hook's display name in Okta."
  type        = string
  default     = "idp-duo-relay"

  validation {
    condition     = length(trimspace(var.okta_hook_name)) > 0
    error_message = "okta_hook_name must not be empty."
  }
}

variable "okta_hook_url" {
  description = "The relay's Okta endpoint: the cloud module's okta_hook_url output (https://…/okta, or https://…/api/okta on Azure)."
  type        = string
  default     = null

  validation {
    condition     = var.okta_hook_url == null || can(regex("^https://[^\\s/]+(/[^\\s]*)?/okta$", var.okta_hook_url))
    error_message = "okta_hook_url must be the relay's https URL ending in /okta (the cloud module's okta_hook_url output); Okta only calls https endpoints."
  }
}

variable "okta_auth_header" {
  description = "The header Okta sends the secret in; the relay reads the same name from OKTA_AUTH_HEADER."
  type        = string
  default     = "Authorization"

  validation {
    condition     = can(regex("^[A-Za-z0-9-]+$", var.okta_auth_header))
    error_message = "okta_auth_header must be an HTTP header name (letters, digits, hyphens), e.g. Authorization."
  }
}

variable "okta_auth_secret" {
  description = "The value Okta sends in okta_auth_header: ONE secret, the same one the relay holds in OKTA_AUTH_SECRET (during a rotation the relay holds \"new,old\" and Okta gets only the new one)."
  type        = string
  default     = null
  sensitive   = true
}
