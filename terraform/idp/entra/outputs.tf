output "tenant_id" {
  description = "The tenant (directory) id: ENTRA_TENANT_ID."
  value       = data.azuread_client_config.current.tenant_id
}

output "client_id" {
  description = "The relay's app registration's client (application) id: ENTRA_CLIENT_ID."
  value       = azuread_application_registration.relay.client_id
}

output "client_secret" {
  description = "The relay's client secret: ENTRA_CLIENT_SECRET (for the cloud module's secret store)."
  value       = azuread_application_password.relay.value
  sensitive   = true
}

output "client_secret_end_date" {
  description = "When Entra ID stops accepting the client secret (an apply after the rotation date replaces it before then)."
  value       = azuread_application_password.relay.end_date
}

output "graph_permissions" {
  description = "The Microsoft Graph application permissions granted (with admin consent) to the relay's app."
  value       = local.graph_permissions
}

output "service_principal_object_id" {
  description = "Object id of the relay's service principal (Enterprise applications in the Entra admin center)."
  value       = azuread_service_principal.relay.object_id
}
