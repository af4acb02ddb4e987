# The relay: crates/relay-gcp as a Cloud Run (v2) service. It listens on
# $PORT (Cloud Run sets it from container_port), serves /okta, /auth0,
# /auth0/logs, /entra and /healthz, and finishes requests in flight on SIGTERM.

resource "google_cloud_run_v2_service" "relay" {
  project             = var.project
  location            = var.region
  name                = var.name
  description         = "idp-duo-relay: keeps Duo in sync with Okta/Auth0 (image ${var.image})"
  labels              = local.labels
  deletion_protection = var.deletion_protection

  # IdPs call the hook from the public internet; every delivery is
  # authenticated by the relay itself (shared secret, optional signature).
  ingress              = "INGRESS_TRAFFIC_ALL"
  invoker_iam_disabled = var.invoker_iam_disabled

  template {
    service_account                  = google_service_account.relay.email
    labels                           = local.labels
    timeout                          = "30s"
    max_instance_request_concurrency = 80

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    containers {
      name  = "relay"
      image = var.image

      ports {
        name           = "http1"
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        # Billed per request; no CPU between requests (sync mode does all
        # its work inside the request).
        cpu_idle          = true
        startup_cpu_boost = true
      }

      startup_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds    = 1
        timeout_seconds   = 1
        failure_threshold = 10
      }

      # Exactly the variables relay-gcp reads (README "GCP Cloud Run");
      # required-env.json lists those it cannot start without.
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
      env {
        name  = "OKTA_AUTH_HEADER"
        value = var.okta_auth_header
      }
      env {
        name  = "DEPROVISION_ACTION"
        value = var.deprovision_action
      }
      env {
        name  = "RELAY_LOG_FORMAT"
        value = "json"
      }

      # OKTA_AUTH_SECRET, AUTH0_AUTH_SECRET, OKTA_API_TOKEN, AUTH0_CLIENT_SECRET,
      # ENTRA_CLIENT_STATE, ENTRA_CLIENT_SECRET or ENTRA_CLIENT_CERTIFICATE when set: from Secret Manager, pinned to the version created here.
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

      # DUO_RATE_PER_MINUTE; OKTA_ORG_URL, AUTH0_DOMAIN, AUTH0_CLIENT_ID,
      # GROUP_FILTER, RELAY_MODE and the Pub/Sub names when set.
      dynamic "env" {
        for_each = local.optional_plain_env
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = local.duo_skey_shape_ok
      error_message = "duo_skey must be the Admin API secret key (40 characters), not empty."
    }
    precondition {
      condition     = local.okta_auth_secret_shape_ok
      error_message = "okta_auth_secret must be at least 16 printable ASCII characters (the relay refuses shorter); for a rotation give at most 3 comma-separated values, each at least 16 characters."
    }
    precondition {
      condition     = local.auth0_auth_secret_shape_ok
      error_message = "auth0_auth_secret must be at least 16 printable ASCII characters (the relay refuses shorter); for a rotation give at most 3 comma-separated values, each at least 16 characters."
    }
    precondition {
      condition     = local.okta_api_token_shape_ok
      error_message = "okta_api_token must not be empty: leave it unset (null) instead."
    }
    precondition {
      condition     = local.auth0_client_secret_shape_ok
      error_message = "auth0_client_secret must not be empty: leave it unset (null) instead."
    }
    precondition {
      condition     = local.entra_client_state_shape_ok
      error_message = "entra_client_state must be 16-128 printable ASCII characters (the relay refuses shorter, Graph allows at most 128); for a rotation at most 3 comma-separated values."
    }
    precondition {
      condition     = contains(var.hook_sources, "okta") == (var.okta_auth_secret != null) && contains(var.hook_sources, "auth0") == (var.auth0_auth_secret != null) && local.entra_enabled == (var.entra_client_state != null)
      error_message = "hook_sources names the IdPs that deliver here, and each needs its secret: okta_auth_secret for \"okta\", auth0_auth_secret for \"auth0\", entra_client_state for \"entra\"; set no hook secret for an IdP it does not name (it would be left out)."
    }
    precondition {
      condition     = local.entra_enabled == (var.entra_tenant_id != null && var.entra_client_id != null && local.entra_credential_given)
      error_message = "hook_sources \"entra\" needs entra_tenant_id, entra_client_id and a Graph credential: entra_client_secret (entra_credential = \"secret\", the default; terraform/idp/entra outputs all three) or entra_client_certificate (entra_credential = \"certificate\"). Every notification is read from Graph with them; without \"entra\" set none of them."
    }
    precondition {
      condition     = local.entra_certificate_shape_ok
      error_message = "entra_client_certificate must be PEM text holding both the certificate (-----BEGIN CERTIFICATE-----) and its unencrypted RSA private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----), e.g. cat relay.key relay.crt; the relay reads no encrypted or EC key."
    }
    precondition {
      condition     = local.entra_credential_alone
      error_message = "Set one Graph credential, not both: entra_client_secret (entra_credential = \"secret\", the default) or entra_client_certificate (entra_credential = \"certificate\"); the relay refuses ENTRA_CLIENT_SECRET and ENTRA_CLIENT_CERTIFICATE together. entra_credential decides which is stored: set it to \"certificate\" with a certificate."
    }
    precondition {
      condition     = var.entra_notification_url == null || local.entra_enabled
      error_message = "entra_notification_url is where Graph delivers Entra ID notifications: set it only with \"entra\" in hook_sources."
    }
    precondition {
      condition     = !var.entra_audit_log || (var.catch_up_enabled && local.catch_up_source == "entra")
      error_message = "entra_audit_log is read by the scheduled catch-up of Entra ID: set catch_up_enabled = true with catch_up_source \"entra\" (the default when \"entra\" is the only IdP with API settings)."
    }
  }

  depends_on = [
    google_project_service.enabled,
    # The instances read these at start: grant before the first revision.
    google_secret_manager_secret_iam_member.relay,
    google_project_iam_member.relay_firestore,
  ]
}

# Public invoker on this service only (not project-wide). Okta and Auth0
# cannot mint Google ID tokens, so Cloud Run's IAM check cannot authenticate
# them; the relay authenticates every delivery itself and answers 401 without
# a single Duo call otherwise. With invoker_iam_disabled the check is off and
# no binding is needed.
resource "google_cloud_run_v2_service_iam_member" "public_invoker" {
  # CKV_GCP_102 (public Cloud Run) checks only the v1 IAM resources today; the
  # skip states the intent should it cover v2.
  #checkov:skip=CKV_GCP_102:Webhook endpoint for Okta/Auth0, which cannot present Google credentials; the relay authenticates every delivery (shared secret, optional Standard Webhooks signature).
  count = var.invoker_iam_disabled ? 0 : 1

  project  = google_cloud_run_v2_service.relay.project
  location = google_cloud_run_v2_service.relay.location
  name     = google_cloud_run_v2_service.relay.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}
