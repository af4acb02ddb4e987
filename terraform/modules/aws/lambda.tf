resource "aws_lambda_function" "relay" {
  #checkov:skip=CKV_AWS_117:No VPC on purpose: the function only calls public endpoints (Duo's Admin API, Okta, Auth0, and AWS APIs); there is no private resource to reach, and a VPC would need a NAT gateway for internet egress.
  #checkov:skip=CKV_AWS_116:A dead-letter queue only catches asynchronous invocations; this function is invoked synchronously through its function URL, where the IdP sees the error and retries.
  #checkov:skip=CKV_AWS_272:The artifact is built locally by cargo lambda and pinned by source_code_hash; AWS Signer is not part of this build, so a code-signing config would refuse every deploy.
  function_name    = var.name
  description      = "idp-duo-relay: keeps Duo in step with Okta/Auth0 (hooks at the function URL)"
  role             = aws_iam_role.relay.arn
  runtime          = "provided.al2023"
  architectures    = ["arm64"]
  handler          = "bootstrap"
  filename         = var.lambda_zip_path
  source_code_hash = filebase64sha256(var.lambda_zip_path)
  timeout          = local.function_timeout
  memory_size      = 256
  kms_key_arn      = var.kms_key_arn
  tags             = var.tags

  # No reservation (-1) unless var.reserved_concurrency is set: an account
  # with the default quota of 10 cannot reserve any, and a low cap turns
  # deliveries into 429s (Okta retries only once).
  reserved_concurrent_executions = var.reserved_concurrency == null ? -1 : var.reserved_concurrency

  environment {
    variables = local.environment
  }

  tracing_config {
    mode = "Active"
  }

  # The relay writes one JSON object per line itself; the "Text" format
  # keeps each line as it is (JSON format would wrap it in another object).
  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.relay.name
  }

  lifecycle {
    precondition {
      condition     = local.duo_skey_shape_ok
      error_message = "duo_skey must be the Admin API secret key: at least 40 characters, no spaces (Duo Admin Panel → Applications → Admin API → Secret key)."
    }
    precondition {
      condition     = local.okta_auth_secret_shape_ok
      error_message = "okta_auth_secret must be at least 16 printable ASCII characters (each comma-separated value, during a rotation); the relay refuses shorter ones. Generate it with random_password."
    }
    precondition {
      condition     = local.auth0_auth_secret_shape_ok
      error_message = "auth0_auth_secret must be at least 16 printable ASCII characters (each comma-separated value, during a rotation); the relay refuses shorter ones. Generate it with random_password."
    }
    precondition {
      condition     = local.okta_api_token_shape_ok
      error_message = "okta_api_token must not be empty or start with a space; leave it null to run without Okta API lookups."
    }
    precondition {
      condition     = local.auth0_client_secret_shape_ok
      error_message = "auth0_client_secret must not be empty or contain spaces; leave it null to run without Auth0 Management API lookups."
    }
    precondition {
      condition     = local.webhook_signing_secrets_shape_ok
      error_message = "webhook_signing_secrets must be whsec_… values, comma-separated."
    }
    precondition {
      condition     = local.entra_client_state_shape_ok
      error_message = "entra_client_state must be 16-128 printable ASCII characters (the relay refuses shorter, Graph allows at most 128; each comma-separated value during a rotation)."
    }
    precondition {
      condition     = var.existing_secret_arn != null || var.duo_skey != null
      error_message = "duo_skey is required (the Duo Admin API secret key), unless existing_secret_arn names a secret that holds DUO_SKEY."
    }
    precondition {
      condition     = var.existing_secret_arn != null || var.okta_auth_secret != null || var.auth0_auth_secret != null || var.entra_client_state != null
      error_message = "Set okta_auth_secret, auth0_auth_secret, entra_client_state or several: the relay refuses to start without a secret to check deliveries against."
    }
    precondition {
      condition     = var.hook_sources == null || var.existing_secret_arn != null ? true : contains(var.hook_sources, "okta") == (var.okta_auth_secret != null) && contains(var.hook_sources, "auth0") == (var.auth0_auth_secret != null) && contains(var.hook_sources, "entra") == (var.entra_client_state != null && local.entra_credential_given)
      error_message = "hook_sources names the IdPs that deliver here, and each needs its secret: okta_auth_secret for \"okta\", auth0_auth_secret for \"auth0\", entra_client_state and entra_client_secret (or entra_client_certificate with entra_credential = \"certificate\") for \"entra\"; set no hook secret for an IdP it does not name."
    }
    precondition {
      condition     = local.entra_enabled == (var.entra_tenant_id != null && var.entra_client_id != null) && (local.entra_enabled || (var.entra_client_state == null && var.entra_client_secret == null && var.entra_client_certificate == null))
      error_message = "Entra ID needs hook_sources to include \"entra\" (it decides at plan time which settings the function gets) with entra_tenant_id and entra_client_id (and entra_client_state and entra_client_secret or entra_client_certificate, or existing_secret_arn holding them); without \"entra\" set none of them."
    }
    precondition {
      condition     = local.entra_certificate_shape_ok
      error_message = "entra_client_certificate must be PEM text holding both the certificate (-----BEGIN CERTIFICATE-----) and its unencrypted RSA private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----), e.g. cat relay.key relay.crt; the relay reads no encrypted or EC key."
    }
    precondition {
      condition     = local.entra_credential_alone
      error_message = "Set one Graph credential, not both: entra_client_secret (entra_credential = \"secret\", the default) or entra_client_certificate (entra_credential = \"certificate\"); the relay refuses ENTRA_CLIENT_SECRET and ENTRA_CLIENT_CERTIFICATE together. entra_credential decides which is stored: set it to \"certificate\" with a certificate."
    }
    precondition {
      condition     = var.entra_notification_url == null || local.entra_enabled
      error_message = "entra_notification_url is where Graph delivers Entra ID notifications: set it only with \"entra\" in hook_sources."
    }
    precondition {
      condition     = !var.entra_audit_log || (var.catch_up_enabled && local.catch_up_source == "entra")
      error_message = "entra_audit_log is read by the scheduled catch-up of Entra ID: set catch_up_enabled = true with catch_up_source \"entra\" (the default when \"entra\" is the only IdP with API settings)."
    }
    precondition {
      condition     = var.existing_secret_arn != null || (var.okta_org_url == null) == (var.okta_api_token == null)
      error_message = "okta_org_url and okta_api_token go together: set both (Okta API lookups) or neither."
    }
    precondition {
      condition     = (var.auth0_domain == null) == (var.auth0_client_id == null) && (var.existing_secret_arn != null || (var.auth0_domain == null) == (var.auth0_client_secret == null))
      error_message = "auth0_domain, auth0_client_id and auth0_client_secret go together: set all three (Auth0 Management API lookups) or none."
    }
  }

  # The role's policy, the secret's value and the log group exist before
  # the first cold start reads the secret or writes a line.
  depends_on = [
    aws_iam_role_policy.relay,
    aws_secretsmanager_secret_version.relay,
    aws_cloudwatch_log_group.relay,
  ]
}

# The IdPs call this URL. Authorization type NONE on purpose: Okta and Auth0
# cannot sign requests with SigV4, and the relay authenticates every delivery
# itself (the shared secret in OKTA_AUTH_HEADER or the Auth0 bearer token,
# compared in constant time; optionally a Standard Webhooks signature), so a
# request without the secret is answered 401 before any Duo call.
# With NONE, the provider (>= 6.28) also adds the resource-based statements
# that let anyone invoke the function through this URL, and only through it
# (lambda:InvokeFunctionUrl, and lambda:InvokeFunction with
# lambda:InvokedViaFunctionUrl).
resource "aws_lambda_function_url" "relay" {
  #checkov:skip=CKV_AWS_258:Okta and Auth0 cannot sign requests with SigV4; the relay authenticates every delivery itself (shared secret or bearer token, optionally Standard Webhooks signatures) and answers 401 otherwise.
  function_name      = aws_lambda_function.relay.function_name
  authorization_type = "NONE"
}

# Queue mode: Lambda polls the FIFO queue and invokes the function with up
# to queue_batch_size messages; the function answers which failed
# (batchItemFailures), Lambda deletes the rest. FIFO order holds per message
# group: the worker also reports every later message of a group behind a
# failed one. maximum_concurrency caps the parallel batches (Duo's rate
# limits), whatever the function's other traffic.
resource "aws_lambda_event_source_mapping" "events" {
  count = var.queue_enabled ? 1 : 0

  event_source_arn        = aws_sqs_queue.events[0].arn
  function_name           = aws_lambda_function.relay.arn
  batch_size              = var.queue_batch_size
  function_response_types = ["ReportBatchItemFailures"]
  tags                    = var.tags

  scaling_config {
    maximum_concurrency = var.queue_max_concurrency
  }

  # The role may read the queue before Lambda starts polling it.
  depends_on = [aws_iam_role_policy.relay]
}
