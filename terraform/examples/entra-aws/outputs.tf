output "entra_notification_url" {
  description = "The URL Microsoft Graph notifies, where the scheduled catch-up creates and renews the subscriptions (`idp-duo-relay entra subscribe --url` by hand must use this same string)."
  value       = module.relay.entra_notification_url
}

output "entra_subscribe" {
  description = "How the Graph subscriptions come to exist after the apply, and how to create them at once (README \"Entra ID\")."
  value       = var.catch_up_enabled ? local.entra_subscribe_scheduled : local.entra_subscribe_by_hand
}

locals {
  # The module names the catch-up function "<name>-catch-up" and the
  # scheduler hands it this payload (modules/aws/catch_up.tf, locals
  # catch_up_name and catch_up_task); invoking it with the same payload is
  # one scheduled run, now.
  catch_up_function = "${var.name}-catch-up"

  entra_subscribe_scheduled = <<-EOT
    # The scheduled catch-up (catch_up_schedule, default every 15 minutes) creates the
    # subscriptions on its first run and renews them on every run. To run it now:
    curl -fsS "${module.relay.healthz_url}"     # the relay must answer first: Graph validates through it
    aws lambda invoke --region ${var.region} --function-name ${local.catch_up_function} \
      --cli-binary-format raw-in-base64-out --payload '{"relay_task":"catch_up","source":"entra"}' /dev/stdout
    # Then read its line (message "catch_up", source "entra") in CloudWatch Logs (output logs).
    # Optional, from your machine instead (cargo build --release -p relay-cli):
    #   export ENTRA_TENANT_ID="$(terraform -chdir=../../idp/entra output -raw tenant_id)"
    #   export ENTRA_CLIENT_ID="$(terraform -chdir=../../idp/entra output -raw client_id)"
    #   export ENTRA_CLIENT_SECRET="$(terraform -chdir=../../idp/entra output -raw client_secret)"   # or ENTRA_CLIENT_CERTIFICATE="$(cat relay.key relay.crt)"
    #   export ENTRA_CLIENT_STATE="$(terraform output -raw entra_client_state)"
    #   idp-duo-relay entra subscribe --url "${module.relay.entra_notification_url}"
  EOT

  entra_subscribe_by_hand = <<-EOT
    # catch_up_enabled is false: nothing renews the subscriptions. From this folder, with the
    # idp-duo-relay CLI (cargo build --release -p relay-cli):
    export ENTRA_TENANT_ID="$(terraform -chdir=../../idp/entra output -raw tenant_id)"
    export ENTRA_CLIENT_ID="$(terraform -chdir=../../idp/entra output -raw client_id)"
    export ENTRA_CLIENT_SECRET="$(terraform -chdir=../../idp/entra output -raw client_secret)"   # or ENTRA_CLIENT_CERTIFICATE="$(cat relay.key relay.crt)"
    export ENTRA_CLIENT_STATE="$(terraform output -raw entra_client_state)"
    curl -fsS "${module.relay.healthz_url}"     # the relay must answer first: Graph validates through it
    idp-duo-relay entra subscribe --url "${module.relay.entra_notification_url}"
    # Run the last line daily (cron, a pipeline): it renews the subscriptions, or re-creates one Graph removed.
  EOT
}

output "entra_client_state" {
  description = "The subscriptions' clientState (ENTRA_CLIENT_STATE), for `entra subscribe`: `terraform output -raw entra_client_state`."
  value       = random_password.client_state.result
  sensitive   = true
}

output "healthz_url" {
  description = "GET it: {\"status\":\"ok\"} when the function runs."
  value       = module.relay.healthz_url
}

output "logs" {
  description = "Where to read the relay's logs, with a starter query."
  value       = module.relay.logs
}

output "function_name" {
  description = "The hook function (the one Graph notifies; the catch-up function is <name>-catch-up)."
  value       = module.relay.function_name
}
