# The idempotency store: one document per event in the `relay-idempotency`
# collection (crates/relay-gcp/src/firestore.rs), in a native-mode database of
# the relay's own unless create_firestore_database = false.

resource "google_firestore_database" "relay" {
  count = var.create_firestore_database ? 1 : 0

  project     = var.project
  name        = local.firestore_database
  location_id = local.firestore_location
  type        = "FIRESTORE_NATIVE"

  # Records expire after 7 days and only stop duplicates from being applied
  # twice: no point-in-time recovery or backups needed.
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_DISABLED"
  delete_protection_state           = var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  # The provider's default (ABANDON) would leave the database behind on destroy.
  deletion_policy = "DELETE"

  depends_on = [google_project_service.enabled]
}

# TTL policy: Firestore deletes a document some time (usually within a day)
# after its `expires_at` timestamp. The relay does not rely on the deletion
# (an expired document is treated as absent), it only keeps the collection
# small. No single-field index on expires_at: nothing queries it, and an
# index on an ever-increasing timestamp is a write hotspot.
resource "google_firestore_field" "expires_at" {
  project    = var.project
  database   = var.create_firestore_database ? google_firestore_database.relay[0].name : local.firestore_database
  collection = local.firestore_collection
  field      = "expires_at"

  ttl_config {}
  index_config {}

  depends_on = [google_project_service.enabled]
}

# The Duo group index lives in the same collection (crates/relay-gcp/src/groups.rs):
# shard documents whose map field `groups` holds one entry per Duo group
# (about 78 a document at 5,000 groups). Nothing queries it; without this
# exemption Firestore would index every entry of the map on every write.
resource "google_firestore_field" "groups" {
  project    = var.project
  database   = var.create_firestore_database ? google_firestore_database.relay[0].name : local.firestore_database
  collection = local.firestore_collection
  field      = "groups"

  index_config {}

  # One field operation at a time on a database.
  depends_on = [google_firestore_field.expires_at]
}

# roles/datastore.user can only be granted on the project: Firestore has no
# per-database or per-collection IAM policy. The condition narrows the grant
# to this one database, so the relay cannot read or write any other database
# in the project (including a (default) one used by something else).
resource "google_project_iam_member" "relay_firestore" {
  project = var.project
  role    = "roles/datastore.user"
  member  = google_service_account.relay.member

  condition {
    title       = "${var.name}-firestore-only"
    description = "Only the ${local.firestore_database} Firestore database"
    expression  = "resource.name == \"projects/${var.project}/databases/${local.firestore_database}\""
  }
}
