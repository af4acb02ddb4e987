# idp-duo-relay on Azure Functions, fed by an Auth0 Event Stream (user
# changes) and an Auth0 Log Stream (roles, role members, MFA resets).
# Build first: crates/relay-azure/package.sh → target/azure-function-app.zip

provider "azurerm" {
  features {}
  # null: taken from ARM_SUBSCRIPTION_ID.
  subscription_id = var.subscription_id
}

provider "auth0" {
  domain        = var.auth0_domain
  client_id     = var.auth0_client_id
  client_secret = var.auth0_client_secret
}

locals {
  # What the relay accepts: the current secret, plus the previous one while a
  # rotation is under way (README: "Rotate the hook secret").
  relay_hook_secrets = (
    var.previous_hook_secret == null
    ? random_password.hook.result
    : "${random_password.hook.result},${var.previous_hook_secret}"
  )

  # Optional Management API lookups (role names, profiles) and the scheduled
  # reconcile: the relay needs all three or none. nonsensitive() unmarks only
  # whether the client secret is set, never the secret: that one is set is no
  # secret. Without it the conditionals on the sensitive secret below would
  # mark auth0_domain and auth0_client_id sensitive, and with them the whole
  # app_settings map, hiding every plain setting from the plan.
  relay_auth0_lookups = var.relay_auth0_client_id != null && nonsensitive(var.relay_auth0_client_secret != null)
}

check "relay_auth0_lookups" {
  assert {
    condition     = (var.relay_auth0_client_id == null) == (var.relay_auth0_client_secret == null)
    error_message = "Set both relay_auth0_client_id and relay_auth0_client_secret for the relay's Auth0 lookups, or neither; with only one the relay does no lookups."
  }
}

# The token Auth0 sends and the relay checks: generated once, here, and
# handed to both modules, so nobody types or copies it. Letters and digits
# only (special = false), so it survives any header. Change hook_rotation to
# generate a new one.
resource "random_password" "hook" {
  length  = 48
  special = false

  keepers = {
    rotation = var.hook_rotation
  }
}

module "relay" {
  source = "../../modules/azure"

  # Which hook secret the relay stores, decided at plan time: the secret
  # itself (random_password) is only known after apply.
  hook_sources = ["auth0"]

  name               = var.name
  location           = var.location
  package_zip_path   = var.package_zip_path
  duo_api_host       = var.duo_api_host
  duo_ikey           = var.duo_ikey
  duo_skey           = var.duo_skey
  auth0_auth_secret  = local.relay_hook_secrets
  deprovision_action = var.deprovision_action
  group_filter       = var.group_filter
  log_retention_days = var.log_retention_days
  alert_email        = var.alert_email
  queue_enabled      = var.queue_enabled
  tags               = var.tags

  auth0_domain        = local.relay_auth0_lookups ? var.auth0_domain : null
  auth0_client_id     = local.relay_auth0_lookups ? var.relay_auth0_client_id : null
  auth0_client_secret = local.relay_auth0_lookups ? var.relay_auth0_client_secret : null

  # Scheduled reconcile (off unless reconcile_schedule is set): reads Auth0
  # with the relay's own application above.
  reconcile_schedule = var.reconcile_schedule
  reconcile_source   = "auth0"

  # Scheduled catch-up from the Auth0 tenant logs (off unless
  # catch_up_enabled): reads the log with relay_auth0_client_id and relay_auth0_client_secret
  # (scope read:logs). null values keep the module's defaults.
  catch_up_enabled           = var.catch_up_enabled
  catch_up_source            = "auth0"
  catch_up_schedule          = var.catch_up_schedule
  catch_up_window            = var.catch_up_window
  catch_up_lag_alarm_seconds = var.catch_up_lag_alarm_seconds

  # Who and what is synced (attribute mapping, scope by IdP group,
  # accounts left alone, phones): the module's user_sync variable.
  user_sync = var.user_sync
}

module "auth0_streams" {
  source = "../../idp/auth0"

  auth0_event_stream_enabled = var.register_hook && var.auth0_event_stream_enabled
  auth0_event_stream_name    = var.name
  auth0_events_url           = module.relay.auth0_events_url
  auth0_log_stream_enabled   = var.register_hook && var.auth0_log_stream_enabled
  auth0_log_stream_name      = var.name
  auth0_logs_url             = module.relay.auth0_logs_url
  auth0_auth_secret          = random_password.hook.result

  # The relay must hold the token before Auth0 sends with it: on the first
  # apply, and during a rotation.
  depends_on = [module.relay]
}
