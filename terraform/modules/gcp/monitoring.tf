# Logs: Cloud Run sends the relay's stdout (one JSON line per event, with
# `severity` and `message`) and its request logs to Cloud Logging. The
# project's _Default sink stores them in the _Default bucket (30 days unless
# changed for the whole project — this module does not touch project-wide
# settings). log_retention_days applies to a bucket of this service's own,
# fed by a sink that routes only this service's entries. Entries are then
# stored twice (the _Default copy expires on its own); exclude them from
# _Default yourself if that storage matters.

resource "google_logging_project_bucket_config" "relay" {
  project        = var.project
  location       = var.region
  bucket_id      = "${var.name}-logs"
  retention_days = var.log_retention_days
  description    = "Logs of the ${var.name} Cloud Run service, kept ${var.log_retention_days} days."

  depends_on = [google_project_service.enabled]
}

# A sink into a log bucket of the same project needs no IAM grant for its
# writer identity.
resource "google_logging_project_sink" "relay" {
  project                = var.project
  name                   = "${var.name}-logs"
  description            = "Routes the ${var.name} Cloud Run service's logs to its own bucket."
  destination            = "logging.googleapis.com/${google_logging_project_bucket_config.relay.id}"
  filter                 = local.service_log_filter
  unique_writer_identity = true
}

# One count per event line at WARNING or above: failed_transient and
# failed_permanent outcomes (README "The per-event log line").
resource "google_logging_metric" "failed_events" {
  project     = var.project
  name        = "${var.name}-failed-events"
  description = "Events the ${var.name} relay failed to apply (message=\"event\", severity>=WARNING), by outcome and source."
  filter = join(" AND ", [
    local.service_log_filter,
    "jsonPayload.message=\"event\"",
    "severity>=WARNING",
  ])

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.name} failed events"

    labels {
      key         = "outcome"
      value_type  = "STRING"
      description = "failed_transient or failed_permanent"
    }
    labels {
      key         = "source"
      value_type  = "STRING"
      description = "okta, auth0 or auth0-logs"
    }
  }

  label_extractors = {
    outcome = "EXTRACT(jsonPayload.outcome)"
    source  = "EXTRACT(jsonPayload.source)"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_monitoring_notification_channel" "email" {
  count = var.alert_email == null ? 0 : 1

  project      = var.project
  display_name = "${var.name} on-call"
  type         = "email"
  labels = {
    email_address = var.alert_email
  }
  user_labels = local.labels

  depends_on = [google_project_service.enabled]
}

resource "google_monitoring_alert_policy" "failed_events" {
  project               = var.project
  display_name          = "${var.name}: events failed to apply in Duo"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = google_monitoring_notification_channel.email[*].id
  user_labels           = local.labels

  conditions {
    display_name = "failed events > 0 in 5 min"

    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.failed_events.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.outcome"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name}: IdP events failed to apply in Duo"
    content   = <<-EOT
      The relay logged events with outcome failed_transient (Duo 429/5xx/timeout:
      the IdP was answered 503 and retries) or failed_permanent (Duo refused;
      retrying cannot help — the `detail` field says why).

      Logs Explorer (project ${var.project}):

          ${local.service_log_filter}
          jsonPayload.message="event"
          severity>=WARNING

      Runbook: README "Operating it" (429 storm, Duo 401/403, a user missing in Duo).
      Fix the cause, then re-send with `idp-duo-relay replay`.
    EOT
  }
}

resource "google_monitoring_alert_policy" "dead_letters" {
  count = var.queue_enabled ? 1 : 0

  project               = var.project
  display_name          = "${var.name}: dead letters waiting"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = google_monitoring_notification_channel.email[*].id
  user_labels           = local.labels

  conditions {
    display_name = "undelivered messages in ${google_pubsub_subscription.dead_letter[0].name} > 0"

    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=\"${google_pubsub_subscription.dead_letter[0].name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name}: dead letters waiting"
    content   = "Events failed 5 deliveries and wait in the Pub/Sub subscription ${google_pubsub_subscription.dead_letter[0].name} (kept 7 days). Read them, fix the cause, replay them."
  }
}
