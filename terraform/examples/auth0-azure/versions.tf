terraform {
  required_version = ">= 1.6"

  # State: keep it in a remote backend, encrypted and private: it holds the
  # Duo secret key and the hook secret (terraform/README.md, "State"). For
  # example a container of a storage account you created for state, read
  # with your Entra ID login (Storage Blob Data Contributor on it):
  #
  # backend "azurerm" {
  #   resource_group_name  = "tfstate"
  #   storage_account_name = "mytfstate12345"
  #   container_name       = "tfstate"
  #   key                  = "idp-duo-relay/auth0-azure.tfstate"
  #   use_azuread_auth     = true
  # }

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.0, < 5.0"
    }
    auth0 = {
      source  = "auth0/auth0"
      version = ">= 1.29.0, < 2.0.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.5, < 4.0"
    }
  }
}
