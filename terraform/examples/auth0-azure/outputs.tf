output "auth0_events_url" {
  description = "The URL the Auth0 Event Stream calls (created for you unless register_hook = false)."
  value       = module.relay.auth0_events_url
}

output "auth0_logs_url" {
  description = "The URL the Auth0 Log Stream calls (created for you unless register_hook = false)."
  value       = module.relay.auth0_logs_url
}

output "healthz_url" {
  description = "GET it: {\"status\":\"ok\"} when the Function App runs."
  value       = module.relay.healthz_url
}

output "logs" {
  description = "Where to read the relay's logs, with a starter query."
  value       = module.relay.logs
}

output "auth0_event_stream_id" {
  description = "The Auth0 Event Stream (null when not created here)."
  value       = module.auth0_streams.auth0_event_stream_id
}

output "auth0_log_stream_id" {
  description = "The Auth0 Log Stream (null when not created here)."
  value       = module.auth0_streams.auth0_log_stream_id
}

output "hook_secret" {
  description = "The token Auth0 sends: `terraform output -raw hook_secret` to register by hand (Event Stream: bearer token; Log Stream: Authorization token) or to start a rotation."
  value       = random_password.hook.result
  sensitive   = true
}

output "function_app_name" {
  description = "The Function App (az functionapp restart -g <resource_group_name> -n <function_app_name>)."
  value       = module.relay.function_app_name
}

output "resource_group_name" {
  description = "The resource group holding everything."
  value       = module.relay.resource_group_name
}
