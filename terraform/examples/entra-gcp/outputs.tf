output "entra_notification_url" {
  description = "The URL Microsoft Graph notifies, where the scheduled catch-up creates and renews the subscriptions (`idp-duo-relay entra subscribe --url` by hand must use this same string)."
  value       = module.relay.entra_notification_url
}

output "entra_subscribe" {
  description = "How the Graph subscriptions come to exist after the apply, and how to create them at once (README \"Entra ID\")."
  value       = var.catch_up_enabled ? local.entra_subscribe_scheduled : local.entra_subscribe_by_hand
}

locals {
  # The module names the catch-up Cloud Run job "<name>-catch-up"
  # (modules/gcp/catch_up.tf, local catch_up_name); Cloud Scheduler runs it
  # through the jobs.run API, which `gcloud run jobs execute` calls too.
  catch_up_job = "${var.name}-catch-up"

  entra_subscribe_scheduled = <<-EOT
    # The scheduled catch-up (catch_up_schedule, default every 15 minutes) creates the
    # subscriptions on its first run and renews them on every run. To run it now:
    curl -fsS "${module.relay.healthz_url}"     # the relay must answer first: Graph validates through it
    gcloud run jobs execute ${local.catch_up_job} --project ${var.project} --region ${var.region} --wait
    # Then read its line (message "catch_up", source "entra") in Cloud Logging (output logs).
    # Optional, from your machine instead (cargo build --release -p relay-cli):
    #   export ENTRA_TENANT_ID="$(terraform -chdir=../../idp/entra output -raw tenant_id)"
    #   export ENTRA_CLIENT_ID="$(terraform -chdir=../../idp/entra output -raw client_id)"
    #   export ENTRA_CLIENT_SECRET="$(terraform -chdir=../../idp/entra output -raw client_secret)"   # or ENTRA_CLIENT_CERTIFICATE="$(cat relay.key relay.crt)"
    #   export ENTRA_CLIENT_STATE="$(terraform output -raw entra_client_state)"
    #   idp-duo-relay entra subscribe --url "${module.relay.entra_notification_url}"
  EOT

  entra_subscribe_by_hand = <<-EOT
    # catch_up_enabled is false: nothing renews the subscriptions. From this folder, with the
    # idp-duo-relay CLI (cargo build --release -p relay-cli):
    export ENTRA_TENANT_ID="$(terraform -chdir=../../idp/entra output -raw tenant_id)"
    export ENTRA_CLIENT_ID="$(terraform -chdir=../../idp/entra output -raw client_id)"
    export ENTRA_CLIENT_SECRET="$(terraform -chdir=../../idp/entra output -raw client_secret)"   # or ENTRA_CLIENT_CERTIFICATE="$(cat relay.key relay.crt)"
    export ENTRA_CLIENT_STATE="$(terraform output -raw entra_client_state)"
    curl -fsS "${module.relay.healthz_url}"     # the relay must answer first: Graph validates through it
    idp-duo-relay entra subscribe --url "${module.relay.entra_notification_url}"
    # Run the last line daily (cron, a pipeline): it renews the subscriptions, or re-creates one Graph removed.
  EOT
}

output "entra_client_state" {
  description = "The subscriptions' clientState (ENTRA_CLIENT_STATE), for `entra subscribe`: `terraform output -raw entra_client_state`."
  value       = random_password.client_state.result
  sensitive   = true
}

output "healthz_url" {
  description = "GET it: {\"status\":\"ok\"} when the service runs."
  value       = module.relay.healthz_url
}

output "logs" {
  description = "Where to read the relay's logs, with a starter query."
  value       = module.relay.logs
}

output "service_name" {
  description = "The Cloud Run service Graph notifies (the catch-up job is <name>-catch-up)."
  value       = module.relay.service_name
}
