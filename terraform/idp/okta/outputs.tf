output "okta_event_hook_id" {
  description = "The Okta event hook's id (null when okta_enabled = false)."
  value       = one(okta_event_hook.relay[*].id)
}

output "okta_event_hook_verification_status" {
  description = "VERIFIED once Okta's challenge succeeded (null when not verified by Terraform)."
  value       = one(okta_event_hook_verification.relay[*].verification_status)
}

output "okta_event_types" {
  description = "The event types the hook is subscribed to (generated from the relay's code)."
  value       = local.event_types
}
