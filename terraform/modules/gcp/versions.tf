terraform {
  required_version = ">= 1.6"

  required_providers {
    google = {
      # 6.8 added `invoker_iam_disabled` to google_cloud_run_v2_service.
      source  = "hashicorp/google"
      version = "~> 6.8"
    }
    time = {
      # Waits between creating the log-based metrics and the alert policies
      # on them (monitoring.tf).
      source  = "hashicorp/time"
      version = ">= 0.9, < 1.0"
    }
  }
}
