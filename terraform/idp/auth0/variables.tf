variable "auth0_event_stream_enabled" {
  description = "Create an Auth0 Event Stream (webhook) to the relay's /auth0 endpoint: user.created, user.updated, user.deleted. false: create it by hand, or not at all."
  type        = bool
  default     = true
}

variable "auth0_event_stream_name" {
  description = "The Event Stream's name in Auth0."
  type        = string
  default     = "idp-duo-relay"

  validation {
    condition     = length(trimspace(var.auth0_event_stream_name)) > 0
    error_message = "auth0_event_stream_name must not be empty."
  }
}

variable "auth0_events_url" {
  description = "The relay's Event Streams endpoint: the cloud module's auth0_events_url output (https://…/auth0, or https://…/api/auth0 on Azure)."
  type        = string
  default     = null

  validation {
    condition     = var.auth0_events_url == null || can(regex("^https://[^\\s/]+(/[^\\s]*)?/auth0$", var.auth0_events_url))
    error_message = "auth0_events_url must be the relay's https URL ending in /auth0 (the cloud module's auth0_events_url output)."
  }
}

variable "auth0_log_stream_enabled" {
  description = "Create an Auth0 Log Stream (custom webhook) to the relay's /auth0/logs endpoint, filtered to the categories holding the log types the relay reads (sapi: Management API success; sdu: user deletion). Needed for role (group) changes and MFA resets, which Event Streams do not carry."
  type        = bool
  default     = true
}

variable "auth0_log_stream_name" {
  description = "The Log Stream's name in Auth0."
  type        = string
  default     = "idp-duo-relay"

  validation {
    condition     = length(trimspace(var.auth0_log_stream_name)) > 0
    error_message = "auth0_log_stream_name must not be empty."
  }
}

variable "auth0_logs_url" {
  description = "The relay's Log Streams endpoint: the cloud module's auth0_logs_url output (https://…/auth0/logs, or https://…/api/auth0/logs on Azure)."
  type        = string
  default     = null

  validation {
    condition     = var.auth0_logs_url == null || can(regex("^https://[^\\s/]+(/[^\\s]*)?/auth0/logs$", var.auth0_logs_url))
    error_message = "auth0_logs_url must be the relay's https URL ending in /auth0/logs (the cloud module's auth0_logs_url output)."
  }
}

variable "auth0_auth_secret" {
  description = "The token Auth0 sends (Event Streams: Authorization: Bearer <token>; Log Streams: Authorization: <token>): ONE secret, the same one the relay holds in AUTH0_AUTH_SECRET (during a rotation the relay holds \"new,old\" and Auth0 gets only the new one)."
  type        = string
  default     = null
  sensitive   = true
}
