output "entra_notification_url" {
  description = "The URL Microsoft Graph notifies: `idp-duo-relay entra subscribe --url` it (see entra_subscribe)."
  value       = module.relay.entra_notification_url
}

output "entra_subscribe" {
  description = "What to run after the apply, and then daily, to create and renew the relay's Graph subscriptions (README \"Entra ID\")."
  value       = <<-EOT
    # From this folder, with the idp-duo-relay CLI (cargo build --release -p relay-cli):
    export ENTRA_TENANT_ID="$(terraform output -raw entra_tenant_id)"
    export ENTRA_CLIENT_ID="$(terraform output -raw entra_client_id)"
    export ENTRA_CLIENT_SECRET="$(terraform output -raw entra_client_secret)"
    export ENTRA_CLIENT_STATE="$(terraform output -raw entra_client_state)"
    curl -fsS "${module.relay.healthz_url}"     # the relay must answer first: Graph validates through it
    idp-duo-relay entra subscribe --url "${module.relay.entra_notification_url}"
    # Run the last line daily (cron, a pipeline): it renews the subscriptions, or re-creates one Graph removed.
  EOT
}

output "entra_tenant_id" {
  description = "The Entra ID tenant (ENTRA_TENANT_ID)."
  value       = module.entra.tenant_id
}

output "entra_client_id" {
  description = "The relay's app registration (ENTRA_CLIENT_ID): Entra admin center → App registrations."
  value       = module.entra.client_id
}

output "entra_client_secret" {
  description = "The app registration's client secret (ENTRA_CLIENT_SECRET), for `entra subscribe`: `terraform output -raw entra_client_secret`."
  value       = module.entra.client_secret
  sensitive   = true
}

output "entra_client_secret_end_date" {
  description = "When Entra ID stops accepting the client secret: an apply after the rotation date and before this replaces it."
  value       = module.entra.client_secret_end_date
}

output "entra_client_state" {
  description = "The subscriptions' clientState (ENTRA_CLIENT_STATE), for `entra subscribe`: `terraform output -raw entra_client_state`."
  value       = module.entra.client_state
  sensitive   = true
}

output "entra_graph_permissions" {
  description = "The Microsoft Graph application permissions granted (admin consent) to the relay's app."
  value       = module.entra.graph_permissions
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
