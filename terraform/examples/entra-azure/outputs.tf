output "entra_notification_url" {
  description = "The URL Microsoft Graph notifies: `idp-duo-relay entra subscribe --url` it (see entra_subscribe)."
  value       = module.relay.entra_notification_url
}

output "entra_subscribe" {
  description = "What to run after the apply, and then daily, to create and renew the relay's Graph subscriptions (README \"Entra ID\")."
  value       = <<-EOT
    # From this folder, with the idp-duo-relay CLI (cargo build --release -p relay-cli):
    export ENTRA_TENANT_ID="$(terraform -chdir=../../idp/entra output -raw tenant_id)"
    export ENTRA_CLIENT_ID="$(terraform -chdir=../../idp/entra output -raw client_id)"
    export ENTRA_CLIENT_SECRET="$(terraform -chdir=../../idp/entra output -raw client_secret)"
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
