# idp-duo-relay on Azure Functions, fed by Microsoft Entra ID: Microsoft
# Graph change notifications on users and groups (POST /api/entra), each
# one read back from Graph with the relay's own app registration.
# Build first: crates/relay-azure/package.sh → target/azure-function-app.zip
#
# After the apply, create the Graph subscriptions (Terraform does not: Graph
# validates a new one by calling the running relay, and they expire within
# a month, so the relay's CLI creates and renews them; README "Entra ID"):
# `terraform output -raw entra_subscribe` prints the commands.

provider "azurerm" {
  features {}
  # null: taken from ARM_SUBSCRIPTION_ID.
  subscription_id = var.subscription_id
}

# The tenant whose users and groups reach Duo. null: the tenant of the
# Azure CLI login (or ARM_TENANT_ID).
provider "azuread" {
  tenant_id = var.tenant_id
}

# The relay's app registration in Entra ID: Microsoft Graph application
# permissions with admin consent, its client secret (rotated every
# client_secret_rotation_days by an apply) and the subscriptions'
# clientState, generated here.
module "entra" {
  source = "../../idp/entra"

  display_name                = var.name
  audit_log_enabled           = var.entra_audit_log_enabled
  client_secret_rotation_days = var.client_secret_rotation_days
  client_secret_grace_days    = var.client_secret_grace_days
}

module "relay" {
  source = "../../modules/azure"

  # Which secrets the relay stores, decided at plan time: the clientState
  # and the client secret themselves are only known after apply.
  hook_sources = ["entra"]

  entra_tenant_id     = module.entra.tenant_id
  entra_client_id     = module.entra.client_id
  entra_client_secret = module.entra.client_secret
  entra_client_state  = module.entra.client_state

  name               = var.name
  location           = var.location
  package_zip_path   = var.package_zip_path
  duo_api_host       = var.duo_api_host
  duo_ikey           = var.duo_ikey
  duo_skey           = var.duo_skey
  deprovision_action = var.deprovision_action
  group_filter       = var.group_filter
  log_retention_days = var.log_retention_days
  alert_email        = var.alert_email
  queue_enabled      = var.queue_enabled
  tags               = var.tags

  # Scheduled reconcile (off unless reconcile_schedule is set): reads every
  # user and group from Graph with the same app registration.
  reconcile_schedule = var.reconcile_schedule
  reconcile_source   = "entra"

  # Who and what is synced (attribute mapping, scope by IdP group,
  # accounts left alone, phones): the module's user_sync variable.
  user_sync = var.user_sync
}
