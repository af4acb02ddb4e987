terraform {
  required_version = ">= 1.6"

  required_providers {
    azurerm = {
      # 4.42 renamed key vault's `enable_rbac_authorization` to
      # `rbac_authorization_enabled`; 4.46 let azurerm_storage_queue use the
      # Resource Manager API (`storage_account_id`); 4.77 added
      # `storage_container_id` to azurerm_storage_blob.
      source  = "hashicorp/azurerm"
      version = "~> 4.77"
    }
    random = {
      # The globally unique part of the storage account, Key Vault and
      # Function App names.
      source  = "hashicorp/random"
      version = ">= 3.5, < 4.0"
    }
    time = {
      # Waits for new role assignments to take effect before anything uses
      # them (Key Vault secrets written by Terraform, the app's first start).
      source  = "hashicorp/time"
      version = ">= 0.9, < 1.0"
    }
  }
}
