# One secret, a JSON object of strings keyed by variable name (DUO_SKEY,
# OKTA_AUTH_SECRET, …), read by the function at cold start and again after
# RELAY_SECRET_TTL_SECS. Not created when var.existing_secret_arn is set.
# The values are in the Terraform state: keep the state encrypted and private.
resource "aws_secretsmanager_secret" "relay" {
  #checkov:skip=CKV2_AWS_57:The secret holds third-party credentials (the Duo Admin API key, the IdP hook secrets) that no rotation Lambda could change at Duo, Okta or Auth0; rotate them by changing the variables and applying (see the README), and the relay re-reads the secret within RELAY_SECRET_TTL_SECS.
  count = local.create_secret ? 1 : 0

  name                    = var.name
  description             = "idp-duo-relay configuration secrets (JSON: DUO_SKEY, OKTA_AUTH_SECRET and/or AUTH0_AUTH_SECRET, …)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = var.tags
}

resource "aws_secretsmanager_secret_version" "relay" {
  count = local.create_secret ? 1 : 0

  secret_id     = aws_secretsmanager_secret.relay[0].id
  secret_string = jsonencode(local.secret_values)
}
