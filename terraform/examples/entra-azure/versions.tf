terraform {
  required_version = ">= 1.6"

  # State: keep it in a remote backend, encrypted and private: it holds the
  # Duo secret key, the Entra client secret and the clientState
  # (terraform/README.md, "State"). For example a container of a storage
  # account you created for state, read with your Entra ID login (Storage
  # Blob Data Contributor on it):
  #
  # backend "azurerm" {
  #   resource_group_name  = "tfstate"
  #   storage_account_name = "mytfstate12345"
  #   container_name       = "tfstate"
  #   key                  = "idp-duo-relay/entra-azure.tfstate"
  #   use_azuread_auth     = true
  # }

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.0, < 5.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.5, < 4.0"
    }
    time = {
      source  = "hashicorp/time"
      version = ">= 0.9, < 1.0"
    }
  }
}
