resource "azurerm_service_plan" "relay" {
  #checkov:skip=CKV_AZURE_211:The Consumption plan (Y1) is the intended production plan for this workload: a few webhook deliveries a minute, scale to zero, pay per execution (main.tf says why not Flex Consumption).
  #checkov:skip=CKV_AZURE_212:Instance counts do not apply to the Consumption plan: the platform adds instances on demand, up to max_instances.
  #checkov:skip=CKV_AZURE_225:Zone redundancy is not available on the Consumption plan; a failed delivery is retried by the IdP.
  name                = "${var.name}-plan"
  resource_group_name = local.resource_group_name
  location            = var.location
  os_type             = "Linux"
  sku_name            = "Y1"
  tags                = var.tags
}

locals {
  # OKTA_AUTH_SECRET, AUTH0_AUTH_SECRET, OKTA_API_TOKEN, AUTH0_CLIENT_SECRET,
  # WEBHOOK_SIGNING_SECRETS, ENTRA_CLIENT_STATE, ENTRA_CLIENT_SECRET or ENTRA_CLIENT_CERTIFICATE when set: Key Vault references pinned to the
  # secret version this apply wrote, so a changed value restarts the app
  # with it at once (DUO_SKEY, always set, is listed in app_settings).
  optional_secret_settings = {
    for env in local.secrets_set :
    env => "@Microsoft.KeyVault(SecretUri=${azurerm_key_vault_secret.relay[env].id})" if env != "DUO_SKEY"
  }

  # Optional plain settings, set only when given.
  # Duo's budget is the account's and each instance paces itself: queue
  # mode runs one instance, sync mode at most max_instances (the reconcile
  # timer runs inside them).
  duo_rate_per_instance = max(6, floor(var.duo_rate_per_minute / (var.queue_enabled ? 1 : var.max_instances)))

  optional_plain_settings = {
    for env, value in {
      GROUP_FILTER    = var.group_filter
      OKTA_ORG_URL    = var.okta_org_url
      AUTH0_DOMAIN    = var.auth0_domain
      AUTH0_CLIENT_ID = var.auth0_client_id
    } : env => value if value != null
  }

  # Queue mode (README "Azure Functions": queue mode): the accept stage puts
  # events on RELAY_QUEUE_NAME (with the same identity, at
  # AZURE_STORAGE_QUEUE_ENDPOINT) and the queue_worker function's trigger
  # reads it (%RELAY_QUEUE_NAME%). The host resolves that expression even
  # for a disabled function, so RELAY_QUEUE_NAME is always set; in sync
  # mode the function is switched off instead.
  queue_settings = var.queue_enabled ? {
    RELAY_MODE                   = "queue"
    RELAY_QUEUE_NAME             = local.queue_name
    AZURE_STORAGE_QUEUE_ENDPOINT = trimsuffix(azurerm_storage_account.relay.primary_queue_endpoint, "/")
    } : {
    RELAY_QUEUE_NAME                   = local.queue_name
    AzureWebJobs_queue_worker_Disabled = "true"
  }
}

# Public and without App Service authentication on purpose: Okta event hooks
# and Auth0 streams can neither sign in nor send a Functions key, so the
# functions are authLevel anonymous (crates/relay-azure/app/README.md) and
# the relay authenticates every delivery itself (shared secret compared in
# constant time, optional Standard Webhooks signature), answering 401 first.
resource "azurerm_linux_function_app" "relay" {
  #checkov:skip=CKV_AZURE_221:The IdPs call the hook URLs from the internet, so the app must be public.
  name                                           = local.function_app_name
  resource_group_name                            = local.resource_group_name
  location                                       = var.location
  service_plan_id                                = azurerm_service_plan.relay.id
  functions_extension_version                    = "~4"
  storage_account_name                           = azurerm_storage_account.relay.name
  storage_uses_managed_identity                  = true
  key_vault_reference_identity_id                = azurerm_user_assigned_identity.relay.id
  https_only                                     = true
  public_network_access_enabled                  = true
  builtin_logging_enabled                        = false
  ftp_publish_basic_authentication_enabled       = false
  webdeploy_publish_basic_authentication_enabled = false
  tags                                           = var.tags

  # What relay-azure reads (README: "Azure Functions") and what the host
  # needs to run it. AzureWebJobsStorage__accountName and
  # APPLICATIONINSIGHTS_CONNECTION_STRING are written by the provider from
  # storage_uses_managed_identity and site_config below; listing them here
  # too would make every plan show a change.
  app_settings = merge(
    {
      FUNCTIONS_WORKER_RUNTIME = "custom"

      # The package, fetched with the user-assigned identity.
      WEBSITE_RUN_FROM_PACKAGE                     = azurerm_storage_blob.package.url
      WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID = azurerm_user_assigned_identity.relay.id

      # Identity-based host storage with the same identity.
      AzureWebJobsStorage__credential = "managedidentity"
      AzureWebJobsStorage__clientId   = azurerm_user_assigned_identity.relay.client_id

      # The idempotency table, with the same identity (relay-azure asks
      # IDENTITY_ENDPOINT for a token for AZURE_CLIENT_ID).
      AZURE_STORAGE_TABLE_ENDPOINT = trimsuffix(azurerm_storage_account.relay.primary_table_endpoint, "/")
      AZURE_CLIENT_ID              = azurerm_user_assigned_identity.relay.client_id
      RELAY_TABLE_NAME             = local.table_name

      DUO_API_HOST        = var.duo_api_host
      DUO_IKEY            = var.duo_ikey
      DUO_SKEY            = "@Microsoft.KeyVault(SecretUri=${azurerm_key_vault_secret.relay["DUO_SKEY"].id})"
      OKTA_AUTH_HEADER    = var.okta_auth_header
      DEPROVISION_ACTION  = var.deprovision_action
      RELAY_LOG_FORMAT    = "json"
      DUO_RATE_PER_MINUTE = tostring(local.duo_rate_per_instance)
    },
    local.optional_secret_settings,
    local.optional_plain_settings,
    local.entra_settings,
    local.user_sync_env,
    local.queue_settings,
    local.reconcile_settings,
    local.catch_up_settings,
  )

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.relay.id]
  }

  site_config {
    application_insights_connection_string = azurerm_application_insights.relay.connection_string
    ftps_state                             = "Disabled"
    http2_enabled                          = true
    minimum_tls_version                    = "1.2"
    scm_minimum_tls_version                = "1.2"
    remote_debugging_enabled               = false

    # Queue mode applies events one at a time (host.json batchSize 1) on
    # one instance: Storage Queues keep no order, so this is what keeps one
    # subject's events from racing each other (README: queue mode).
    app_scale_limit = var.queue_enabled ? 1 : var.max_instances

    application_stack {
      use_custom_runtime = true
    }
  }

  lifecycle {
    precondition {
      condition     = local.duo_skey_shape_ok
      error_message = "duo_skey must be the Admin API secret key (40 characters), not empty."
    }
    precondition {
      condition     = local.okta_auth_secret_shape_ok
      error_message = "okta_auth_secret must be at least 16 printable ASCII characters (the relay refuses shorter); for a rotation give at most 3 comma-separated values, each at least 16 characters."
    }
    precondition {
      condition     = local.auth0_auth_secret_shape_ok
      error_message = "auth0_auth_secret must be at least 16 printable ASCII characters (the relay refuses shorter); for a rotation give at most 3 comma-separated values, each at least 16 characters."
    }
    precondition {
      condition     = local.webhook_signing_secrets_shape_ok
      error_message = "webhook_signing_secrets must be one or more comma-separated Standard Webhooks secrets, each starting with whsec_; leave it unset (null) for none."
    }
    precondition {
      condition     = local.okta_api_token_shape_ok
      error_message = "okta_api_token must not be empty: leave it unset (null) instead."
    }
    precondition {
      condition     = local.auth0_client_secret_shape_ok
      error_message = "auth0_client_secret must not be empty: leave it unset (null) instead."
    }
    precondition {
      condition     = local.entra_client_state_shape_ok
      error_message = "entra_client_state must be 16-128 printable ASCII characters (the relay refuses shorter, Graph allows at most 128); for a rotation at most 3 comma-separated values."
    }
    precondition {
      condition     = contains(var.hook_sources, "okta") == (var.okta_auth_secret != null) && contains(var.hook_sources, "auth0") == (var.auth0_auth_secret != null) && local.entra_enabled == (var.entra_client_state != null)
      error_message = "hook_sources names the IdPs that deliver here, and each needs its secret: okta_auth_secret for \"okta\", auth0_auth_secret for \"auth0\", entra_client_state for \"entra\"; set no hook secret for an IdP it does not name (it would be left out)."
    }
    precondition {
      condition     = local.entra_enabled == (var.entra_tenant_id != null && var.entra_client_id != null && local.entra_credential_given)
      error_message = "hook_sources \"entra\" needs entra_tenant_id, entra_client_id and a Graph credential: entra_client_secret (entra_credential = \"secret\", the default; terraform/idp/entra outputs all three) or entra_client_certificate (entra_credential = \"certificate\"). Every notification is read from Graph with them; without \"entra\" set none of them."
    }
    precondition {
      condition     = local.entra_certificate_shape_ok
      error_message = "entra_client_certificate must be PEM text holding both the certificate (-----BEGIN CERTIFICATE-----) and its unencrypted RSA private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----), e.g. cat relay.key relay.crt; the relay reads no encrypted or EC key."
    }
    precondition {
      condition     = local.entra_credential_alone
      error_message = "Set one Graph credential, not both: entra_client_secret (entra_credential = \"secret\", the default) or entra_client_certificate (entra_credential = \"certificate\"); the relay refuses ENTRA_CLIENT_SECRET and ENTRA_CLIENT_CERTIFICATE together. entra_credential decides which is stored: set it to \"certificate\" with a certificate."
    }
    precondition {
      condition     = var.entra_notification_url == null || local.entra_enabled
      error_message = "entra_notification_url is where Graph delivers Entra ID notifications: set it only with \"entra\" in hook_sources."
    }
    precondition {
      condition     = !var.entra_audit_log || (var.catch_up_enabled && local.catch_up_source == "entra")
      error_message = "entra_audit_log is read by the scheduled catch-up of Entra ID: set catch_up_enabled = true with catch_up_source \"entra\" (the default when \"entra\" is the only IdP with API settings)."
    }
  }

  # The identity's roles should be in force before the first start: it
  # fetches the package and resolves the Key Vault references at once.
  depends_on = [time_sleep.app_access]
}
