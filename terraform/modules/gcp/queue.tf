# Durable delivery (queue mode), created only with queue_enabled = true.
# Queue mode is a later issue: today relay-gcp ignores RELAY_MODE and the
# Pub/Sub names and applies every event in the request. The resources are
# here so the layout is settled: accepted events go to `events`, a worker
# pulls `worker` (ordering enabled, so messages with the same ordering key —
# e.g. one user — arrive in order); after 5 failed deliveries a message moves
# to `dead-letter`, whose subscription keeps it 7 days for replay.

data "google_project" "this" {
  count = var.queue_enabled ? 1 : 0

  project_id = var.project
}

locals {
  # Pub/Sub's service agent moves messages to the dead-letter topic.
  pubsub_service_agent = var.queue_enabled ? "serviceAccount:service-${data.google_project.this[0].number}@gcp-sa-pubsub.iam.gserviceaccount.com" : null
}

resource "google_pubsub_topic" "events" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption; events carry IdP user ids and names only, never secrets. Add kms_key_name in a fork if policy requires CMEK.
  count = var.queue_enabled ? 1 : 0

  project = var.project
  name    = "${var.name}-events"
  labels  = local.labels

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption; see the events topic.
  count = var.queue_enabled ? 1 : 0

  project = var.project
  name    = "${var.name}-dead-letter"
  labels  = local.labels

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_subscription" "worker" {
  count = var.queue_enabled ? 1 : 0

  project = var.project
  name    = "${var.name}-worker"
  topic   = google_pubsub_topic.events[0].id
  labels  = local.labels

  enable_message_ordering    = true
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[0].id
    max_delivery_attempts = 5
  }

  # Never delete the subscription for inactivity (the default is 31 days,
  # and no worker pulls until queue mode exists).
  expiration_policy {
    ttl = ""
  }
}

# Holds dead letters: a topic without a subscription drops what it receives.
resource "google_pubsub_subscription" "dead_letter" {
  count = var.queue_enabled ? 1 : 0

  project = var.project
  name    = "${var.name}-dead-letter"
  topic   = google_pubsub_topic.dead_letter[0].id
  labels  = local.labels

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}

# The relay publishes accepted events and pulls them as the worker.
resource "google_pubsub_topic_iam_member" "relay_publisher" {
  count = var.queue_enabled ? 1 : 0

  project = var.project
  topic   = google_pubsub_topic.events[0].name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.relay.member
}

resource "google_pubsub_subscription_iam_member" "relay_subscriber" {
  count = var.queue_enabled ? 1 : 0

  project      = var.project
  subscription = google_pubsub_subscription.worker[0].name
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.relay.member
}

# Dead-lettering needs Pub/Sub's own service agent to publish to the
# dead-letter topic and to acknowledge on the worker subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  count = var.queue_enabled ? 1 : 0

  project = var.project
  topic   = google_pubsub_topic.dead_letter[0].name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  count = var.queue_enabled ? 1 : 0

  project      = var.project
  subscription = google_pubsub_subscription.worker[0].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
