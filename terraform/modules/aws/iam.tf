# The function's execution role: only the actions bootstrap uses, each on
# only the resource of this module it uses.

data "aws_iam_policy_document" "assume_role" {
  statement {
    sid     = "LambdaAssumesTheRole"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "relay" {
  name               = "${var.name}-lambda"
  description        = "Execution role of the idp-duo-relay function ${var.name}"
  assume_role_policy = data.aws_iam_policy_document.assume_role.json
  tags               = var.tags
}

data "aws_iam_policy_document" "relay" {
  # Its own log group only (the group exists: no logs:CreateLogGroup).
  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.relay.arn}:*"]
  }

  # Its own secret, read only.
  statement {
    sid       = "ReadOwnSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.secret_arn]
  }

  # The idempotency table: claim and complete (PutItem, conditional), look up,
  # release (DeleteItem, conditional), advance the per-subject watermarks and
  # the queue worker's attempt counters (UpdateItem, conditional); the Duo
  # group index in the same table: its 65 items read in one BatchGetItem at
  # a cold start, a complete listing written with BatchWriteItem. No Scan,
  # Query or table management.
  statement {
    sid       = "UseIdempotencyTable"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"]
    resources = [aws_dynamodb_table.idempotency.arn]
  }

  # Active tracing. X-Ray has no resource-level permissions: these two
  # actions only accept "*".
  statement {
    sid       = "WriteTraces"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  # Queue mode only: send accepted events; the event source mapping
  # receives, deletes and reads the attributes of the queue as the function;
  # the worker sets a failed message's visibility to its backoff.
  dynamic "statement" {
    for_each = var.queue_enabled ? [aws_sqs_queue.events[0].arn] : []

    content {
      sid = "UseEventQueue"
      actions = [
        "sqs:SendMessage",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
      ]
      resources = [statement.value]
    }
  }

  # Queue mode only: the worker writes dead letters. Reading and replaying
  # them (`bootstrap dlq …`) is an operator's job, with the operator's own
  # credentials, not the function's.
  dynamic "statement" {
    for_each = var.queue_enabled ? [aws_sqs_queue.dead_letters[0].arn] : []

    content {
      sid       = "WriteDeadLetters"
      actions   = ["sqs:SendMessage", "sqs:GetQueueAttributes"]
      resources = [statement.value]
    }
  }

  # A customer-managed key only: decrypt the secret (Secrets Manager asks KMS
  # on the caller's behalf), and in queue mode encrypt messages.
  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]

    content {
      sid       = "UseCustomerManagedKey"
      actions   = var.queue_enabled ? ["kms:Decrypt", "kms:GenerateDataKey"] : ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "relay" {
  name   = "${var.name}-relay"
  role   = aws_iam_role.relay.id
  policy = data.aws_iam_policy_document.relay.json
}
