# The idempotency store (crates/relay-aws/src/dynamo.rs): one item per event
# id, `pk` (String), `state`, `expires_at` (Number, epoch seconds), which is
# also the TTL attribute. Applied events are remembered 7 days.
resource "aws_dynamodb_table" "idempotency" {
  name         = "${var.name}-idempotency"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"
  tags         = var.tags

  attribute {
    name = "pk"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  # Enabled without a key ARN = the AWS-managed key aws/dynamodb.
  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }
}

# Durable delivery (queue mode, crates/relay-aws src/sqs.rs and worker.rs):
# the function URL's requests put each event on a FIFO queue (message group =
# the user or group it is about, so one subject's events apply in order;
# deduplication id = the event id) and answer 200; the same function, invoked
# by the queue's event source mapping (lambda.tf), applies them and reports
# the ones that failed (ReportBatchItemFailures). A permanent failure, a
# poison message or one out of attempts (queue_max_attempts) is written by
# the worker to the dead-letter queue with its reason (`bootstrap dlq list`,
# `replay`). Created only when var.queue_enabled.
#
# Every dead letter the worker writes is its own message group, so `dlq
# list` sees them all at once.
resource "aws_sqs_queue" "dead_letters" {
  count = var.queue_enabled ? 1 : 0

  name                        = "${var.name}-dead-letters.fifo"
  fifo_queue                  = true
  content_based_deduplication = true
  message_retention_seconds   = 1209600 # 14 days, the most SQS keeps
  sqs_managed_sse_enabled     = var.kms_key_arn == null ? true : null
  kms_master_key_id           = var.kms_key_arn
  tags                        = var.tags
}

# Visibility timeout: 6 × the function timeout, as Lambda's SQS event source
# wants (and longer than the idempotency store's 120 s claim, so a message
# whose invocation crashed comes back after its claim has expired). A retry
# comes back sooner: the worker sets a failed message's visibility to the
# backoff. maxReceiveCount is only a backstop for a message the function
# never finishes (it crashes or times out on it): receives also count the
# times a message waited behind a failed one of its group, so it must stay
# well above queue_max_attempts, which the worker counts itself. Messages
# are kept 4 days.
resource "aws_sqs_queue" "events" {
  count = var.queue_enabled ? 1 : 0

  name                        = "${var.name}-events.fifo"
  fifo_queue                  = true
  content_based_deduplication = true
  visibility_timeout_seconds  = 6 * local.function_timeout
  message_retention_seconds   = 345600
  sqs_managed_sse_enabled     = var.kms_key_arn == null ? true : null
  kms_master_key_id           = var.kms_key_arn
  tags                        = var.tags

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letters[0].arn
    maxReceiveCount     = var.queue_max_receive_count
  })
}

# Only the events queue may send its failures to the dead-letter queue.
resource "aws_sqs_queue_redrive_allow_policy" "dead_letters" {
  count = var.queue_enabled ? 1 : 0

  queue_url = aws_sqs_queue.dead_letters[0].id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.events[0].arn]
  })
}
