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

# Durable delivery (queue mode, a later issue): accepted events go to a FIFO
# queue (ordered per user, deduplicated by event id) and a worker applies
# them; what keeps failing lands in the dead-letter queue, to be replayed.
# Created only when var.queue_enabled; nothing reads them yet.
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

# Visibility timeout: at least 6 × the function timeout, as Lambda's SQS
# polling wants. Messages are kept 4 days.
resource "aws_sqs_queue" "events" {
  count = var.queue_enabled ? 1 : 0

  name                        = "${var.name}-events.fifo"
  fifo_queue                  = true
  content_based_deduplication = true
  visibility_timeout_seconds  = 60
  message_retention_seconds   = 345600
  sqs_managed_sse_enabled     = var.kms_key_arn == null ? true : null
  kms_master_key_id           = var.kms_key_arn
  tags                        = var.tags

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letters[0].arn
    maxReceiveCount     = 5
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
