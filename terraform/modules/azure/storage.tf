# One storage account, the relay's alone: the Functions host's own state
# (identity-based AzureWebJobsStorage), the package blob the app runs from,
# the idempotency table and, in queue mode, the queues.
resource "azurerm_storage_account" "relay" {
  #checkov:skip=CKV_AZURE_35:Linux Consumption apps have no virtual network integration: the Functions host and the package fetch reach this account over its public endpoint, so a default-deny firewall would stop the app. Every request is authorized with Entra ID (the app's managed identity).
  #checkov:skip=CKV_AZURE_59:Same reason: public network access must stay on for a Consumption-plan Function App; access is by role assignment to the app's identity only.
  #checkov:skip=CKV2_AZURE_33:Private endpoints need a virtual network the Consumption plan cannot join.
  #checkov:skip=CKV2_AZURE_1:Microsoft-managed keys with infrastructure (double) encryption; a customer-managed key would add a Key Vault key, its rotation and an identity for data that all expires within 7 days.
  #checkov:skip=CKV2_AZURE_40:Shared keys are a variable (shared_access_key_enabled): on by default only so Terraform can upload the package with the provider's defaults; the Function App never uses them. Set it to false with storage_use_azuread = true in the provider.
  #checkov:skip=CKV_AZURE_206:Replication is a variable (storage_replication_type, LRS by default): the account holds only records that expire within 7 days and a package rebuilt from source.
  #checkov:skip=CKV_AZURE_33:Queue service logging (classic Storage Analytics) is off: queues exist only in queue mode, and every dead letter is alerted on from the relay's dead_letter line and the host's poison line (monitoring.tf).
  name                              = local.storage_account_name
  resource_group_name               = local.resource_group_name
  location                          = var.location
  account_kind                      = "StorageV2"
  account_tier                      = "Standard"
  account_replication_type          = var.storage_replication_type
  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  allow_nested_items_to_be_public   = false
  shared_access_key_enabled         = var.shared_access_key_enabled
  default_to_oauth_authentication   = true
  infrastructure_encryption_enabled = true
  cross_tenant_replication_enabled  = false
  local_user_enabled                = false
  sftp_enabled                      = false
  public_network_access_enabled     = true
  tags                              = var.tags

  blob_properties {
    delete_retention_policy {
      days = 7
    }

    container_delete_retention_policy {
      days = 7
    }
  }

  sas_policy {
    expiration_period = "00.01:00:00"
  }
}

# The package: private, read by the app's identity (Storage Blob Data Owner
# on the account, see main.tf), never anonymous.
resource "azurerm_storage_container" "package" {
  #checkov:skip=CKV2_AZURE_21:Blob read logging would record every package fetch; the relay's own log line per event in Application Insights is the audit trail.
  name                  = "relay-package"
  storage_account_id    = azurerm_storage_account.relay.id
  container_access_type = "private"
}

# Named after its content: a new build is a new blob, so the app setting
# changes and the app restarts on the new package (Linux Consumption only
# runs from a package URL; see main.tf). The old blob goes once the app
# points at the new one.
resource "azurerm_storage_blob" "package" {
  name                 = "relay-azure-${filesha256(var.package_zip_path)}.zip"
  storage_container_id = azurerm_storage_container.package.id
  type                 = "Block"
  source               = var.package_zip_path
  content_md5          = filemd5(var.package_zip_path)
  content_type         = "application/zip"

  lifecycle {
    create_before_destroy = true
  }

  # With shared keys off, the upload uses the deployer's role assignment.
  depends_on = [
    azurerm_role_assignment.deployer_package,
    time_sleep.deployer_access,
  ]
}

# Queue mode: the queue, and the poison queue that holds dead letters (the
# worker's, with their reason, and the Functions host's after
# maxDequeueCount failed invocations).
resource "azurerm_storage_queue" "relay" {
  for_each = local.queue_names

  name               = each.value
  storage_account_id = azurerm_storage_account.relay.id
}
