# idp-duo-relay on Azure Functions: a Linux Function App on the Consumption
# plan (Y1) running the relay-azure custom handler from a private blob,
# secrets in Key Vault as app-setting references, idempotency in Table
# Storage, logs in Application Insights on a Log Analytics workspace.
#
# Why Consumption (Y1) and not Flex Consumption: both run custom handlers,
# but the azurerm provider cannot deploy a Flex app in one apply today.
# azurerm_function_app_flex_consumption's zip_deploy_file posts to Kudu's
# /api/zipdeploy, which Flex does not serve (hashicorp/terraform-provider-azurerm
# #29630), and with managed-identity storage the resource writes an
# AzureWebJobsStorage connection string with an empty key that stops the host
# (#29693). Linux Consumption runs the package from a blob URL fetched with
# the app's managed identity and keeps its host storage identity-based, all
# with azurerm resources. Microsoft retires Linux Consumption on
# 30 September 2028; moving to Flex then means a new Function App (the hook
# URLs change host name), nothing in the relay.

data "azurerm_client_config" "current" {}

resource "azurerm_resource_group" "relay" {
  count = var.resource_group_name == null ? 1 : 0

  name     = "${var.name}-rg"
  location = var.location
  tags     = var.tags
}

data "azurerm_resource_group" "existing" {
  count = var.resource_group_name == null ? 0 : 1

  name = var.resource_group_name
}

# Storage account and Key Vault names are global and short: a random part
# keeps them unique, and a destroy followed by an apply gets fresh names
# (a deleted Key Vault stays reserved for its 90-day soft-delete period).
resource "random_string" "suffix" {
  length  = 8
  lower   = true
  upper   = false
  numeric = true
  special = false
}

locals {
  resource_group_name = var.resource_group_name == null ? azurerm_resource_group.relay[0].name : data.azurerm_resource_group.existing[0].name

  compact_name         = replace(var.name, "-", "")
  storage_account_name = "${substr(local.compact_name, 0, 16)}${random_string.suffix.result}"
  key_vault_name       = "kv-${substr(local.compact_name, 0, 11)}-${random_string.suffix.result}"
  function_app_name    = "${var.name}-${random_string.suffix.result}"

  # The idempotency table (RELAY_TABLE_NAME); relay-azure creates it at
  # start-up when it is missing.
  table_name = "relayidempotency"

  # Durable delivery (queue mode): the queue and its poison queue
  # ("<queue>-poison", as the Functions host names it), where the worker
  # writes dead letters with their reason and the host moves a message that
  # failed maxDequeueCount times.
  queue_name        = "relay-events"
  poison_queue_name = "${local.queue_name}-poison"
  queue_names = var.queue_enabled ? {
    events = local.queue_name
    poison = local.poison_queue_name
  } : {}
}

# ---------------------------------------------------------------------------
# The app's identity and what it may do
# ---------------------------------------------------------------------------

# A user-assigned identity rather than the app's system-assigned one: its
# roles exist (and have taken effect) before the Function App is created, so
# the first start already resolves the Key Vault references and fetches the
# package. With a system-assigned identity the roles can only be granted
# after the app exists, and a reference that failed at the first start is
# only retried at a restart or after 24 hours.
resource "azurerm_user_assigned_identity" "relay" {
  name                = "${var.name}-id"
  resource_group_name = local.resource_group_name
  location            = var.location
  tags                = var.tags
}

# Key Vault references: read the secret values of this vault only.
resource "azurerm_role_assignment" "relay_key_vault_secrets" {
  scope                = azurerm_key_vault.relay.id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_user_assigned_identity.relay.principal_id
  principal_type       = "ServicePrincipal"
}

# The idempotency table (AZURE_STORAGE_TABLE_ENDPOINT). On the account and
# not on the table: relay-azure creates the table at start-up when it is
# missing, which a table-scoped assignment does not cover. The account is
# this relay's alone.
resource "azurerm_role_assignment" "relay_table" {
  scope                = azurerm_storage_account.relay.id
  role_definition_name = "Storage Table Data Contributor"
  principal_id         = azurerm_user_assigned_identity.relay.principal_id
  principal_type       = "ServicePrincipal"
}

# Identity-based host storage (AzureWebJobsStorage__accountName): the
# Functions host keeps its keys and leases in blob containers it creates
# itself, and Microsoft documents Storage Blob Data Owner on the account for
# it. It also covers reading the package blob (WEBSITE_RUN_FROM_PACKAGE).
resource "azurerm_role_assignment" "relay_host_storage" {
  scope                = azurerm_storage_account.relay.id
  role_definition_name = "Storage Blob Data Owner"
  principal_id         = azurerm_user_assigned_identity.relay.principal_id
  principal_type       = "ServicePrincipal"
}

# Queue mode: send, receive and delete on the two queues only (the accept
# stage, the queue trigger, dead letters and `relay-azure dlq`).
resource "azurerm_role_assignment" "relay_queue" {
  for_each = azurerm_storage_queue.relay

  scope                = azurerm_storage_queue.relay[each.key].id
  role_definition_name = "Storage Queue Data Contributor"
  principal_id         = azurerm_user_assigned_identity.relay.principal_id
  principal_type       = "ServicePrincipal"
}

# ---------------------------------------------------------------------------
# What the identity running Terraform needs on what this module creates
# ---------------------------------------------------------------------------

# Write (and on later plans read) the secrets: the vault uses Azure RBAC, so
# even the subscription's Owner needs a data role.
resource "azurerm_role_assignment" "deployer_key_vault_secrets" {
  scope                = azurerm_key_vault.relay.id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = data.azurerm_client_config.current.object_id
}

# Upload the package with Entra ID when the account's shared keys are off.
resource "azurerm_role_assignment" "deployer_package" {
  count = var.shared_access_key_enabled ? 0 : 1

  scope                = azurerm_storage_container.package.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = data.azurerm_client_config.current.object_id
}

# New role assignments take effect a while after Azure has created them
# (Microsoft documents up to 10 minutes for Key Vault data-plane roles), and
# nothing in the API says when. Two separate waits, each started as soon as
# its assignments exist, so each use waits only for the roles it needs:
#
# - Terraform's own writes (the Key Vault secrets, the package upload with
#   shared keys off) wait for the deployer's roles. If Azure is slower than
#   role_propagation_wait, the write fails with 403 "ForbiddenByRbac" and
#   nothing is half-created: run terraform apply again.
# - The Function App's first start waits for its identity's roles. It does
#   not depend on that wait being long enough: a Key Vault reference the
#   platform could not resolve yet, relay-azure reads from Key Vault itself
#   with the same identity, retrying for up to two minutes at each start
#   (crates/relay-azure/src/key_vault.rs); the Functions host restarts a
#   handler that exits, and each start tries again.
resource "time_sleep" "deployer_access" {
  create_duration = var.role_propagation_wait

  triggers = {
    roles = join(",", concat(
      [azurerm_role_assignment.deployer_key_vault_secrets.id],
      azurerm_role_assignment.deployer_package[*].id,
    ))
  }
}

resource "time_sleep" "app_access" {
  create_duration = var.role_propagation_wait

  triggers = {
    roles = join(",", concat(
      [
        azurerm_role_assignment.relay_key_vault_secrets.id,
        azurerm_role_assignment.relay_table.id,
        azurerm_role_assignment.relay_host_storage.id,
      ],
      [for a in azurerm_role_assignment.relay_queue : a.id],
    ))
  }
}
