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

locals {
  # Every alert policy notifies these: the alert_email channel and any given.
  notification_channels = concat(google_monitoring_notification_channel.email[*].id, var.notification_channels)
}

resource "google_monitoring_alert_policy" "failed_events" {
  project               = var.project
  display_name          = "${var.name}: events failed to apply in Duo"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "failed events > 0 in 5 min"

    condition_threshold {
      filter          = "metric.type=\"${time_sleep.log_metrics.triggers.failed_events_type}\" AND resource.type=\"cloud_run_revision\""
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
  notification_channels = local.notification_channels
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
    content   = "Events the relay gave up on (each with its reason: a permanent failure, an unreadable message, or ${var.queue_max_attempts} failed attempts) wait in the Pub/Sub subscription ${google_pubsub_subscription.dead_letter[0].name} (kept 7 days). Read them (relay-gcp dlq list), fix the cause, replay them (relay-gcp dlq replay)."
  }
}

# ---------------------------------------------------------------------------
# Log-based metrics from the per-event summary line and the dead-letter line
# (README "Metrics and alarms"; the fields are listed in
# terraform/relay-metrics.json, generated from crates/relay-server). No agent:
# Cloud Logging counts the entries as they arrive.
# ---------------------------------------------------------------------------

locals {
  event_lines_filter       = join(" AND ", [local.service_log_filter, "jsonPayload.message=\"event\""])
  dead_letter_lines_filter = join(" AND ", [local.service_log_filter, "jsonPayload.message=\"dead_letter\""])
}

# Every event, by outcome and source: applied, unchanged, duplicate, skipped,
# failed_transient, failed_permanent.
resource "google_logging_metric" "events" {
  project     = var.project
  name        = "${var.name}-events"
  description = "Events the ${var.name} relay handled (message=\"event\"), by outcome and source."
  filter      = local.event_lines_filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.name} events"

    labels {
      key         = "outcome"
      value_type  = "STRING"
      description = "applied, unchanged, duplicate, skipped, failed_transient or failed_permanent"
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

# Duo Admin API requests per event (retries included), as a distribution:
# its mean is calls per event, count × mean the calls made (the Duo budget).
resource "google_logging_metric" "duo_calls" {
  project         = var.project
  name            = "${var.name}-duo-calls"
  description     = "Duo Admin API requests per event of the ${var.name} relay (field duo_calls, retries included)."
  filter          = local.event_lines_filter
  value_extractor = "EXTRACT(jsonPayload.duo_calls)"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "${var.name} Duo calls per event"

    labels {
      key         = "source"
      value_type  = "STRING"
      description = "okta, auth0 or auth0-logs"
    }
  }

  label_extractors = {
    source = "EXTRACT(jsonPayload.source)"
  }

  # Buckets: 0, 1, 2-3, 4-7, … 128-255, 256+ calls.
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 8
      growth_factor      = 2
      scale              = 1
    }
  }

  depends_on = [google_project_service.enabled]
}

# Events that met at least one Duo 429 (field duo_throttled > 0). A counter,
# not a distribution of duo_throttled, so an alert can sum it.
resource "google_logging_metric" "duo_throttled_events" {
  project     = var.project
  name        = "${var.name}-duo-throttled-events"
  description = "Events of the ${var.name} relay that Duo answered 429 at least once (duo_throttled > 0)."
  filter      = "${local.event_lines_filter} AND jsonPayload.duo_throttled>0"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.name} events throttled by Duo"
  }

  depends_on = [google_project_service.enabled]
}

# Queue mode: one per message the relay moved to dead letters.
resource "google_logging_metric" "dead_letters" {
  project     = var.project
  name        = "${var.name}-dead-letters"
  description = "Messages the ${var.name} relay gave up on and moved to dead letters (message=\"dead_letter\"), by source."
  filter      = local.dead_letter_lines_filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${var.name} dead letters"

    labels {
      key         = "source"
      value_type  = "STRING"
      description = "okta, auth0 or auth0-logs"
    }
  }

  label_extractors = {
    source = "EXTRACT(jsonPayload.source)"
  }

  depends_on = [google_project_service.enabled]
}

# Cloud Monitoring learns of a new log-based metric some time after Cloud
# Logging has created it, and until then refuses an alert policy on it:
# "Error 404: Cannot find metric(s) that match type = ... If a metric was
# created recently, it could take up to 10 minutes to become available."
# (hashicorp/terraform-provider-google#11102, open since 2022). Referring to
# the metric only orders the two calls; this waits log_metric_wait between
# them. The policies read their metric types from the triggers, so none can
# be created before the wait ends; a metric replaced later (its id changes)
# waits again. The metrics depend on nothing but the enabled APIs, so the
# wait runs alongside the Cloud Run service and Firestore database, and
# later applies do not wait at all.
resource "time_sleep" "log_metrics" {
  create_duration = var.log_metric_wait

  triggers = {
    failed_events_type        = "logging.googleapis.com/user/${google_logging_metric.failed_events.name}"
    duo_throttled_events_type = "logging.googleapis.com/user/${google_logging_metric.duo_throttled_events.name}"
    dead_letters_type         = "logging.googleapis.com/user/${google_logging_metric.dead_letters.name}"
    metric_ids = join(",", [
      google_logging_metric.failed_events.id,
      google_logging_metric.duo_throttled_events.id,
      google_logging_metric.dead_letters.id,
    ])
  }
}

# Duo kept rate-limiting for 15 minutes (README runbook: 429 storm).
resource "google_monitoring_alert_policy" "duo_throttled" {
  project               = var.project
  display_name          = "${var.name}: Duo rate-limiting (429) sustained"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "events throttled by Duo >= ${var.duo_throttled_alert_threshold} per 5 min for 15 min"

    condition_threshold {
      filter          = "metric.type=\"${time_sleep.log_metrics.triggers.duo_throttled_events_type}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GE"
      threshold_value = var.duo_throttled_alert_threshold
      duration        = "900s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
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
    subject   = "${var.name}: Duo is rate-limiting the relay"
    content   = <<-EOT
      Duo answered 429 to the relay's Admin API calls for 15 minutes
      (${google_logging_metric.duo_throttled_events.name}: events with
      duo_throttled > 0). Usually a bulk change in the IdP, or another Admin
      API client sharing Duo's limit. Events fail transiently: in sync mode the
      IdP is answered 503 and retries; queue mode retries with backoff.

      Logs Explorer (project ${var.project}):

          ${local.event_lines_filter}
          jsonPayload.duo_throttled>0

      Runbook: README "Operating it" → 429 storm.
    EOT
  }
}

# Queue mode: the relay moved messages to dead letters (README runbook: dead
# letters piling up). The Pub/Sub dead_letters policy above watches the
# subscription; this one counts the relay's own dead_letter lines.
resource "google_monitoring_alert_policy" "dead_letter_events" {
  count = var.queue_enabled ? 1 : 0

  project               = var.project
  display_name          = "${var.name}: events moved to dead letters"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "dead_letter lines > 0 in 5 min"

    condition_threshold {
      filter          = "metric.type=\"${time_sleep.log_metrics.triggers.dead_letters_type}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.source"]
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
    subject   = "${var.name}: events moved to dead letters"
    content   = <<-EOT
      The relay gave up on queued events and moved them to dead letters; each
      left a dead_letter line with its reason and attempts.

      Logs Explorer (project ${var.project}):

          ${local.dead_letter_lines_filter}

      Runbook: README "Operating it" → dead letters piling up. Fix the cause,
      then replay the dead letters.
    EOT
  }
}
