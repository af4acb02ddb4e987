# Scheduled reconcile (off until reconcile_schedule is set): Cloud Scheduler
# runs a Cloud Run job — the service's image and service account, started
# as `relay-gcp reconcile` — that converges Duo to the IdP (README
# "Reconcile"). The job exits non-zero when the run did not converge (drift
# left, the deletion cap, a read error); the reconcile_failed alert reports
# failed executions. No retries: the next scheduled run is the retry.

variable "reconcile_schedule" {
  description = "When to reconcile Duo with the IdP: a unix-cron expression (five fields, UTC), e.g. \"0 * * * *\" (hourly) or \"15 3 * * *\" (daily at 03:15). null (default) = no scheduled reconcile (nothing is created)."
  type        = string
  default     = null

  validation {
    condition     = var.reconcile_schedule == null || can(regex("^\\S+ \\S+ \\S+ \\S+ \\S+$", coalesce(var.reconcile_schedule, "x")))
    error_message = "reconcile_schedule must be a unix-cron expression with five fields, e.g. \"0 * * * *\"."
  }
}

variable "reconcile_source" {
  description = "The IdP a scheduled reconcile reads: \"okta\", \"auth0\" or \"entra\". null (default) = okta when okta_org_url is set, else entra when hook_sources includes \"entra\", else auth0."
  type        = string
  default     = null

  validation {
    condition     = var.reconcile_source == null || contains(["okta", "auth0", "entra"], coalesce(var.reconcile_source, "okta"))
    error_message = "reconcile_source must be \"okta\", \"auth0\" or \"entra\"."
  }
}

variable "reconcile_dry_run" {
  description = "Scheduled runs only report the drift (and fail while there is some) instead of applying it."
  type        = bool
  default     = false
  nullable    = false
}

variable "reconcile_max_deletes" {
  description = "A scheduled run that would delete or deprovision more users and groups than this applies nothing and fails (a misconfigured IdP token can hide users)."
  type        = number
  default     = 10
  nullable    = false

  validation {
    condition     = var.reconcile_max_deletes >= 0 && floor(var.reconcile_max_deletes) == var.reconcile_max_deletes
    error_message = "reconcile_max_deletes must be a whole number, 0 or more."
  }
}

locals {
  reconcile_enabled = var.reconcile_schedule != null
  reconcile_source  = coalesce(var.reconcile_source, var.okta_org_url != null ? "okta" : local.entra_enabled ? "entra" : "auth0")
  reconcile_name    = "${var.name}-reconcile"

  # What `relay-gcp reconcile` reads besides the service's settings
  # (relay_core::reconcile::ReconcileOptions::scheduled).
  reconcile_env = {
    RELAY_RECONCILE_SOURCE      = local.reconcile_source
    RELAY_RECONCILE_DRY_RUN     = tostring(var.reconcile_dry_run)
    RELAY_RECONCILE_MAX_DELETES = tostring(var.reconcile_max_deletes)
  }
}

resource "google_project_service" "reconcile" {
  count = local.reconcile_enabled ? 1 : 0

  project = var.project
  service = "cloudscheduler.googleapis.com"

  disable_on_destroy         = false
  disable_dependent_services = false
}

resource "google_cloud_run_v2_job" "reconcile" {
  count = local.reconcile_enabled ? 1 : 0

  project             = var.project
  location            = var.region
  name                = local.reconcile_name
  labels              = local.labels
  deletion_protection = var.deletion_protection

  template {
    labels      = local.labels
    task_count  = 1
    parallelism = 1

    template {
      service_account = google_service_account.relay.email
      # A first run on a large tenant is Duo-rate-limited (about 300
      # writes a minute); later runs apply only the drift.
      timeout     = "3600s"
      max_retries = 0

      containers {
        name  = "reconcile"
        image = var.image
        args  = ["reconcile"]

        resources {
          limits = {
            cpu    = "1"
            memory = "512Mi"
          }
        }

        env {
          name  = "DUO_API_HOST"
          value = var.duo_api_host
        }
        env {
          name  = "DUO_IKEY"
          value = var.duo_ikey
        }
        env {
          name = "DUO_SKEY"
          value_source {
            secret_key_ref {
              secret  = google_secret_manager_secret.relay["DUO_SKEY"].secret_id
              version = google_secret_manager_secret_version.relay["DUO_SKEY"].version
            }
          }
        }
        env {
          name  = "DEPROVISION_ACTION"
          value = var.deprovision_action
        }
        env {
          name  = "RELAY_LOG_FORMAT"
          value = "json"
        }

        # OKTA_API_TOKEN, AUTH0_CLIENT_SECRET (and the hook secrets) as the
        # service gets them.
        dynamic "env" {
          for_each = local.optional_secret_env
          content {
            name = env.value
            value_source {
              secret_key_ref {
                secret  = google_secret_manager_secret.relay[env.value].secret_id
                version = google_secret_manager_secret_version.relay[env.value].version
              }
            }
          }
        }

        # DUO_RATE_PER_MINUTE, OKTA_ORG_URL, AUTH0_DOMAIN, AUTH0_CLIENT_ID,
        # GROUP_FILTER and the RELAY_RECONCILE_* settings.
        dynamic "env" {
          for_each = merge(local.optional_plain_env, local.reconcile_env)
          content {
            name  = env.key
            value = env.value
          }
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = local.reconcile_source == "okta" ? (var.okta_org_url != null && var.okta_api_token != null) : local.reconcile_source == "entra" ? local.entra_enabled : (var.auth0_domain != null && var.auth0_client_id != null && var.auth0_client_secret != null)
      error_message = "A scheduled reconcile reads the IdP's API: set okta_org_url and okta_api_token (reconcile_source okta), auth0_domain, auth0_client_id and auth0_client_secret (auth0), or hook_sources with \"entra\" and the entra_* variables (entra)."
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_secret_manager_secret_iam_member.relay,
  ]
}

# The identity Cloud Scheduler calls the Cloud Run Admin API with: it may
# run this job and nothing else.
resource "google_service_account" "reconcile_scheduler" {
  count = local.reconcile_enabled ? 1 : 0

  project      = var.project
  account_id   = "${substr(var.name, 0, 24)}-sched"
  display_name = "idp-duo-relay (${var.name}) reconcile scheduler"
  description  = "Starts the ${local.reconcile_name} Cloud Run job on its schedule."

  depends_on = [google_project_service.enabled]
}

resource "google_cloud_run_v2_job_iam_member" "reconcile_scheduler" {
  count = local.reconcile_enabled ? 1 : 0

  project  = google_cloud_run_v2_job.reconcile[0].project
  location = google_cloud_run_v2_job.reconcile[0].location
  name     = google_cloud_run_v2_job.reconcile[0].name
  role     = "roles/run.invoker"
  member   = google_service_account.reconcile_scheduler[0].member
}

resource "google_cloud_scheduler_job" "reconcile" {
  count = local.reconcile_enabled ? 1 : 0

  project     = var.project
  region      = var.region
  name        = local.reconcile_name
  description = "idp-duo-relay ${var.name}: reconcile Duo with ${local.reconcile_source}"
  schedule    = var.reconcile_schedule
  time_zone   = "Etc/UTC"

  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/projects/${var.project}/locations/${var.region}/jobs/${google_cloud_run_v2_job.reconcile[0].name}:run"

    oauth_token {
      service_account_email = google_service_account.reconcile_scheduler[0].email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [
    google_project_service.reconcile,
    google_cloud_run_v2_job_iam_member.reconcile_scheduler,
  ]
}

# An execution that did not converge (the job exits non-zero). The job's
# line with jsonPayload.message="reconcile" has the status and detail.
resource "google_monitoring_alert_policy" "reconcile_failed" {
  count = local.reconcile_enabled ? 1 : 0

  project               = var.project
  display_name          = "${var.name}: scheduled reconcile did not converge"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "failed reconcile executions > 0"

    condition_threshold {
      filter          = "metric.type=\"run.googleapis.com/job/completed_execution_count\" AND resource.type=\"cloud_run_job\" AND resource.labels.job_name=\"${local.reconcile_name}\" AND metric.labels.result=\"failed\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name}: scheduled reconcile did not converge"
    content   = <<-EOT
      The ${local.reconcile_name} job exited non-zero: 2 drift left (or found,
      with reconcile_dry_run), 3 the deletion cap (reconcile_max_deletes)
      stopped it before anything was applied, 4 reading ${local.reconcile_source}
      failed, 5 reading Duo failed, 1 bad configuration.

      Logs Explorer (project ${var.project}):

          resource.type="cloud_run_job"
          resource.labels.job_name="${local.reconcile_name}"
          jsonPayload.message=("reconcile" OR "event")

      Check the plan before trusting it: `idp-duo-relay reconcile --source ${local.reconcile_source} --dry-run`.
    EOT
  }
}

output "reconcile_job_name" {
  description = "The scheduled reconcile's Cloud Run job (null when reconcile_schedule is not set). Run it by hand: gcloud run jobs execute <name> --region <region>"
  value       = local.reconcile_enabled ? google_cloud_run_v2_job.reconcile[0].name : null
}
