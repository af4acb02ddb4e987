# idp-duo-relay on AWS Lambda, registered as an Okta event hook.
# Build first: cargo lambda build --release --arm64 -p relay-aws --output-format zip

provider "aws" {
  region = var.region
}

provider "okta" {
  # The provider wants the org URL in two halves: https://acme.okta.com →
  # org_name "acme", base_url "okta.com".
  org_name = local.okta_org[0]
  base_url = local.okta_org[1]
  # null: taken from OKTA_API_TOKEN (or OAuth via OKTA_API_CLIENT_ID …).
  api_token = var.okta_api_token
}

locals {
  okta_org = regex("^https://([^./]+)\\.([^/]+?)/?$", var.okta_org_url)

  # Whether the relay gets an Okta API token of its own (profile lookups,
  # reconcile). nonsensitive() unmarks only this yes/no, never the token:
  # that one is set is no secret. Without it the conditional on the
  # sensitive token below would mark okta_org_url sensitive, and with it the
  # relay's whole environment, hiding every plain setting (DUO_IKEY,
  # RELAY_MODE, …) from the plan.
  relay_okta_lookups = nonsensitive(var.relay_okta_api_token != null)

  # What the relay accepts: the current secret, plus the previous one while a
  # rotation is under way (README: "Rotate the hook secret").
  relay_hook_secrets = (
    var.previous_hook_secret == null
    ? random_password.hook.result
    : "${random_password.hook.result},${var.previous_hook_secret}"
  )
}

# The secret Okta sends and the relay checks: generated once, here, and
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
  source = "../../modules/aws"

  # Which hook secret the relay stores, decided at plan time: the secret
  # itself (random_password) is only known after apply.
  hook_sources = ["okta"]

  name               = var.name
  lambda_zip_path    = var.lambda_zip_path
  duo_api_host       = var.duo_api_host
  duo_ikey           = var.duo_ikey
  duo_skey           = var.duo_skey
  okta_auth_secret   = local.relay_hook_secrets
  okta_auth_header   = var.okta_auth_header
  deprovision_action = var.deprovision_action
  group_filter       = var.group_filter
  log_retention_days = var.log_retention_days
  alert_email        = var.alert_email
  queue_enabled      = var.queue_enabled
  tags               = var.tags

  # Optional profile lookups (renames) and the scheduled reconcile: the
  # relay needs both or neither.
  okta_org_url   = local.relay_okta_lookups ? var.okta_org_url : null
  okta_api_token = var.relay_okta_api_token

  # Scheduled reconcile (off unless reconcile_schedule is set): reads Okta
  # with relay_okta_api_token.
  reconcile_schedule = var.reconcile_schedule
  reconcile_source   = "okta"

  # Scheduled catch-up from the Okta System Log (off unless
  # catch_up_enabled): reads the log with relay_okta_api_token
  # (scope okta.logs.read). null values keep the module's defaults.
  catch_up_enabled           = var.catch_up_enabled
  catch_up_source            = "okta"
  catch_up_schedule          = var.catch_up_schedule
  catch_up_window            = var.catch_up_window
  catch_up_lag_alarm_seconds = var.catch_up_lag_alarm_seconds

  # Who and what is synced (attribute mapping, scope by IdP group,
  # accounts left alone, phones): the module's user_sync variable.
  user_sync = var.user_sync
}

module "okta_hook" {
  source = "../../idp/okta"

  okta_enabled     = var.register_hook
  okta_hook_name   = var.name
  okta_hook_url    = module.relay.okta_hook_url
  okta_auth_header = var.okta_auth_header
  okta_auth_secret = random_password.hook.result

  # Okta verifies the hook at once: the relay must be deployed and hold the
  # secret first. During a rotation this also makes the relay accept the new
  # secret before Okta starts sending it.
  depends_on = [module.relay]
}
