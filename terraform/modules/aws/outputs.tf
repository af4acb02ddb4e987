output "okta_hook_url" {
  description = "URL to register as the Okta event hook (GET for the one-time verification, POST for deliveries)."
  value       = "${local.base_url}/okta"
}

output "auth0_events_url" {
  description = "URL to register as the Auth0 Event Stream webhook."
  value       = "${local.base_url}/auth0"
}

output "auth0_logs_url" {
  description = "URL to register as the Auth0 Log Stream (custom webhook)."
  value       = "${local.base_url}/auth0/logs"
}

output "entra_notification_url" {
  description = "The Microsoft Graph notification URL: entra_notification_url if set, else the relay's /entra route. The scheduled catch-up (catch_up_source entra) subscribes and renews at it; `idp-duo-relay entra subscribe --url` by hand must use the same string (Graph's subscriptions are matched on it)."
  value       = local.entra_notification_url
}

output "healthz_url" {
  description = "Health check URL ({\"status\":\"ok\"} once the function has started)."
  value       = "${local.base_url}/healthz"
}

output "logs" {
  description = "Where to read the relay's logs, with a starter CloudWatch Logs Insights query."
  value       = <<-EOT
    CloudWatch Logs, log group ${aws_cloudwatch_log_group.relay.name} (region ${data.aws_region.current.region}): one JSON line per event, message = "event".
    Follow it:  aws logs tail ${aws_cloudwatch_log_group.relay.name} --region ${data.aws_region.current.region} --follow
    Logs Insights (CloudWatch → Logs Insights, select that group):
      fields @timestamp, subject, event_type, outcome, detail
      | filter message = "event"
      | sort @timestamp desc
    Failures only: add | filter outcome like /^failed/ ; one user: add | filter subject like /jane.doe@example.com/
  EOT
}

output "function_url" {
  description = "The function URL (the hook URLs above are this plus a route)."
  value       = aws_lambda_function_url.relay.function_url
}

output "function_name" {
  description = "Name of the Lambda function."
  value       = aws_lambda_function.relay.function_name
}

output "function_arn" {
  description = "ARN of the Lambda function."
  value       = aws_lambda_function.relay.arn
}

output "role_arn" {
  description = "ARN of the function's execution role."
  value       = aws_iam_role.relay.arn
}

output "secret_arn" {
  description = "ARN of the Secrets Manager secret the function reads (RELAY_SECRET_ID); the ARN, not the values."
  value       = local.secret_arn
}

output "table_name" {
  description = "Name of the DynamoDB idempotency table (RELAY_TABLE_NAME)."
  value       = aws_dynamodb_table.idempotency.name
}

output "log_group_name" {
  description = "Name of the function's CloudWatch Logs group."
  value       = aws_cloudwatch_log_group.relay.name
}

output "alerts_topic_arn" {
  description = "ARN of the SNS topic the alarms publish to (subscribe more endpoints to it as needed)."
  value       = aws_sns_topic.alerts.arn
}

output "queue_url" {
  description = "URL of the SQS FIFO event queue (null unless queue_enabled)."
  value       = one(aws_sqs_queue.events[*].url)
}

output "dead_letter_queue_url" {
  description = "URL of the SQS FIFO dead-letter queue (null unless queue_enabled)."
  value       = one(aws_sqs_queue.dead_letters[*].url)
}
