# The Entra ID side of the relay: the app registration the relay reads
# Microsoft Graph with (client credentials), its application permissions
# with admin consent, and its client secret. (The subscriptions' clientState
# is the relay's: the root that deploys it generates it, as
# examples/entra-azure does.)
#
# The subscriptions themselves are NOT created here: the relay creates and
# renews them (`idp-duo-relay entra subscribe --url <entra_notification_url>`,
# README "Entra ID"), because Graph validates a new subscription by calling
# the relay, which must be running and hold the clientState first, and
# because a subscription on users or groups lives at most about a month
# and must be renewed on a schedule, which a Terraform apply is not.

data "azuread_client_config" "current" {}

# Microsoft Graph's well-known client id, and its service principal in this
# tenant, whose app_role_ids map the permission names to the app role ids:
# the pattern of the azuread provider's own documentation
# (docs/resources/application_api_access.md,
# docs/data-sources/application_published_app_ids.md), so no role GUID is
# written here. Data sources, not `resource "azuread_service_principal"`
# with use_existing: on destroy such a resource tries to delete the
# service principal it adopted, Microsoft Graph's own
# (docs/resources/service_principal.md, "Caveats of use_existing";
# hashicorp/terraform-provider-azuread#1141).
#
# depends_on: both are read during the first apply (that plan shows the
# role ids as "known after apply"), and at plan time on every later run,
# because time_static.first_apply never changes once created. The offline plan check (terraform/tests) needs
# the first: its mock data sources answer empty maps, in which no
# permission name can be looked up. Not the app registration as the
# anchor: a change to it would defer the read again, and an app role id
# unknown while planning forces the app role assignments to be replaced
# (consent revoked and granted again).
data "azuread_application_published_app_ids" "well_known" {
  depends_on = [time_static.first_apply]
}

data "azuread_service_principal" "msgraph" {
  client_id = data.azuread_application_published_app_ids.well_known.result["MicrosoftGraph"]

  depends_on = [time_static.first_apply]

  lifecycle {
    postcondition {
      condition     = alltrue([for p in local.graph_permissions : contains(keys(self.app_role_ids), p)])
      error_message = "Microsoft Graph's service principal in this tenant does not publish every application permission the relay needs (${join(", ", local.graph_permissions)})."
    }
  }
}

locals {
  # Application permissions (app roles of Microsoft Graph), least privilege
  # for what the relay calls:
  # - User.Read.All: read users (GET /users/{id}, /users/{id}/memberOf,
  #   /users for reconcile) and subscribe to `users` change notifications;
  # - Group.Read.All: read groups and their members, and subscribe to
  #   `groups` change notifications, which Graph allows with Group.Read.All
  #   only (the permission tables of "Create subscription",
  #   learn.microsoft.com/graph/api/subscription-post-subscriptions: group →
  #   Group.Read.All, user → User.Read.All, application). GroupMember.Read.All
  #   would cover the reads but not the subscription;
  # - AuditLog.Read.All (audit_log_enabled): the MFA resets read from
  #   GET /auditLogs/directoryAudits (the modules' entra_audit_log on the
  #   scheduled catch-up, or `entra audit`).
  graph_permissions = concat(
    ["User.Read.All", "Group.Read.All"],
    var.audit_log_enabled ? ["AuditLog.Read.All"] : [],
  )
}

# A registration of this tenant only (AzureADMyOrg): the relay signs in to
# its own tenant with client credentials and never signs users in.
resource "azuread_application_registration" "relay" {
  display_name     = var.display_name
  description      = "idp-duo-relay: reads users and groups from Microsoft Graph to keep Duo in step (change notifications, reconcile)."
  sign_in_audience = "AzureADMyOrg"
}

# The permissions the registration asks for (the portal's "API permissions"
# page). They take effect through the app role assignments below.
resource "azuread_application_api_access" "msgraph" {
  application_id = azuread_application_registration.relay.id
  api_client_id  = data.azuread_application_published_app_ids.well_known.result["MicrosoftGraph"]
  role_ids       = [for p in local.graph_permissions : data.azuread_service_principal.msgraph.app_role_ids[p]]
}

# The registration's identity in this tenant: what the app role
# assignments are granted to, and what signs in with the client secret.
resource "azuread_service_principal" "relay" {
  client_id = azuread_application_registration.relay.client_id
}

# Admin consent for application permissions: one app role assignment per
# permission, from Graph's service principal to the relay's
# (docs/resources/app_role_assignment.md: "Can be used to grant admin
# consent for application permissions"). Needs, for whoever runs
# Terraform, AppRoleAssignment.ReadWrite.All + Application.Read.All (a
# service principal) or Application Administrator / Global Administrator
# (a user) per the same page.
resource "azuread_app_role_assignment" "msgraph" {
  for_each = toset(local.graph_permissions)

  app_role_id         = data.azuread_service_principal.msgraph.app_role_ids[each.key]
  principal_object_id = azuread_service_principal.relay.object_id
  resource_object_id  = data.azuread_service_principal.msgraph.object_id
}

# A certificate instead of this client secret (the cloud modules'
# entra_client_certificate, ENTRA_CLIENT_CERTIFICATE) is not registered
# here: azuread_application_certificate is not in the azuread schema the
# offline plan check serves (terraform/tests/schemas), and this root is
# planned with it. Register the certificate's public part on this app in
# the Entra admin center (App registrations → the app → Certificates &
# secrets → Certificates) or with your own azuread configuration; the
# client secret below is still made (delete it there if the certificate
# is to be the only credential).
#
# The client secret's rotation: every client_secret_rotation_days, the next
# apply replaces it (rotate_when_changed, docs/resources/application_password.md
# "Time-based rotation"). create_before_destroy: the new secret exists, and
# has reached the relay's secret store (the cloud module depends on it),
# before the old one is deleted. Entra ID stops accepting a secret at its
# end_date, which is client_secret_grace_days after the rotation date: an
# apply must run within that window.
resource "time_rotating" "client_secret" {
  rotation_days = var.client_secret_rotation_days
}

resource "azuread_application_password" "relay" {
  application_id = azuread_application_registration.relay.id
  display_name   = "idp-duo-relay (rotates ${time_rotating.client_secret.rotation_rfc3339})"
  end_date       = timeadd(time_rotating.client_secret.rotation_rfc3339, "${var.client_secret_grace_days * 24}h")

  rotate_when_changed = {
    rotation = time_rotating.client_secret.id
  }

  lifecycle {
    create_before_destroy = true
  }
}

# The time of the first apply: the anchor of the Graph data sources above
# (set once, never replaced).
resource "time_static" "first_apply" {}
