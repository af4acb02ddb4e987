# Logs: the function's log group, created here so it has a retention (Lambda
# would otherwise create it on first use, keeping lines forever).
resource "aws_cloudwatch_log_group" "relay" {
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (default 30, any CloudWatch value up to 0 = forever); the lines are operational logs of a webhook relay, not an audit trail, and the IdP and Duo keep their own audit logs.
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

# Alarms publish to this topic; alert_email, when set, is subscribed to it.
# CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed
# key aws/sns (its policy does not let cloudwatch.amazonaws.com use it), so
# without var.kms_key_arn the topic gets a small key of its own.
resource "aws_kms_key" "alerts" {
  count = var.kms_key_arn == null ? 1 : 0

  description             = "${var.name}: encrypts the alarm topic"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  tags                    = var.tags

  # A key policy: its Resource "*" is this key. The account administers the
  # key through IAM, as with any new key; CloudWatch alarms of this account
  # may encrypt what they publish to the topic.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersTheKey"
        Effect    = "Allow"
        Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchAlarmsPublish"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id } }
      },
    ]
  })
}

resource "aws_kms_alias" "alerts" {
  count = var.kms_key_arn == null ? 1 : 0

  name          = "alias/${var.name}-alerts"
  target_key_id = aws_kms_key.alerts[0].key_id
}

resource "aws_sns_topic" "alerts" {
  name              = "${var.name}-alerts"
  kms_master_key_id = var.kms_key_arn == null ? aws_kms_key.alerts[0].arn : var.kms_key_arn
  tags              = var.tags
}

resource "aws_sns_topic_subscription" "email" {
  count = var.alert_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = var.alert_email
}

locals {
  alarm_actions = concat([aws_sns_topic.alerts.arn], var.alarm_actions)
}

# The function failed: a crash, a timeout, or a cold start that stopped on
# bad configuration (the log line names the variable or the secret key).
resource "aws_cloudwatch_metric_alarm" "errors" {
  alarm_name          = "${var.name}-errors"
  alarm_description   = "idp-duo-relay ${var.name}: the function failed (crash, timeout or start-up error). Read ${local.log_group_name}: the start-up line names the variable or secret key at fault."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.relay.function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# Deliveries were refused for lack of concurrency (answered 429; Okta retries
# only once).
resource "aws_cloudwatch_metric_alarm" "throttles" {
  alarm_name          = "${var.name}-throttles"
  alarm_description   = "idp-duo-relay ${var.name}: invocations were throttled, so deliveries were refused with 429. Raise reserved_concurrency or the account's concurrency quota."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = aws_lambda_function.relay.function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# Deliveries answered 5xx: in sync mode, a 503 means Duo failed transiently
# and the IdP must retry (Okta retries once); repeated, events may be lost.
resource "aws_cloudwatch_metric_alarm" "url_5xx" {
  alarm_name          = "${var.name}-url-5xx"
  alarm_description   = "idp-duo-relay ${var.name}: deliveries were answered 5xx (Duo failing or rate-limiting, or the function failing). Look for outcome failed_transient in ${local.log_group_name}; replay lost events with idp-duo-relay replay."
  namespace           = "AWS/Lambda"
  metric_name         = "Url5xxCount"
  dimensions          = { FunctionName = aws_lambda_function.relay.function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# Queue mode only: events that kept failing reached the dead-letter queue.
resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  count = var.queue_enabled ? 1 : 0

  alarm_name          = "${var.name}-dead-letters"
  alarm_description   = "idp-duo-relay ${var.name}: events are waiting in the dead-letter queue ${aws_sqs_queue.dead_letters[0].name}; fix the cause named in the log, then replay them."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dead_letters[0].name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# Queue mode only: the worker is not keeping up (Duo down or rate-limiting
# for a long time, the function failing, concurrency too low): the oldest
# accepted event has waited longer than var.queue_age_alarm_seconds.
resource "aws_cloudwatch_metric_alarm" "queue_age" {
  count = var.queue_enabled ? 1 : 0

  alarm_name          = "${var.name}-queue-backlog-age"
  alarm_description   = "idp-duo-relay ${var.name}: the oldest event in ${aws_sqs_queue.events[0].name} has waited over ${var.queue_age_alarm_seconds} s to reach Duo; look for failed_transient lines (Duo 429/5xx) and function errors."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = aws_sqs_queue.events[0].name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.queue_age_alarm_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# ---------------------------------------------------------------------------
# The relay's own metrics. With RELAY_METRICS=emf each per-event summary
# line (and each dead-letter line) is also a CloudWatch embedded metric
# format document, so CloudWatch Logs extracts these metrics with no agent
# (crates/relay-server/src/metrics.rs; terraform/relay-metrics.json lists
# them): Events (dimensions Outcome + Source, and Outcome), DuoCalls,
# DuoThrottled, DurationMs, DeadLetters. A metric exists from its first data
# point, so no data means nothing happened: missing data is not breaching.
# ---------------------------------------------------------------------------

# Duo refused an event for good (README runbook: Duo 401 / 40103, Duo 403,
# a user is missing in Duo). The IdP got 200: nobody else will notice.
resource "aws_cloudwatch_metric_alarm" "failed_permanent" {
  alarm_name          = "${var.name}-failed-permanent"
  alarm_description   = "idp-duo-relay ${var.name}: Duo refused at least one event for good (outcome failed_permanent: wrong keys or clock 401/40103, missing API grant 403, data Duo rejects). Retrying cannot help. Logs Insights on ${local.log_group_name}: filter outcome = \"failed_permanent\" (the detail field says why); fix, then idp-duo-relay replay."
  namespace           = local.metrics_namespace
  metric_name         = "Events"
  dimensions          = { Outcome = "failed_permanent" }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# Duo kept answering 429 for 15 minutes (README runbook: 429 storm).
resource "aws_cloudwatch_metric_alarm" "duo_throttled" {
  alarm_name          = "${var.name}-duo-throttled"
  alarm_description   = "idp-duo-relay ${var.name}: Duo answered 429 at least ${var.duo_throttled_alarm_threshold} times in each of 3 consecutive 5-minute periods (metric DuoThrottled): a bulk change in the IdP or another Admin API client is using up Duo's rate limit. Events fail transiently (sync mode: the IdP is answered 503 and retries). See README runbook \"429 storm\"."
  namespace           = local.metrics_namespace
  metric_name         = "DuoThrottled"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  threshold           = var.duo_throttled_alarm_threshold
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# Queue mode: the relay gave up on a message and logged a dead_letter line
# (README runbook: dead letters piling up). The SQS dead-letter queue alarm
# above watches the queue itself; this one counts the relay's own verdicts.
resource "aws_cloudwatch_metric_alarm" "dead_letter_events" {
  count = var.queue_enabled ? 1 : 0

  alarm_name          = "${var.name}-dead-letter-events"
  alarm_description   = "idp-duo-relay ${var.name}: the relay moved at least one event to dead letters (metric DeadLetters). Logs Insights on ${local.log_group_name}: filter message = \"dead_letter\" (reason, attempts); fix the cause, then replay the dead letters."
  namespace           = local.metrics_namespace
  metric_name         = "DeadLetters"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}
