# One Secret Manager secret per secret variable that is set, named after the
# environment variable it feeds (DUO_SKEY → <name>-duo-skey). Cloud Run
# resolves each into that variable when an instance starts; the service pins
# the exact version created here, so a new value rolls out as a new revision.
#
# The values pass through Terraform state (as any value Terraform writes
# does): keep the state in an encrypted backend with restricted access.

resource "google_secret_manager_secret" "relay" {
  # Google-managed encryption: no Cloud KMS key ring needed. Add
  # replication.auto.customer_managed_encryption if policy requires CMEK.
  for_each = local.secret_env

  project   = var.project
  secret_id = "${var.name}-${lower(replace(each.key, "_", "-"))}"
  labels    = merge(local.labels, { env = lower(each.key) })

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret_version" "relay" {
  for_each = local.secret_env

  secret      = google_secret_manager_secret.relay[each.key].id
  secret_data = local.secret_values[each.key]

  lifecycle {
    # A changed value is a new version: create it and move the service onto
    # it before the old one is destroyed, so no instance start ever refers
    # to a destroyed version.
    create_before_destroy = true
  }
}

# Read access on each of these secrets only — no project-wide grant.
resource "google_secret_manager_secret_iam_member" "relay" {
  for_each = local.secret_env

  project   = var.project
  secret_id = google_secret_manager_secret.relay[each.key].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.relay.member
}
