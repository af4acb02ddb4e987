terraform {
  required_version = ">= 1.6"

  # State: keep it in a remote backend, encrypted and private: it holds the
  # Duo secret key and the hook secret (terraform/README.md, "State"). For
  # example a GCS bucket you created for state (versioning on, uniform
  # bucket-level access, readable only by whoever deploys):
  #
  # backend "gcs" {
  #   bucket = "my-terraform-state"
  #   prefix = "idp-duo-relay/okta-gcp"
  # }

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.8"
    }
    okta = {
      # 6.7: okta_event_hook_verification.verification_status (idp/okta).
      source  = "okta/okta"
      version = ">= 6.7, < 7.0"
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
