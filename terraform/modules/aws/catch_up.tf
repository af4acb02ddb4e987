# Scheduled catch-up (off until catch_up_enabled): EventBridge Scheduler
# invokes a function on the same artifact and environment as the hook with
# {"relay_task":"catch_up","source":…}. The run reads the IdP's own event
# log (Okta System Log, Auth0 tenant logs) from the checkpoint in the
# DynamoDB table and applies what the hook missed (README "Catch-up").
# For Entra ID (source "entra") a run renews or re-creates the relay's
# Graph subscriptions at ENTRA_NOTIFICATION_URL, runs the users/groups
# delta queries from the deltaLinks kept in the same checkpoint store, and
# with entra_audit_log polls the directory audit log for MFA resets: this
# schedule is what keeps the subscriptions alive (entra.tf).
# EventBridge Scheduler invokes Lambda asynchronously; retries are off on
# both (the next scheduled run is the retry, from the same checkpoint).
# Two alarms: a run failed (the invocation errors), and the checkpoint lag
# (the `catch_up` line's checkpoint_lag_s, EMF metric CatchUpLagSeconds)
# above catch_up_lag_alarm_seconds.

variable "catch_up_enabled" {
  description = "Run catch-up from the IdP's event log on catch_up_schedule (README \"Catch-up\"). false (default) = nothing is created."
  type        = bool
  default     = false
  nullable    = false
}

variable "catch_up_schedule" {
  description = "When catch-up runs: an EventBridge Scheduler expression in UTC, e.g. \"rate(15 minutes)\" (default) or \"cron(*/10 * * * ? *)\"."
  type        = string
  default     = "rate(15 minutes)"
  nullable    = false

  validation {
    condition     = can(regex("^(rate\\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\\)|cron\\(\\S+ \\S+ \\S+ \\S+ \\S+ \\S+\\))$", var.catch_up_schedule))
    error_message = "catch_up_schedule must be an EventBridge Scheduler rate(…) or cron(…) expression, e.g. \"rate(15 minutes)\" (six cron fields)."
  }
}

variable "catch_up_source" {
  description = "What catch-up reads: \"okta\" (System Log), \"auth0\" (tenant logs) or \"entra\" (Microsoft Graph: renews the relay's subscriptions, runs the users/groups delta queries, and with entra_audit_log polls the audit log for MFA resets). null (default) = okta when okta_org_url is set, else auth0 when auth0_domain is set, else entra when hook_sources includes \"entra\"."
  type        = string
  default     = null

  validation {
    condition     = var.catch_up_source == null || contains(["okta", "auth0", "entra"], coalesce(var.catch_up_source, "okta"))
    error_message = "catch_up_source must be \"okta\", \"auth0\" or \"entra\"."
  }
}

variable "catch_up_window" {
  description = "How far back the first run (no checkpoint yet) reads: RELAY_CATCH_UP_WINDOW, e.g. \"24h\" (default), \"90m\", \"2d\"; at most 90d."
  type        = string
  default     = "24h"
  nullable    = false

  validation {
    condition     = can(regex("^[1-9][0-9]*[smhd]?$", var.catch_up_window))
    error_message = "catch_up_window must be a duration like 24h, 90m or 2d."
  }
}

variable "catch_up_lag_alarm_seconds" {
  description = "Alarm when a catch-up run reports a checkpoint lag (seconds since the log was last read to its end) above this. Default 3600: four missed 15-minute runs."
  type        = number
  default     = 3600
  nullable    = false

  validation {
    condition     = var.catch_up_lag_alarm_seconds >= 60 && floor(var.catch_up_lag_alarm_seconds) == var.catch_up_lag_alarm_seconds
    error_message = "catch_up_lag_alarm_seconds must be a whole number of seconds, 60 or more."
  }
}

locals {
  catch_up_enabled = var.catch_up_enabled
  catch_up_source  = coalesce(var.catch_up_source, var.okta_org_url != null ? "okta" : var.auth0_domain != null ? "auth0" : local.entra_enabled ? "entra" : "auth0")
  catch_up_name    = "${var.name}-catch-up"

  # What bootstrap's relay_task dispatcher reads (relay_core::catch_up::
  # CatchUpOptions::scheduled).
  catch_up_task = {
    relay_task = "catch_up"
    source     = local.catch_up_source
  }

  # The hook's environment, plus what a first run reads
  # (relay_core::catch_up::CatchUpConfig), plus for Entra ID where the
  # subscriptions deliver and whether to poll the audit log (entra.tf).
  # The notification URL is the hook function's URL, which only this
  # function's environment can hold: in the hook's own it would be a cycle.
  catch_up_environment = merge(local.environment, {
    RELAY_CATCH_UP_WINDOW = var.catch_up_window
  }, local.catch_up_entra_env)

  # What an IdP 401/403 means, in the alarm's words.
  catch_up_denied = local.catch_up_source == "entra" ? local.entra_denied : "an IdP 401/403 means the API token lacks the log scope"
  # What a lag delays.
  catch_up_delayed = local.catch_up_source == "entra" ? local.entra_delayed : "Missed hook deliveries (an MFA reset, a deactivation) wait that long."
}

resource "aws_cloudwatch_log_group" "catch_up" {
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days, as for the hook function's log group: operational logs, not an audit trail.
  count = local.catch_up_enabled ? 1 : 0

  name              = "/aws/lambda/${local.catch_up_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "catch_up" {
  #checkov:skip=CKV_AWS_117:No VPC on purpose, as for the hook function: it only calls public endpoints (Duo, Okta, Auth0, AWS APIs).
  #checkov:skip=CKV_AWS_116:Invoked asynchronously by EventBridge Scheduler with retries off on purpose (the next scheduled run is the retry, from the same checkpoint); a failed run is reported by the catch_up_failed alarm and its log line, not parked in a queue.
  #checkov:skip=CKV_AWS_272:The artifact is built locally by cargo lambda and pinned by source_code_hash; AWS Signer is not part of this build.
  #checkov:skip=CKV_AWS_115:No reservation: runs are minutes apart and safe to overlap (idempotency keys, a compare-and-swap checkpoint); an account with the default quota of 10 cannot reserve any.
  count = local.catch_up_enabled ? 1 : 0

  function_name    = local.catch_up_name
  description      = "idp-duo-relay: scheduled catch-up from the ${local.catch_up_source} event log"
  role             = aws_iam_role.relay.arn
  runtime          = "provided.al2023"
  architectures    = ["arm64"]
  handler          = "bootstrap"
  filename         = var.lambda_zip_path
  source_code_hash = filebase64sha256(var.lambda_zip_path)
  # A run reads at most RELAY_CATCH_UP_MAX_PAGES pages (default 200) and may
  # wait out the IdP's rate limit (up to a minute, five times).
  timeout     = 900
  memory_size = 256
  kms_key_arn = var.kms_key_arn
  tags        = var.tags

  environment {
    variables = local.catch_up_environment
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.catch_up[0].name
  }

  lifecycle {
    precondition {
      condition     = local.catch_up_source == "okta" ? var.okta_org_url != null : local.catch_up_source == "entra" ? local.entra_catch_up_ready : (var.auth0_domain != null && var.auth0_client_id != null)
      error_message = "Catch-up reads the IdP's log API: set okta_org_url and okta_api_token (catch_up_source okta; scope okta.logs.read), auth0_domain, auth0_client_id and auth0_client_secret (auth0; scope read:logs), or hook_sources with \"entra\" and entra_tenant_id, entra_client_id, entra_client_state and entra_client_secret (or entra_client_certificate with entra_credential = \"certificate\") (entra; Graph permissions User.Read.All and Group.Read.All, AuditLog.Read.All with entra_audit_log)."
    }
  }

  depends_on = [
    aws_iam_role_policy.relay,
    aws_iam_role_policy.catch_up,
    aws_secretsmanager_secret_version.relay,
  ]
}

resource "aws_lambda_function_event_invoke_config" "catch_up" {
  count = local.catch_up_enabled ? 1 : 0

  function_name                = aws_lambda_function.catch_up[0].function_name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = 900
}

# The catch-up function writes to its own log group (the hook function's
# policy names only the hook's). Its table access is the hook's: the
# checkpoint is an item of the idempotency table.
data "aws_iam_policy_document" "catch_up" {
  count = local.catch_up_enabled ? 1 : 0

  statement {
    sid       = "WriteCatchUpLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.catch_up[0].arn}:*"]
  }
}

resource "aws_iam_role_policy" "catch_up" {
  count = local.catch_up_enabled ? 1 : 0

  name   = "${var.name}-catch-up-logs"
  role   = aws_iam_role.relay.id
  policy = data.aws_iam_policy_document.catch_up[0].json
}

# The schedule's own role: invoke the catch-up function, nothing else.
data "aws_iam_policy_document" "catch_up_invoker_assume_role" {
  count = local.catch_up_enabled ? 1 : 0

  statement {
    sid     = "SchedulerAssumesTheRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "catch_up_invoker" {
  count = local.catch_up_enabled ? 1 : 0

  name               = "${var.name}-catch-up-invoker"
  description        = "EventBridge Scheduler role of the idp-duo-relay catch-up ${var.name}"
  assume_role_policy = data.aws_iam_policy_document.catch_up_invoker_assume_role[0].json
  tags               = var.tags
}

data "aws_iam_policy_document" "catch_up_invoker" {
  count = local.catch_up_enabled ? 1 : 0

  statement {
    sid       = "InvokeCatchUp"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.catch_up[0].arn]
  }
}

resource "aws_iam_role_policy" "catch_up_invoker" {
  count = local.catch_up_enabled ? 1 : 0

  name   = "${var.name}-invoke-catch-up"
  role   = aws_iam_role.catch_up_invoker[0].id
  policy = data.aws_iam_policy_document.catch_up_invoker[0].json
}

resource "aws_scheduler_schedule" "catch_up" {
  count = local.catch_up_enabled ? 1 : 0

  name                         = local.catch_up_name
  description                  = "idp-duo-relay ${var.name}: catch up from the ${local.catch_up_source} event log"
  schedule_expression          = var.catch_up_schedule
  schedule_expression_timezone = "UTC"
  kms_key_arn                  = var.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.catch_up[0].arn
    role_arn = aws_iam_role.catch_up_invoker[0].arn
    input    = jsonencode(local.catch_up_task)

    retry_policy {
      maximum_retry_attempts = 0
    }
  }
}

# A run that did not end well: an event failed (Duo 429/5xx: the checkpoint
# stays before its page), reading the log failed, the checkpoint could not
# be read or saved, or bad configuration. Its `catch_up` line says which.
resource "aws_cloudwatch_metric_alarm" "catch_up_failed" {
  count = local.catch_up_enabled ? 1 : 0

  alarm_name          = "${local.catch_up_name}-failed"
  alarm_description   = "idp-duo-relay ${var.name}: a scheduled catch-up from the ${local.catch_up_source} log failed. Read /aws/lambda/${local.catch_up_name}: the line with message \"catch_up\" has the status (event_failed, idp_failed, store_failed) and error; ${local.catch_up_denied}. The next run retries from the same checkpoint. README \"Catch-up\"."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.catch_up[0].function_name }
  statistic           = "Sum"
  period              = 3600
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# The log has not been read to its end for catch_up_lag_alarm_seconds:
# runs keep failing or stopping at their page budget (status behind), so
# events the hook missed wait that long to reach Duo.
resource "aws_cloudwatch_metric_alarm" "catch_up_lag" {
  count = local.catch_up_enabled ? 1 : 0

  alarm_name          = "${local.catch_up_name}-lag"
  alarm_description   = "idp-duo-relay ${var.name}: catch-up has not read the ${local.catch_up_source} log to its end for more than ${var.catch_up_lag_alarm_seconds} s (metric CatchUpLagSeconds from the catch_up line's checkpoint_lag_s). ${local.catch_up_delayed} Read /aws/lambda/${local.catch_up_name}: status behind = raise RELAY_CATCH_UP_MAX_PAGES or run more often; failed runs = see the catch-up-failed alarm. README \"Catch-up\"."
  namespace           = local.metrics_namespace
  metric_name         = "CatchUpLagSeconds"
  dimensions          = { Source = local.catch_up_source }
  statistic           = "Maximum"
  period              = 900
  evaluation_periods  = 1
  threshold           = var.catch_up_lag_alarm_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

output "catch_up_function_name" {
  description = "The scheduled catch-up's function (null when catch_up_enabled is false). Run it by hand: aws lambda invoke --function-name <name> --payload '{\"relay_task\":\"catch_up\"}' --cli-binary-format raw-in-base64-out out.json"
  value       = local.catch_up_enabled ? aws_lambda_function.catch_up[0].function_name : null
}
