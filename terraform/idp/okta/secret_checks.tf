# The content checks of the sensitive variables: preconditions on these
# bools (the event hook that sends it, main.tf), not `validation` blocks of the variables.
# Terraform 1.11 prints the value of a variable whose validation fails when
# the module is planned as the root, sensitive or not (`var.duo_skey is
# "..."`, seen with terraform-offline; planned through a parent it does
# not), and a precondition's message shows none. Each keeps its former
# validation's condition and message; a value unknown until apply is
# checked at apply, as the validation was.
locals {
  okta_auth_secret_shape_ok = var.okta_auth_secret == null || try(length(var.okta_auth_secret) >= 16 && !strcontains(var.okta_auth_secret, ","), false)
}
