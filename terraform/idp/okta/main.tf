# Registers the relay as an Okta event hook, subscribed to exactly the event
# types the relay handles. That list lives once, in the Rust code
# (relay_core::okta); ../okta-event-types.json is generated from it and kept
# equal by `cargo test -p relay-core --test okta_event_types`.
locals {
  event_types = jsondecode(file("${path.module}/../okta-event-types.json"))
}

resource "okta_event_hook" "relay" {
  count = var.okta_enabled ? 1 : 0

  name   = var.okta_hook_name
  status = "ACTIVE"
  events = local.event_types

  channel = {
    type    = "HTTP"
    version = "1.0.0"
    uri     = var.okta_hook_url
  }

  auth = {
    type  = "HEADER"
    key   = var.okta_auth_header
    value = var.okta_auth_secret
  }

  lifecycle {
    precondition {
      condition     = local.okta_auth_secret_shape_ok
      error_message = "okta_auth_secret must be one secret of at least 16 characters without a comma (the relay splits its own setting on commas for rotation; the IdP sends exactly one)."
    }
    precondition {
      condition     = var.okta_hook_url != null && var.okta_auth_secret != null
      error_message = "okta_enabled = true needs okta_hook_url (the cloud module's okta_hook_url output) and okta_auth_secret (the secret the relay holds)."
    }
  }
}

# Okta sends GET <okta_hook_url> with x-okta-verification-challenge and the
# auth header; the relay answers it. Fails (and can simply be applied again)
# when the relay is not reachable yet or does not hold the secret yet.
resource "okta_event_hook_verification" "relay" {
  count = var.okta_enabled && var.okta_verify ? 1 : 0

  event_hook_id = okta_event_hook.relay[0].id
}
