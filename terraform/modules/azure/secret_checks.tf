# The content checks of the sensitive variables: preconditions on these
# bools (the function app, function.tf), not `validation` blocks of the variables.
# Terraform 1.11 prints the value of a variable whose validation fails when
# the module is planned as the root, sensitive or not (`var.duo_skey is
# "..."`, seen with terraform-offline; planned through a parent it does
# not), and a precondition's message shows none. Each keeps its former
# validation's condition and message; a value unknown until apply is
# checked at apply, as the validation was.
locals {
  duo_skey_shape_ok = length(trimspace(var.duo_skey)) >= 40
  okta_auth_secret_shape_ok = var.okta_auth_secret == null ? true : (
    length(split(",", var.okta_auth_secret)) <= 3 &&
    alltrue([for s in split(",", var.okta_auth_secret) : length(trimspace(s)) >= 16 && can(regex("^[ -~]+$", s))])
  )
  auth0_auth_secret_shape_ok = var.auth0_auth_secret == null ? true : (
    length(split(",", var.auth0_auth_secret)) <= 3 &&
    alltrue([for s in split(",", var.auth0_auth_secret) : length(trimspace(s)) >= 16 && can(regex("^[ -~]+$", s))])
  )
  webhook_signing_secrets_shape_ok = var.webhook_signing_secrets == null ? true : alltrue([for s in split(",", var.webhook_signing_secrets) : startswith(trimspace(s), "whsec_")])
  okta_api_token_shape_ok          = var.okta_api_token == null ? true : length(trimspace(var.okta_api_token)) > 0
  auth0_client_secret_shape_ok     = var.auth0_client_secret == null ? true : length(trimspace(var.auth0_client_secret)) > 0
  entra_client_state_shape_ok = var.entra_client_state == null ? true : (
    length(split(",", var.entra_client_state)) <= 3 &&
    alltrue([for s in split(",", var.entra_client_state) : length(trimspace(s)) >= 16 && length(trimspace(s)) <= 128 && can(regex("^[ -~]+$", s))])
  )
}
