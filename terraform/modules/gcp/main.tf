# The relay on Cloud Run: one service (crates/relay-gcp), its own service
# account, secrets in Secret Manager, idempotency in Firestore, logs in a
# dedicated bucket, a log-based alert, and (queue_enabled) Pub/Sub.

locals {
  labels = merge({ app = "idp-duo-relay", "managed-by" = "terraform" }, var.labels)

  # A named database by default: creating "(default)" fails when the project
  # already has one (Firestore or Datastore mode, e.g. from App Engine), and a
  # database of its own keeps the relay's data and IAM apart from the rest of
  # the project. Database ids need 4 characters; `name` may have 3.
  firestore_database   = coalesce(var.firestore_database, length(var.name) >= 4 ? var.name : "${var.name}-db")
  firestore_collection = "relay-idempotency"
  firestore_location   = coalesce(var.firestore_location, var.region)

  # Service account ids are 6-30 characters.
  service_account_id = "${substr(var.name, 0, 25)}-run"

  # Secret Manager holds every secret; Cloud Run resolves them into the
  # environment variables of the same name at instance start.
  secret_values = {
    DUO_SKEY                 = var.duo_skey
    OKTA_AUTH_SECRET         = var.okta_auth_secret
    AUTH0_AUTH_SECRET        = var.auth0_auth_secret
    OKTA_API_TOKEN           = var.okta_api_token
    AUTH0_CLIENT_SECRET      = var.auth0_client_secret
    ENTRA_CLIENT_STATE       = var.entra_client_state
    ENTRA_CLIENT_SECRET      = var.entra_client_secret
    ENTRA_CLIENT_CERTIFICATE = var.entra_client_certificate
  }

  # Which secrets exist (the for_each keys in secrets.tf and the env blocks
  # in run.tf) is decided from variables known at plan time, never from the
  # secret values: a hook secret generated in the same apply
  # (random_password) is unknown while planning, and a key set built from it
  # fails with "Invalid for_each argument". DUO_SKEY always; the hook secret
  # of each IdP in hook_sources (for "entra" the clientState and the client
  # secret or certificate, as the variable entra_credential says); an API secret when its variable is set.
  # nonsensitive() only unmarks whether an optional secret is set, which is
  # no secret: the plan names the secret resource anyway.
  secret_env = toset(concat(
    ["DUO_SKEY"],
    contains(var.hook_sources, "okta") ? ["OKTA_AUTH_SECRET"] : [],
    contains(var.hook_sources, "auth0") ? ["AUTH0_AUTH_SECRET"] : [],
    local.entra_enabled ? ["ENTRA_CLIENT_STATE", local.entra_credential_env] : [],
    nonsensitive(var.okta_api_token != null) ? ["OKTA_API_TOKEN"] : [],
    nonsensitive(var.auth0_client_secret != null) ? ["AUTH0_CLIENT_SECRET"] : [],
  ))
  # DUO_SKEY is always set and gets its own env block in run.tf.
  optional_secret_env = setsubtract(local.secret_env, ["DUO_SKEY"])

  # Duo's budget is the account's and each instance paces itself: the
  # service runs at most max_instances, and the scheduled reconcile and
  # catch-up jobs are one more process each.
  duo_rate_per_instance = max(6, floor(var.duo_rate_per_minute / (var.max_instances + (var.reconcile_schedule != null ? 1 : 0) + (var.catch_up_enabled ? 1 : 0))))

  # Plain (not secret) variables: each instance's Duo pace, and the
  # optional ones, set only when given. The keys
  # are decided from variables, never from resource attributes: the push
  # account's email is unknown until apply, and a `v != null` filter over it
  # would make the whole map (every env block in the plan) unknown.
  optional_plain_env = merge(
    { DUO_RATE_PER_MINUTE = tostring(local.duo_rate_per_instance) },
    {
      for k, v in {
        OKTA_ORG_URL    = var.okta_org_url
        AUTH0_DOMAIN    = var.auth0_domain
        AUTH0_CLIENT_ID = var.auth0_client_id
        GROUP_FILTER    = var.group_filter
      } : k => v if v != null
    },
    # Entra ID's tenant and client ids (entra.tf).
    local.entra_env,
    # Who and what is synced (user_sync.tf).
    local.user_sync_env,
    # Queue mode (queue.tf): where accepted events and dead letters go,
    # what `dlq` reads, and whose push tokens the worker route accepts.
    var.queue_enabled ? {
      RELAY_MODE                            = "queue"
      RELAY_PUBSUB_TOPIC                    = one(google_pubsub_topic.events[*].name)
      RELAY_PUBSUB_DEAD_LETTER_TOPIC        = one(google_pubsub_topic.dead_letter[*].name)
      RELAY_PUBSUB_DEAD_LETTER_SUBSCRIPTION = one(google_pubsub_subscription.dead_letter[*].name)
      RELAY_PUSH_AUDIENCE                   = local.push_audience
      RELAY_PUSH_SERVICE_ACCOUNT            = one(google_service_account.push[*].email)
      RELAY_QUEUE_MAX_ATTEMPTS              = tostring(var.queue_max_attempts)
    } : {},
  )

  apis = toset(concat(
    [
      "run.googleapis.com",
      "iam.googleapis.com",
      "secretmanager.googleapis.com",
      "firestore.googleapis.com",
      "logging.googleapis.com",
      "monitoring.googleapis.com",
    ],
    var.queue_enabled ? ["pubsub.googleapis.com"] : [],
  ))

  # This service's log entries (stdout JSON lines become jsonPayload).
  service_log_filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${var.name}\"",
  ])
}

resource "google_project_service" "enabled" {
  for_each = local.apis

  project = var.project
  service = each.value

  # Other workloads in the project may use these APIs: never switch them off.
  disable_on_destroy         = false
  disable_dependent_services = false
}

# The identity the Cloud Run instances run as: it can read this module's
# secrets and use this module's Firestore database, nothing else.
resource "google_service_account" "relay" {
  project      = var.project
  account_id   = local.service_account_id
  display_name = "idp-duo-relay (${var.name}) Cloud Run service"
  description  = "Runs the ${var.name} Cloud Run service: reads its Secret Manager secrets and its Firestore database."

  depends_on = [google_project_service.enabled]
}
