# Durable delivery (queue mode), created only with queue_enabled = true
# (README "GCP Cloud Run": queue mode). The relay (RELAY_MODE=queue) answers
# the IdP once an event is published to `events`, with the event's subject
# (user or group) as ordering key. The `worker` push subscription delivers
# each message to POST /pubsub/push on the same service with an OIDC token
# of the `push` service account, one message at a time per subject, and the
# relay answers:
#   2xx  applied / nothing to do / a duplicate — or given up on, in which
#        case the relay itself published the dead letter, with its reason,
#        to `dead-letter` (after RELAY_QUEUE_MAX_ATTEMPTS, or at once for a
#        permanent failure or an unreadable message);
#   5xx  retry: Pub/Sub redelivers with the retry policy's backoff.
# The subscription's own dead-letter policy, two attempts after the relay's
# limit, only catches a message the relay never answered (crash, timeout).
# `dead-letter`'s subscription keeps dead letters 7 days for
# `relay-gcp dlq list|show|replay`.

data "google_project" "this" {
  count = var.queue_enabled ? 1 : 0

  project_id = var.project
}

locals {
  # Pub/Sub's service agent: forwards to the dead-letter topic and signs
  # the push tokens.
  pubsub_service_agent = var.queue_enabled ? "serviceAccount:service-${data.google_project.this[0].number}@gcp-sa-pubsub.iam.gserviceaccount.com" : null

  # The push token's audience (RELAY_PUSH_AUDIENCE). Any string Pub/Sub puts
  # in `aud` works; the service URL would make the service depend on itself.
  push_audience = "idp-duo-relay:${var.project}:${var.name}:pubsub-push"

  # Pub/Sub's backstop comes after the relay's own limit.
  pubsub_max_delivery_attempts = min(var.queue_max_attempts + 2, 100)
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

# The identity Pub/Sub pushes as: the relay accepts a push only with this
# account's OIDC token for local.push_audience (RELAY_PUSH_SERVICE_ACCOUNT).
# It has no role of its own.
resource "google_service_account" "push" {
  count = var.queue_enabled ? 1 : 0

  project      = var.project
  account_id   = "${substr(var.name, 0, 24)}-push"
  display_name = "idp-duo-relay (${var.name}) Pub/Sub push"
  description  = "Pub/Sub signs the ${var.name}-worker push requests to the ${var.name} Cloud Run service with this account's OIDC token."

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_subscription" "worker" {
  count = var.queue_enabled ? 1 : 0

  project = var.project
  name    = "${var.name}-worker"
  topic   = google_pubsub_topic.events[0].id
  labels  = local.labels

  # One subject's events are pushed one at a time, in publish order.
  enable_message_ordering = true
  # How long Pub/Sub waits for the push's answer (Cloud Run's request
  # timeout is shorter).
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  push_config {
    push_endpoint = "${google_cloud_run_v2_service.relay.uri}/pubsub/push"

    oidc_token {
      service_account_email = google_service_account.push[0].email
      audience              = local.push_audience
    }
  }

  # Between attempts of a transient failure (Duo 429/5xx): 150 s doubling
  # to 10 min; with the default 10 attempts a message is retried for about
  # 75 minutes before the relay dead-letters it. The minimum must exceed
  # the idempotency claim timeout (120 s, relay_core::store::CLAIM_TIMEOUT):
  # a delivery cut off mid-apply (instance killed, deadline passed) leaves
  # its claim behind, and a redelivery that finds it takes the event for a
  # duplicate in progress.
  retry_policy {
    minimum_backoff = "150s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[0].id
    max_delivery_attempts = local.pubsub_max_delivery_attempts
  }

  # Never delete the subscription for inactivity (the default is 31 days).
  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_pubsub_topic_iam_member.dead_letter_publisher,
    google_service_account_iam_member.push_token_creator,
  ]
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

# The relay publishes accepted (and replayed) events, and its dead letters.
resource "google_pubsub_topic_iam_member" "relay_publisher" {
  count = var.queue_enabled ? 1 : 0

  project = var.project
  topic   = google_pubsub_topic.events[0].name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.relay.member
}

resource "google_pubsub_topic_iam_member" "relay_dead_letter_publisher" {
  count = var.queue_enabled ? 1 : 0

  project = var.project
  topic   = google_pubsub_topic.dead_letter[0].name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.relay.member
}

# `relay-gcp dlq` run as the service's account (a Cloud Run job with the
# same image and settings) reads the dead letters.
resource "google_pubsub_subscription_iam_member" "relay_dead_letter_subscriber" {
  count = var.queue_enabled ? 1 : 0

  project      = var.project
  subscription = google_pubsub_subscription.dead_letter[0].name
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.relay.member
}

# The push reaches the service even if its invoker IAM check is turned on
# (the relay checks the token itself either way).
resource "google_cloud_run_v2_service_iam_member" "push_invoker" {
  count = var.queue_enabled ? 1 : 0

  project  = var.project
  location = var.region
  name     = google_cloud_run_v2_service.relay.name
  role     = "roles/run.invoker"
  member   = google_service_account.push[0].member
}

# Pub/Sub's service agent mints the push account's OIDC tokens (needed in
# projects created before April 2021; granted on this account only).
resource "google_service_account_iam_member" "push_token_creator" {
  count = var.queue_enabled ? 1 : 0

  service_account_id = google_service_account.push[0].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
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
