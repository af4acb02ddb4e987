locals {
  # The Functions host prefixes every route with /api (host.json routePrefix).
  base_url = "https://${azurerm_linux_function_app.relay.default_hostname}/api"
}

output "okta_hook_url" {
  description = "The Okta event hook URL (GET: verification challenge, POST: deliveries)."
  value       = "${local.base_url}/okta"
}

output "auth0_events_url" {
  description = "The Auth0 Event Stream (webhook) URL."
  value       = "${local.base_url}/auth0"
}

output "auth0_logs_url" {
  description = "The Auth0 Log Stream (custom webhook) URL."
  value       = "${local.base_url}/auth0/logs"
}

output "entra_notification_url" {
  description = "The Microsoft Graph notification URL: entra_notification_url if set, else the relay's /entra route (https://<function app name>.azurewebsites.net/api/entra). The scheduled catch-up (catch_up_source entra) subscribes and renews at it; `idp-duo-relay entra subscribe --url` by hand must use the same string (Graph's subscriptions are matched on it)."
  value       = local.entra_notification_url
}

output "healthz_url" {
  description = "GET it: {\"status\":\"ok\"} when the Function App runs."
  value       = "${local.base_url}/healthz"
}

output "function_app_name" {
  description = "The Function App (az functionapp … -n)."
  value       = azurerm_linux_function_app.relay.name
}

output "function_app_id" {
  description = "Resource id of the Function App."
  value       = azurerm_linux_function_app.relay.id
}

output "resource_group_name" {
  description = "The resource group holding everything."
  value       = local.resource_group_name
}

output "key_vault_name" {
  description = "The Key Vault holding the relay's secrets (one secret per secret variable that is set)."
  value       = azurerm_key_vault.relay.name
}

output "key_vault_secret_names" {
  description = "Environment variable => Key Vault secret name, for the secrets this apply wrote."
  value       = { for env in local.secrets_set : env => azurerm_key_vault_secret.relay[env].name }
}

output "storage_account_name" {
  description = "The storage account (host state, package blob, idempotency table, queues)."
  value       = azurerm_storage_account.relay.name
}

output "identity_principal_id" {
  description = "Principal (object) id of the Function App's user-assigned identity."
  value       = azurerm_user_assigned_identity.relay.principal_id
}

output "log_analytics_workspace_id" {
  description = "Resource id of the Log Analytics workspace that stores the logs."
  value       = azurerm_log_analytics_workspace.relay.id
}

output "application_insights_id" {
  description = "Resource id of the (workspace-based) Application Insights resource."
  value       = azurerm_application_insights.relay.id
}

output "queue_names" {
  description = "Queue mode: the queue (RELAY_QUEUE_NAME) and its poison queue of dead letters; empty unless queue_enabled."
  value       = local.queue_names
}

output "logs" {
  description = "Where to read the relay's logs, with a starter query."
  value       = <<-EOT
    Application Insights ${azurerm_application_insights.relay.name} (resource group ${local.resource_group_name}) → Logs,
    or Log Analytics workspace ${azurerm_log_analytics_workspace.relay.name} (table AppTraces). One JSON line per event in
    traces.message; start-up errors (an unresolved Key Vault reference, a missing setting) appear there too.
    Every event of the last hour (for one user add `| where tostring(e.subject) has "jane.doe@example.com"` after the e.message line):

    ${local.starter_query}

    From a shell: az monitor app-insights query --ids ${azurerm_application_insights.relay.id} --analytics-query '<query>'
  EOT
}
