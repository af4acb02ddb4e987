terraform {
  required_version = ">= 1.6"

  # State: keep it in a remote backend, encrypted and private: it holds the
  # Duo secret key, the Entra client secret and the clientState
  # (terraform/README.md, "State"). For example a GCS bucket you created
  # for state (versioning on, uniform bucket-level access, readable only by
  # whoever deploys):
  #
  # backend "gcs" {
  #   bucket = "my-terraform-state"
  #   prefix = "idp-duo-relay/entra-gcp"
  # }

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.8"
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
