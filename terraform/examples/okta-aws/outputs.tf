output "okta_hook_url" {
  description = "The URL Okta calls (registered for you unless register_hook = false)."
  value       = module.relay.okta_hook_url
}

output "healthz_url" {
  description = "GET it: {\"status\":\"ok\"} when the function runs."
  value       = module.relay.healthz_url
}

output "logs" {
  description = "Where to read the relay's logs, with a starter query."
  value       = module.relay.logs
}

output "okta_event_hook_id" {
  description = "The Okta event hook (null when register_hook = false)."
  value       = module.okta_hook.okta_event_hook_id
}

output "hook_secret" {
  description = "The secret Okta sends in okta_auth_header: `terraform output -raw hook_secret` to register by hand or to start a rotation."
  value       = random_password.hook.result
  sensitive   = true
}
