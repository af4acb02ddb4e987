# idp-duo-relay on AWS: one Lambda function (binary `bootstrap`) behind a
# function URL, its configuration in one Secrets Manager secret, idempotency
# in DynamoDB, logs in CloudWatch Logs, alarms to an SNS topic. Files:
# lambda.tf (function, URL, queue event source), secret.tf, storage.tf
# (table, queues), iam.tf (execution role), monitoring.tf (log group, topic,
# alarms), reconcile.tf (the scheduled reconcile, off by default),
# catch_up.tf (the scheduled catch-up from the IdP's log, off by default).

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  log_group_name = "/aws/lambda/${var.name}"
  create_secret  = var.existing_secret_arn == null
  secret_arn     = local.create_secret ? aws_secretsmanager_secret.relay[0].arn : var.existing_secret_arn
  base_url       = trimsuffix(aws_lambda_function_url.relay.function_url, "/")

  # The plain environment of the function: what `bootstrap` requires
  # (crates/relay-aws REQUIRED_ENV, generated into required-env.json) and the
  # non-secret settings. Secrets never go here: they are in the secret.
  environment_base = {
    RELAY_SECRET_ID       = local.secret_arn
    RELAY_TABLE_NAME      = aws_dynamodb_table.idempotency.name
    RELAY_SECRET_TTL_SECS = tostring(var.secret_ttl_seconds)
    RELAY_LOG_FORMAT      = "json"
    DUO_API_HOST          = var.duo_api_host
    DUO_IKEY              = var.duo_ikey
    OKTA_AUTH_HEADER      = var.okta_auth_header
    DEPROVISION_ACTION    = var.deprovision_action
    DUO_RATE_PER_MINUTE   = tostring(local.duo_rate_per_instance)

    # Metrics from the log lines (CloudWatch embedded metric format); the
    # alarms in monitoring.tf read this namespace.
    RELAY_METRICS           = "emf"
    RELAY_METRICS_NAMESPACE = local.metrics_namespace
  }

  # Duo's budget is the account's and each instance paces itself, so each
  # instance that can apply events at once gets its share: queue mode's
  # worker invocations (the event source mapping's maximum concurrency),
  # sync mode's reserved concurrency (unreserved: nothing bounds it, the
  # whole budget), and the scheduled reconcile and catch-up functions (same
  # environment).
  duo_pacers            = (var.queue_enabled ? var.queue_max_concurrency : coalesce(var.reserved_concurrency, 1)) + (var.reconcile_schedule != null ? 1 : 0) + (var.catch_up_enabled ? 1 : 0)
  duo_rate_per_instance = max(6, floor(var.duo_rate_per_minute / local.duo_pacers))

  # Optional settings, set only when given.
  environment_optional = {
    for key, value in {
      GROUP_FILTER    = var.group_filter
      OKTA_ORG_URL    = var.okta_org_url
      AUTH0_DOMAIN    = var.auth0_domain
      AUTH0_CLIENT_ID = var.auth0_client_id
    } : key => value if value != null
  }

  # Queue mode (storage.tf): the worker's queues and attempts.
  environment_queue = var.queue_enabled ? {
    RELAY_MODE               = "queue"
    RELAY_QUEUE_URL          = one(aws_sqs_queue.events[*].url)
    RELAY_DLQ_URL            = one(aws_sqs_queue.dead_letters[*].url)
    RELAY_QUEUE_MAX_ATTEMPTS = tostring(var.queue_max_attempts)
  } : {}

  # Seconds a hook invocation may run. In queue mode the same function works
  # the queue: a batch gets a minute (the worker starts no record with less
  # than 15 s left and cuts one off 3 s before the end).
  function_timeout = var.queue_enabled ? 60 : 10

  environment = merge(local.environment_base, local.environment_optional, local.environment_entra, local.user_sync_env, local.environment_queue)

  # The secret's JSON object: only the keys whose variable is set (the relay
  # treats a present key as configured).
  secret_values = {
    for key, value in {
      DUO_SKEY                 = var.duo_skey
      OKTA_AUTH_SECRET         = var.okta_auth_secret
      AUTH0_AUTH_SECRET        = var.auth0_auth_secret
      OKTA_API_TOKEN           = var.okta_api_token
      AUTH0_CLIENT_SECRET      = var.auth0_client_secret
      WEBHOOK_SIGNING_SECRETS  = var.webhook_signing_secrets
      ENTRA_CLIENT_STATE       = var.entra_client_state
      ENTRA_CLIENT_SECRET      = var.entra_client_secret
      ENTRA_CLIENT_CERTIFICATE = var.entra_client_certificate
    } : key => value if value != null
  }

  # Namespace of the relay's EMF metrics (crates/relay-server/src/metrics.rs),
  # one per deployment; monitoring.tf alarms on it.
  metrics_namespace = coalesce(var.metrics_namespace, "IdpDuoRelay/${var.name}")
}
