# idp-duo-relay on AWS Lambda, fed by Microsoft Entra ID: Microsoft Graph
# change notifications on users and groups (POST <function URL>/entra),
# each one read back from Graph with the relay's own app registration.
# Build first: cargo lambda build --release --arm64 -p relay-aws --output-format zip
# The app registration comes first, from its own root: apply
# terraform/idp/entra (it needs the azuread provider and a login that may
# grant admin consent) and pass its tenant_id, client_id and client_secret
# outputs here (or, instead of the secret, a certificate registered on the
# app: entra_client_certificate) (terraform/README.md, "entra-aws"). Kept
# apart so that this root needs only aws and random, like the other
# examples.
#
# The Graph subscriptions are not Terraform resources (Graph validates a
# new one by calling the running relay, and they expire within a month):
# the relay's scheduled catch-up (catch_up_enabled, on by default here;
# its own function, which the module gives ENTRA_NOTIFICATION_URL)
# creates them on its first run after the apply and renews them on every
# run, then runs the users/groups delta catch-up and, with entra_audit_log,
# polls the audit log for MFA resets (README "Entra ID").
# `terraform output -raw entra_subscribe` prints how to run it at once.

provider "aws" {
  region = var.region
}

# The subscriptions' clientState: a secret between Graph and the relay only
# (the relay gives it to Graph when it creates a subscription), made here
# like the other examples' hook secrets. Its value is known only after
# apply; the module decides its secret's keys from hook_sources.
resource "random_password" "client_state" {
  length  = 64
  special = false
}

module "relay" {
  source = "../../modules/aws"

  # Which secrets the relay stores, decided at plan time: the clientState
  # and the client secret themselves are only known after apply.
  hook_sources = ["entra"]

  entra_tenant_id = var.entra_tenant_id
  entra_client_id = var.entra_client_id
  # The Graph credential: the client secret, or a certificate when one is
  # given (the module refuses both and neither). Here both are variables of
  # this root, known while planning; nonsensitive() unmarks only whether a
  # certificate is given, which the plan shows anyway (which credential
  # the module stores).
  entra_credential         = nonsensitive(var.entra_client_certificate != null) ? "certificate" : "secret"
  entra_client_secret      = var.entra_client_secret
  entra_client_certificate = var.entra_client_certificate
  entra_client_state       = random_password.client_state.result

  name               = var.name
  lambda_zip_path    = var.lambda_zip_path
  duo_api_host       = var.duo_api_host
  duo_ikey           = var.duo_ikey
  duo_skey           = var.duo_skey
  deprovision_action = var.deprovision_action
  group_filter       = var.group_filter
  log_retention_days = var.log_retention_days
  alert_email        = var.alert_email
  queue_enabled      = var.queue_enabled
  tags               = var.tags

  # Scheduled catch-up from Graph (on by default: it is what creates and
  # renews the subscriptions): subscriptions at entra_notification_url
  # (default the function URL + /entra, set on the catch-up function
  # only), delta catch-up, and the audit-log poll when entra_audit_log is
  # set.
  catch_up_enabled           = var.catch_up_enabled
  catch_up_source            = "entra"
  catch_up_schedule          = var.catch_up_schedule
  catch_up_window            = var.catch_up_window
  catch_up_lag_alarm_seconds = var.catch_up_lag_alarm_seconds
  entra_notification_url     = var.entra_notification_url
  # The MFA-reset poll of the audit log: needs AuditLog.Read.All, which
  # terraform/idp/entra grants with audit_log_enabled = true.
  entra_audit_log = var.entra_audit_log

  # Scheduled reconcile (off unless reconcile_schedule is set): reads every
  # user and group from Graph with the same app registration.
  reconcile_schedule = var.reconcile_schedule
  reconcile_source   = "entra"

  # Who and what is synced (attribute mapping, scope by IdP group,
  # accounts left alone, phones): the module's user_sync variable.
  user_sync = var.user_sync
}
