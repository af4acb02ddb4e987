# Auth0 → relay. Event Streams carry user changes (CloudEvents, bearer
# token); Log Streams carry what Event Streams do not: role (group) changes,
# role memberships and MFA resets, as Management API log records.

resource "auth0_event_stream" "relay" {
  count = var.auth0_event_stream_enabled ? 1 : 0

  name             = var.auth0_event_stream_name
  destination_type = "webhook"
  subscriptions = [
    "user.created",
    "user.updated",
    "user.deleted",
  ]

  webhook_configuration {
    webhook_endpoint = var.auth0_events_url

    # token (not token_wo): write-only arguments need Terraform 1.11, and the
    # same value is in the state through random_password anyway.
    webhook_authorization {
      method = "bearer"
      token  = var.auth0_auth_secret
    }
  }

  lifecycle {
    precondition {
      condition     = local.auth0_auth_secret_shape_ok
      error_message = "auth0_auth_secret must be one secret of at least 16 characters without a comma (the relay splits its own setting on commas for rotation; the IdP sends exactly one)."
    }
    precondition {
      condition     = var.auth0_events_url != null && var.auth0_auth_secret != null
      error_message = "auth0_event_stream_enabled = true needs auth0_events_url (the cloud module's auth0_events_url output) and auth0_auth_secret (the secret the relay holds)."
    }
  }
}

resource "auth0_log_stream" "relay" {
  count = var.auth0_log_stream_enabled ? 1 : 0

  name = var.auth0_log_stream_name
  type = "http"

  # The relay reads two log types: sapi (Management API writes: users,
  # roles, role members, MFA resets) and sdu (user deleted). Auth0 files
  # sapi under "management.success" and sdu under "user.success"; every
  # other record of those categories is acknowledged and skipped.
  filters = [
    {
      type = "category"
      name = "management.success"
    },
    {
      type = "category"
      name = "user.success"
    },
  ]

  sink {
    http_endpoint       = var.auth0_logs_url
    http_authorization  = var.auth0_auth_secret
    http_content_format = "JSONLINES"
    http_content_type   = "application/json"
  }

  lifecycle {
    precondition {
      condition     = local.auth0_auth_secret_shape_ok
      error_message = "auth0_auth_secret must be one secret of at least 16 characters without a comma (the relay splits its own setting on commas for rotation; the IdP sends exactly one)."
    }
    precondition {
      condition     = var.auth0_logs_url != null && var.auth0_auth_secret != null
      error_message = "auth0_log_stream_enabled = true needs auth0_logs_url (the cloud module's auth0_logs_url output) and auth0_auth_secret (the secret the relay holds)."
    }
  }
}
