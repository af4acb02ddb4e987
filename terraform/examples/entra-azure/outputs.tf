output "entra_notification_url" {
  description = "The URL Microsoft Graph notifies, where the scheduled catch-up creates and renews the subscriptions (`idp-duo-relay entra subscribe --url` by hand must use this same string)."
  value       = module.relay.entra_notification_url
}

output "entra_subscribe" {
  description = "How the Graph subscriptions come to exist after the apply, and how to create them at once (README \"Entra ID\")."
  value       = var.catch_up_enabled ? local.entra_subscribe_scheduled : local.entra_subscribe_by_hand
}

locals {
  # Run the catch_up timer function now instead of at its next tick: the
  # Functions admin API with the app's master key (Microsoft Learn,
  # "Manually run a non HTTP-triggered function").
  entra_subscribe_scheduled = <<-EOT
    # The scheduled catch-up (catch_up_schedule, default every 15 minutes) creates the
    # subscriptions on its first run and renews them on every run. To run it now:
    curl -fsS "${module.relay.healthz_url}"     # the relay must answer first: Graph validates through it
    KEY="$(az functionapp keys list -g ${module.relay.resource_group_name} -n ${module.relay.function_app_name} --query masterKey -o tsv)"
    curl -fsS -X POST "https://${module.relay.function_app_name}.azurewebsites.net/admin/functions/catch_up" \
      -H "x-functions-key: $KEY" -H "Content-Type: application/json" -d '{"input":""}'
    # Then read its line (message "catch_up", source "entra") in Application Insights (output logs).
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
  description = "GET it: {\"status\":\"ok\"} when the Function App runs."
  value       = module.relay.healthz_url
}

output "logs" {
  description = "Where to read the relay's logs, with a starter query."
  value       = module.relay.logs
}

output "function_app_name" {
  description = "The Function App (az functionapp restart -g <resource_group_name> -n <function_app_name>)."
  value       = module.relay.function_app_name
}

output "resource_group_name" {
  description = "The resource group holding everything."
  value       = module.relay.resource_group_name
}
