# Scheduled reconcile (off until reconcile_schedule is set): EventBridge
# Scheduler invokes a second function — the same bootstrap artifact, role and
# environment as the hook function, with a 15-minute timeout instead of 10 s —
# with {"relay_task":"reconcile","source":…}. The run converges Duo to the
# IdP (README "Reconcile"); a run that does not converge (drift left, the
# deletion cap, a read error) ends the invocation in error, which the
# reconcile_failed alarm reports. No retries: the next scheduled run is the
# retry.

variable "reconcile_schedule" {
  description = "When to reconcile Duo with the IdP: an EventBridge Scheduler expression in UTC, e.g. \"rate(1 hour)\" or \"cron(15 3 * * ? *)\". null (default) = no scheduled reconcile (nothing is created)."
  type        = string
  default     = null

  validation {
    condition     = var.reconcile_schedule == null || can(regex("^(rate\\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\\)|cron\\(\\S+ \\S+ \\S+ \\S+ \\S+ \\S+\\))$", var.reconcile_schedule))
    error_message = "reconcile_schedule must be an EventBridge Scheduler rate(…) or cron(…) expression, e.g. \"rate(1 hour)\" or \"cron(15 3 * * ? *)\" (six cron fields)."
  }
}

variable "reconcile_source" {
  description = "The IdP a scheduled reconcile reads: \"okta\", \"auth0\" or \"entra\". null (default) = okta when okta_org_url is set, else entra when hook_sources includes \"entra\", else auth0."
  type        = string
  default     = null

  validation {
    condition     = var.reconcile_source == null || contains(["okta", "auth0", "entra"], coalesce(var.reconcile_source, "okta"))
    error_message = "reconcile_source must be \"okta\", \"auth0\" or \"entra\"."
  }
}

variable "reconcile_dry_run" {
  description = "Scheduled runs only report the drift (and fail while there is some) instead of applying it."
  type        = bool
  default     = false
  nullable    = false
}

variable "reconcile_max_deletes" {
  description = "A scheduled run that would delete or deprovision more users and groups than this applies nothing and fails (a misconfigured IdP token can hide users)."
  type        = number
  default     = 10
  nullable    = false

  validation {
    condition     = var.reconcile_max_deletes >= 0 && floor(var.reconcile_max_deletes) == var.reconcile_max_deletes
    error_message = "reconcile_max_deletes must be a whole number, 0 or more."
  }
}

locals {
  reconcile_enabled = var.reconcile_schedule != null
  reconcile_source  = coalesce(var.reconcile_source, var.okta_org_url != null ? "okta" : local.entra_enabled ? "entra" : "auth0")
  reconcile_name    = "${var.name}-reconcile"

  # What bootstrap's relay_task dispatcher reads (relay_core::reconcile::
  # ReconcileOptions::scheduled).
  reconcile_task = {
    relay_task  = "reconcile"
    source      = local.reconcile_source
    dry_run     = var.reconcile_dry_run
    max_deletes = var.reconcile_max_deletes
  }
}

resource "aws_cloudwatch_log_group" "reconcile" {
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days, as for the hook function's log group: operational logs, not an audit trail.
  count = local.reconcile_enabled ? 1 : 0

  name              = "/aws/lambda/${local.reconcile_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "reconcile" {
  #checkov:skip=CKV_AWS_117:No VPC on purpose, as for the hook function: it only calls public endpoints (Duo, Okta, Auth0, AWS APIs).
  #checkov:skip=CKV_AWS_116:Invoked asynchronously by EventBridge Scheduler with retries off on purpose (the next scheduled run is the retry); a failed run is reported by the reconcile_failed alarm and its log lines, not parked in a queue.
  #checkov:skip=CKV_AWS_272:The artifact is built locally by cargo lambda and pinned by source_code_hash; AWS Signer is not part of this build.
  #checkov:skip=CKV_AWS_115:No reservation: runs are minutes apart and idempotent; an account with the default quota of 10 cannot reserve any.
  count = local.reconcile_enabled ? 1 : 0

  function_name    = local.reconcile_name
  description      = "idp-duo-relay: scheduled reconcile of Duo with ${local.reconcile_source}"
  role             = aws_iam_role.relay.arn
  runtime          = "provided.al2023"
  architectures    = ["arm64"]
  handler          = "bootstrap"
  filename         = var.lambda_zip_path
  source_code_hash = filebase64sha256(var.lambda_zip_path)
  # Lambda's maximum: a first run on a large tenant is Duo-rate-limited
  # (about 300 writes a minute); later runs apply only the drift.
  timeout     = 900
  memory_size = 512
  kms_key_arn = var.kms_key_arn
  tags        = var.tags

  environment {
    variables = local.environment
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.reconcile[0].name
  }

  lifecycle {
    precondition {
      condition     = local.reconcile_source == "okta" ? var.okta_org_url != null : local.reconcile_source == "entra" ? local.entra_enabled : (var.auth0_domain != null && var.auth0_client_id != null)
      error_message = "A scheduled reconcile reads the IdP's API: set okta_org_url and okta_api_token (reconcile_source okta), auth0_domain, auth0_client_id and auth0_client_secret (auth0), or hook_sources with \"entra\" and the entra_* variables (entra)."
    }
  }

  depends_on = [
    aws_iam_role_policy.relay,
    aws_iam_role_policy.reconcile,
    aws_secretsmanager_secret_version.relay,
  ]
}

resource "aws_lambda_function_event_invoke_config" "reconcile" {
  count = local.reconcile_enabled ? 1 : 0

  function_name                = aws_lambda_function.reconcile[0].function_name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = 3600
}

# The reconcile function writes to its own log group (the hook function's
# policy names only the hook's).
data "aws_iam_policy_document" "reconcile" {
  count = local.reconcile_enabled ? 1 : 0

  statement {
    sid       = "WriteReconcileLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.reconcile[0].arn}:*"]
  }
}

resource "aws_iam_role_policy" "reconcile" {
  count = local.reconcile_enabled ? 1 : 0

  name   = "${var.name}-reconcile-logs"
  role   = aws_iam_role.relay.id
  policy = data.aws_iam_policy_document.reconcile[0].json
}

# The scheduler's own role: invoke the reconcile function, nothing else.
data "aws_iam_policy_document" "scheduler_assume_role" {
  count = local.reconcile_enabled ? 1 : 0

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

resource "aws_iam_role" "scheduler" {
  count = local.reconcile_enabled ? 1 : 0

  name               = "${var.name}-reconcile-scheduler"
  description        = "EventBridge Scheduler role of the idp-duo-relay reconcile ${var.name}"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume_role[0].json
  tags               = var.tags
}

data "aws_iam_policy_document" "scheduler" {
  count = local.reconcile_enabled ? 1 : 0

  statement {
    sid       = "InvokeReconcile"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.reconcile[0].arn]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  count = local.reconcile_enabled ? 1 : 0

  name   = "${var.name}-invoke-reconcile"
  role   = aws_iam_role.scheduler[0].id
  policy = data.aws_iam_policy_document.scheduler[0].json
}

resource "aws_scheduler_schedule" "reconcile" {
  count = local.reconcile_enabled ? 1 : 0

  name                         = local.reconcile_name
  description                  = "idp-duo-relay ${var.name}: reconcile Duo with ${local.reconcile_source}"
  schedule_expression          = var.reconcile_schedule
  schedule_expression_timezone = "UTC"
  kms_key_arn                  = var.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.reconcile[0].arn
    role_arn = aws_iam_role.scheduler[0].arn
    input    = jsonencode(local.reconcile_task)

    retry_policy {
      maximum_retry_attempts = 0
    }
  }
}

# A run that did not converge: drift left (or found, with reconcile_dry_run),
# the deletion cap, or a read error. Its `reconcile` summary line says which.
resource "aws_cloudwatch_metric_alarm" "reconcile_failed" {
  count = local.reconcile_enabled ? 1 : 0

  alarm_name          = "${local.reconcile_name}-failed"
  alarm_description   = "idp-duo-relay ${var.name}: a scheduled reconcile did not converge Duo with ${local.reconcile_source}. Read /aws/lambda/${local.reconcile_name}: the line with message \"reconcile\" has the status (drift, incomplete, cap_exceeded) and the failed users or groups have outcome failed_*."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.reconcile[0].function_name }
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

output "reconcile_function_name" {
  description = "The scheduled reconcile's function (null when reconcile_schedule is not set). Run it by hand: aws lambda invoke --function-name <name> --payload '{\"relay_task\":\"reconcile\",\"dry_run\":true}' --cli-binary-format raw-in-base64-out out.json"
  value       = local.reconcile_enabled ? aws_lambda_function.reconcile[0].function_name : null
}
