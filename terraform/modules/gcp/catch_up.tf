# Scheduled catch-up (off until catch_up_enabled): Cloud Scheduler runs a
# Cloud Run job — the service's image and service account, started as
# `relay-gcp catch-up` — that reads the IdP's own event log from the
# checkpoint in the Firestore collection and applies what the hook missed
# (README "Catch-up"). Cloud Scheduler calls the Cloud Run Admin API
# (`…/jobs/<name>:run`, a googleapis.com endpoint) with an OAuth token of a
# service account that may run this job only; an OIDC token is for calling
# a service's own URL. No retries: the next scheduled run is the retry, from
# the same checkpoint. Two alerts: a failed execution (the job exits
# non-zero), and catch-up lines whose checkpoint_lag_s is above
# catch_up_lag_alarm_seconds.
# For Entra ID (source "entra") a run renews or re-creates the relay's
# Graph subscriptions at ENTRA_NOTIFICATION_URL, runs the users/groups
# delta queries from the deltaLinks kept in the same checkpoint store, and
# with entra_audit_log polls the directory audit log for MFA resets: this
# schedule is what keeps the subscriptions alive (entra.tf).

variable "catch_up_enabled" {
  description = "Run catch-up from the IdP's event log on catch_up_schedule (README \"Catch-up\"). false (default) = nothing is created."
  type        = bool
  default     = false
  nullable    = false
}

variable "catch_up_schedule" {
  description = "When catch-up runs: a unix-cron expression (five fields, UTC), e.g. \"*/15 * * * *\" (default: every 15 minutes)."
  type        = string
  default     = "*/15 * * * *"
  nullable    = false

  validation {
    condition     = can(regex("^\\S+ \\S+ \\S+ \\S+ \\S+$", var.catch_up_schedule))
    error_message = "catch_up_schedule must be a unix-cron expression with five fields, e.g. \"*/15 * * * *\"."
  }
}

variable "catch_up_source" {
  description = "What catch-up reads: \"okta\" (System Log), \"auth0\" (tenant logs) or \"entra\" (Microsoft Graph: renews the relay's subscriptions, runs the users/groups delta queries, and with entra_audit_log polls the audit log for MFA resets). null (default) = okta when okta_org_url is set, else auth0 when auth0_domain is set, else entra when hook_sources includes \"entra\"."
  type        = string
  default     = null

  validation {
    condition     = var.catch_up_source == null || contains(["okta", "auth0", "entra"], coalesce(var.catch_up_source, "okta"))
    error_message = "catch_up_source must be \"okta\", \"auth0\" or \"entra\"."
  }
}

variable "catch_up_window" {
  description = "How far back the first run (no checkpoint yet) reads: RELAY_CATCH_UP_WINDOW, e.g. \"24h\" (default), \"90m\", \"2d\"; at most 90d."
  type        = string
  default     = "24h"
  nullable    = false

  validation {
    condition     = can(regex("^[1-9][0-9]*[smhd]?$", var.catch_up_window))
    error_message = "catch_up_window must be a duration like 24h, 90m or 2d."
  }
}

variable "catch_up_lag_alarm_seconds" {
  description = "Alert when a catch-up run reports a checkpoint lag (seconds since the log was last read to its end) above this. Default 3600: four missed 15-minute runs."
  type        = number
  default     = 3600
  nullable    = false

  validation {
    condition     = var.catch_up_lag_alarm_seconds >= 60 && floor(var.catch_up_lag_alarm_seconds) == var.catch_up_lag_alarm_seconds
    error_message = "catch_up_lag_alarm_seconds must be a whole number of seconds, 60 or more."
  }
}

locals {
  catch_up_enabled = var.catch_up_enabled
  catch_up_source  = coalesce(var.catch_up_source, var.okta_org_url != null ? "okta" : var.auth0_domain != null ? "auth0" : local.entra_enabled ? "entra" : "auth0")
  catch_up_name    = "${var.name}-catch-up"

  # What `relay-gcp catch-up` reads besides the service's settings
  # (relay_core::catch_up::CatchUpOptions::scheduled, CatchUpConfig).
  # For Entra ID, where the subscriptions deliver (the service's URL, which
  # only the job can hold: in the service's own env it would be a cycle).
  catch_up_env = merge({
    RELAY_CATCH_UP_SOURCE = local.catch_up_source
    RELAY_CATCH_UP_WINDOW = var.catch_up_window
  }, local.catch_up_entra_env)

  # What an IdP 401/403 means, and what a lag delays, in the alerts' words
  # (for okta and auth0 the documentation as it was, line breaks included).
  catch_up_denied  = local.catch_up_source == "entra" ? local.entra_denied : "a 401/403 means the API token lacks\nthe log scope"
  catch_up_delayed = local.catch_up_source == "entra" ? local.entra_delayed : "Missed hook deliveries (an MFA reset, a\ndeactivation) wait that long to reach Duo."

  # The job's catch-up lines whose lag is above the threshold.
  catch_up_lag_filter = join(" AND ", [
    "resource.type=\"cloud_run_job\"",
    "resource.labels.job_name=\"${local.catch_up_name}\"",
    "jsonPayload.message=\"catch_up\"",
    "jsonPayload.checkpoint_lag_s>${var.catch_up_lag_alarm_seconds}",
  ])
}

resource "google_project_service" "catch_up" {
  count = local.catch_up_enabled ? 1 : 0

  project = var.project
  service = "cloudscheduler.googleapis.com"

  disable_on_destroy         = false
  disable_dependent_services = false
}

resource "google_cloud_run_v2_job" "catch_up" {
  count = local.catch_up_enabled ? 1 : 0

  project             = var.project
  location            = var.region
  name                = local.catch_up_name
  labels              = local.labels
  deletion_protection = var.deletion_protection

  template {
    labels      = local.labels
    task_count  = 1
    parallelism = 1

    template {
      service_account = google_service_account.relay.email
      # At most RELAY_CATCH_UP_MAX_PAGES pages (default 200), and the IdP's
      # rate-limit waits (up to a minute, five times).
      timeout     = "1800s"
      max_retries = 0

      containers {
        name  = "catch-up"
        image = var.image
        args  = ["catch-up"]

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
        # The service's store: the checkpoint and the hook's idempotency
        # keys are in its collection.
        env {
          name  = "GOOGLE_CLOUD_PROJECT"
          value = var.project
        }
        env {
          name  = "RELAY_FIRESTORE_DATABASE"
          value = var.create_firestore_database ? google_firestore_database.relay[0].name : local.firestore_database
        }
        env {
          name  = "RELAY_FIRESTORE_COLLECTION"
          value = google_firestore_field.expires_at.collection
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
        # GROUP_FILTER and the RELAY_CATCH_UP_* settings.
        dynamic "env" {
          for_each = merge(local.optional_plain_env, local.catch_up_env)
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
      condition     = local.catch_up_source == "okta" ? (var.okta_org_url != null && var.okta_api_token != null) : local.catch_up_source == "entra" ? local.entra_catch_up_ready : (var.auth0_domain != null && var.auth0_client_id != null && var.auth0_client_secret != null)
      error_message = "Catch-up reads the IdP's log API: set okta_org_url and okta_api_token (catch_up_source okta; scope okta.logs.read), auth0_domain, auth0_client_id and auth0_client_secret (auth0; scope read:logs), or hook_sources with \"entra\" and entra_tenant_id, entra_client_id, entra_client_state and entra_client_secret (or entra_client_certificate with entra_credential = \"certificate\") (entra; Graph permissions User.Read.All and Group.Read.All, AuditLog.Read.All with entra_audit_log)."
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_secret_manager_secret_iam_member.relay,
    google_project_iam_member.relay_firestore,
  ]
}

# The identity Cloud Scheduler calls the Cloud Run Admin API with: it may
# run this job and nothing else.
resource "google_service_account" "catch_up_trigger" {
  count = local.catch_up_enabled ? 1 : 0

  project      = var.project
  account_id   = "${substr(var.name, 0, 22)}-catchup"
  display_name = "idp-duo-relay (${var.name}) catch-up trigger"
  description  = "Starts the ${local.catch_up_name} Cloud Run job on its schedule."

  depends_on = [google_project_service.enabled]
}

resource "google_cloud_run_v2_job_iam_member" "catch_up_trigger" {
  count = local.catch_up_enabled ? 1 : 0

  project  = google_cloud_run_v2_job.catch_up[0].project
  location = google_cloud_run_v2_job.catch_up[0].location
  name     = google_cloud_run_v2_job.catch_up[0].name
  role     = "roles/run.invoker"
  member   = google_service_account.catch_up_trigger[0].member
}

resource "google_cloud_scheduler_job" "catch_up" {
  count = local.catch_up_enabled ? 1 : 0

  project     = var.project
  region      = var.region
  name        = local.catch_up_name
  description = "idp-duo-relay ${var.name}: catch up from the ${local.catch_up_source} event log"
  schedule    = var.catch_up_schedule
  time_zone   = "Etc/UTC"

  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/projects/${var.project}/locations/${var.region}/jobs/${google_cloud_run_v2_job.catch_up[0].name}:run"

    oauth_token {
      service_account_email = google_service_account.catch_up_trigger[0].email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [
    google_project_service.catch_up,
    google_cloud_run_v2_job_iam_member.catch_up_trigger,
  ]
}

# Catch-up lines whose checkpoint lag is above the threshold (one count per
# such run).
resource "google_logging_metric" "catch_up_lagging" {
  count = local.catch_up_enabled ? 1 : 0

  project     = var.project
  name        = "${var.name}-catch-up-lagging"
  description = "Catch-up runs of ${var.name} whose checkpoint_lag_s was above ${var.catch_up_lag_alarm_seconds} s (message=\"catch_up\")."
  filter      = local.catch_up_lag_filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.name} catch-up runs lagging"
  }

  depends_on = [google_project_service.enabled]
}

# As for the service's metrics (monitoring.tf, time_sleep.log_metrics): the
# alert policy reads the new metric's type from here, after a wait.
resource "time_sleep" "catch_up_metrics" {
  count = local.catch_up_enabled ? 1 : 0

  create_duration = var.log_metric_wait

  triggers = {
    lagging_type = "logging.googleapis.com/user/${google_logging_metric.catch_up_lagging[0].name}"
    metric_id    = google_logging_metric.catch_up_lagging[0].id
  }
}

# An execution that did not end well (the job exits non-zero). The job's
# line with jsonPayload.message="catch_up" has the status and error.
resource "google_monitoring_alert_policy" "catch_up_failed" {
  count = local.catch_up_enabled ? 1 : 0

  project               = var.project
  display_name          = "${var.name}: scheduled catch-up failed"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "failed catch-up executions > 0"

    condition_threshold {
      filter          = "metric.type=\"run.googleapis.com/job/completed_execution_count\" AND resource.type=\"cloud_run_job\" AND resource.labels.job_name=\"${local.catch_up_name}\" AND metric.labels.result=\"failed\""
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
    subject   = "${var.name}: scheduled catch-up failed"
    content   = <<-EOT
      The ${local.catch_up_name} job exited non-zero: 2 an event failed (Duo
      429/5xx; the checkpoint stays before its page), 4 reading the
      ${local.catch_up_source} log failed (${local.catch_up_denied}), 6 the checkpoint or the store failed, 1 bad
      configuration. The next run retries from the same checkpoint.

      Logs Explorer (project ${var.project}):

          resource.type="cloud_run_job"
          resource.labels.job_name="${local.catch_up_name}"
          jsonPayload.message=("catch_up" OR "event")

      README "Catch-up".
    EOT
  }
}

# The log has not been read to its end for catch_up_lag_alarm_seconds: runs
# keep failing or stopping at their page budget (status behind).
resource "google_monitoring_alert_policy" "catch_up_lag" {
  count = local.catch_up_enabled ? 1 : 0

  project               = var.project
  display_name          = "${var.name}: catch-up lagging behind the IdP's log"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "catch-up runs with checkpoint_lag_s > ${var.catch_up_lag_alarm_seconds}"

    condition_threshold {
      filter          = "metric.type=\"${time_sleep.catch_up_metrics[0].triggers.lagging_type}\" AND resource.type=\"cloud_run_job\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "900s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name}: catch-up is lagging behind the IdP's log"
    content   = <<-EOT
      A catch-up run reported that the ${local.catch_up_source} log was last read
      to its end more than ${var.catch_up_lag_alarm_seconds} s ago
      (checkpoint_lag_s). ${local.catch_up_delayed} status behind: raise
      RELAY_CATCH_UP_MAX_PAGES or run more often; failed runs: see the
      catch-up-failed alert.

      Logs Explorer (project ${var.project}):

          ${local.catch_up_lag_filter}

      README "Catch-up".
    EOT
  }
}

output "catch_up_job_name" {
  description = "The scheduled catch-up's Cloud Run job (null when catch_up_enabled is false). Run it by hand: gcloud run jobs execute <name> --region <region>"
  value       = local.catch_up_enabled ? google_cloud_run_v2_job.catch_up[0].name : null
}
