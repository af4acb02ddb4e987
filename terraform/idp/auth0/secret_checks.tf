# The content checks of the sensitive variables: preconditions on these
# bools (both streams that send it, main.tf), not `validation` blocks of the variables.
# Terraform 1.11 prints the value of a variable whose validation fails when
# the module is planned as the root, sensitive or not (`var.duo_skey is
# "..."`, seen with terraform-offline; planned through a parent it does
# not), and a precondition's message shows none. Each keeps its former
# validation's condition and message; a value unknown until apply is
# checked at apply, as the validation was.
locals {
  auth0_auth_secret_shape_ok = var.auth0_auth_secret == null || try(length(var.auth0_auth_secret) >= 16 && !strcontains(var.auth0_auth_secret, ","), false)
}
