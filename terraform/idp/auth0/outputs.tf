output "auth0_event_stream_id" {
  description = "The Auth0 Event Stream's id (null when not created here)."
  value       = one(auth0_event_stream.relay[*].id)
}

output "auth0_log_stream_id" {
  description = "The Auth0 Log Stream's id (null when not created here)."
  value       = one(auth0_log_stream.relay[*].id)
}
