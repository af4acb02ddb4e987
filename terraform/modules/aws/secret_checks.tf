# The content checks of the sensitive variables: preconditions on these
# bools (the function, lambda.tf), not `validation` blocks of the variables.
# Terraform 1.11 prints the value of a variable whose validation fails when
# the module is planned as the root, sensitive or not (`var.duo_skey is
# "..."`, seen with terraform-offline; planned through a parent it does
# not), and a precondition's message shows none. Each keeps its former
# validation's condition and message; a value unknown until apply is
# checked at apply, as the validation was.
locals {
  duo_skey_shape_ok                = var.duo_skey == null || can(regex("^\\S{40,}$", var.duo_skey))
  okta_auth_secret_shape_ok        = var.okta_auth_secret == null || can([for s in split(",", var.okta_auth_secret) : regex("^[\\x20-\\x7e]{16,}$", trimspace(s))])
  auth0_auth_secret_shape_ok       = var.auth0_auth_secret == null || can([for s in split(",", var.auth0_auth_secret) : regex("^[\\x20-\\x7e]{16,}$", trimspace(s))])
  okta_api_token_shape_ok          = var.okta_api_token == null || can(regex("^\\S+", var.okta_api_token))
  auth0_client_secret_shape_ok     = var.auth0_client_secret == null || can(regex("^\\S+$", var.auth0_client_secret))
  webhook_signing_secrets_shape_ok = var.webhook_signing_secrets == null || can([for s in split(",", var.webhook_signing_secrets) : regex("^whsec_\\S+$", trimspace(s))])
  entra_client_state_shape_ok      = var.entra_client_state == null || can([for s in split(",", var.entra_client_state) : regex("^[\\x20-\\x7e]{16,128}$", trimspace(s))])
}
