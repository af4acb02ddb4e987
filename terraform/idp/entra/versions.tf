terraform {
  required_version = ">= 1.6"

  required_providers {
    azuread = {
      # 3.0 replaced application_object_id with application_id on
      # azuread_application_password (docs/guides/3.0-upgrade-guide.md of
      # hashicorp/terraform-provider-azuread); azuread_application_registration
      # and azuread_application_api_access exist since 2.44. The root module
      # configures the provider.
      source  = "hashicorp/azuread"
      version = ">= 3.0, < 4.0"
    }
    time = {
      # When the client secret is rotated; the first apply's time.
      source  = "hashicorp/time"
      version = ">= 0.9, < 1.0"
    }
  }
}
