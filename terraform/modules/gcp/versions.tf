terraform {
  required_version = ">= 1.6"

  required_providers {
    google = {
      # 6.8 added `invoker_iam_disabled` to google_cloud_run_v2_service.
      source  = "hashicorp/google"
      version = "~> 6.8"
    }
  }
}
