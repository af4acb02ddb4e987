locals {
  service_url = google_cloud_run_v2_service.relay.uri
  # Logs Explorer filter for the per-event lines; add
  # jsonPayload.subject:"jane.doe@example.com" or severity>=WARNING.
  events_filter = "${local.service_log_filter}\njsonPayload.message=\"event\""
}

output "service_url" {
  description = "Base URL of the Cloud Run service (https://<name>-<hash>.<region>.run.app)."
  value       = local.service_url
}

output "okta_hook_url" {
  description = "Okta event hook URL (register with header okta_auth_header = okta_auth_secret)."
  value       = "${local.service_url}/okta"
}

output "auth0_events_url" {
  description = "Auth0 Event Streams webhook URL (bearer token = auth0_auth_secret)."
  value       = "${local.service_url}/auth0"
}

output "auth0_logs_url" {
  description = "Auth0 Log Streams custom webhook URL (Authorization = auth0_auth_secret)."
  value       = "${local.service_url}/auth0/logs"
}

output "entra_notification_url" {
  description = "The Microsoft Graph notification URL: entra_notification_url if set, else the relay's /entra route. The scheduled catch-up (catch_up_source entra) subscribes and renews at it; `idp-duo-relay entra subscribe --url` by hand must use the same string (Graph's subscriptions are matched on it)."
  value       = local.entra_notification_url
}

output "healthz_url" {
  description = "Health check URL ({\"status\":\"ok\"})."
  value       = "${local.service_url}/healthz"
}

output "service_name" {
  description = "Cloud Run service name."
  value       = google_cloud_run_v2_service.relay.name
}

output "service_account_email" {
  description = "Service account the Cloud Run service runs as."
  value       = google_service_account.relay.email
}

output "firestore_database" {
  description = "Firestore database holding the idempotency records (RELAY_FIRESTORE_DATABASE)."
  value       = var.create_firestore_database ? google_firestore_database.relay[0].name : local.firestore_database
}

output "firestore_collection" {
  description = "Firestore collection (group) of the idempotency records, with a TTL policy on expires_at."
  value       = google_firestore_field.expires_at.collection
}

output "secret_ids" {
  description = "Secret Manager secret ids by environment variable (ids only, never values). Add a version to rotate a value outside Terraform; see the module's rotation notes."
  value       = { for k, s in google_secret_manager_secret.relay : k => s.secret_id }
}

output "log_bucket" {
  description = "Log bucket holding this service's logs for log_retention_days."
  value       = google_logging_project_bucket_config.relay.id
}

output "logs_filter" {
  description = "Cloud Logging filter selecting the relay's per-event lines."
  value       = local.events_filter
}

output "logs" {
  description = "Where to read the relay's logs, with a starter query."
  value       = <<-EOT
    Cloud Logging, project ${var.project} — Logs Explorer:
      https://console.cloud.google.com/logs/query;query=${replace(urlencode(local.events_filter), "+", "%20")}?project=${var.project}
    (also kept ${var.log_retention_days} days in log bucket ${google_logging_project_bucket_config.relay.id}; set the Logs Explorer scope to that bucket's _AllLogs view to search further back than the _Default bucket keeps)
    Filter:
      ${replace(local.events_filter, "\n", "\n      ")}
    Failures only: add severity>=WARNING. One user: add jsonPayload.subject:"jane.doe@example.com".
  EOT
}

output "pubsub_topic" {
  description = "Pub/Sub topic for queue mode (null unless queue_enabled)."
  value       = one(google_pubsub_topic.events[*].id)
}

output "pubsub_push_service_account" {
  description = "Queue mode: the service account Pub/Sub pushes as (RELAY_PUSH_SERVICE_ACCOUNT); null unless queue_enabled."
  value       = one(google_service_account.push[*].email)
}

output "pubsub_dead_letter_subscription" {
  description = "Pub/Sub subscription holding dead letters (null unless queue_enabled)."
  value       = one(google_pubsub_subscription.dead_letter[*].id)
}
