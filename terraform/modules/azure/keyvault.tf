# The relay's secrets, one Key Vault secret per secret variable that is set.
# The Function App's settings are Key Vault references the platform resolves
# with the app's identity (Key Vault Secrets User on this vault only) and
# hands to relay-azure as plain environment variables; a reference that does
# not resolve stops start-up naming the setting.
resource "azurerm_key_vault" "relay" {
  #checkov:skip=CKV_AZURE_109:Linux Consumption apps have no virtual network integration and Key Vault references are not a trusted-service bypass, so the platform resolves them over the public endpoint: a default-deny firewall would leave every reference unresolved. Access is by Azure RBAC only.
  #checkov:skip=CKV_AZURE_189:Same reason: public network access must stay on for the references of a Consumption-plan app (and for Terraform writing the secrets).
  #checkov:skip=CKV2_AZURE_32:Private endpoints need a virtual network the Consumption plan cannot join.
  name                          = local.key_vault_name
  resource_group_name           = local.resource_group_name
  location                      = var.location
  tenant_id                     = data.azurerm_client_config.current.tenant_id
  sku_name                      = "standard"
  rbac_authorization_enabled    = true
  purge_protection_enabled      = true
  soft_delete_retention_days    = 90
  public_network_access_enabled = true
  tags                          = var.tags

  network_acls {
    default_action = "Allow"
    bypass         = "AzureServices"
  }
}

locals {
  # Environment variable => Key Vault secret name, for the secret variables.
  secret_names = {
    DUO_SKEY                 = "duo-skey"
    OKTA_AUTH_SECRET         = "okta-auth-secret"
    AUTH0_AUTH_SECRET        = "auth0-auth-secret"
    OKTA_API_TOKEN           = "okta-api-token"
    AUTH0_CLIENT_SECRET      = "auth0-client-secret"
    WEBHOOK_SIGNING_SECRETS  = "webhook-signing-secrets"
    ENTRA_CLIENT_STATE       = "entra-client-state"
    ENTRA_CLIENT_SECRET      = "entra-client-secret"
    ENTRA_CLIENT_CERTIFICATE = "entra-client-certificate"
  }

  secret_values = {
    DUO_SKEY                 = var.duo_skey
    OKTA_AUTH_SECRET         = var.okta_auth_secret
    AUTH0_AUTH_SECRET        = var.auth0_auth_secret
    OKTA_API_TOKEN           = var.okta_api_token
    AUTH0_CLIENT_SECRET      = var.auth0_client_secret
    WEBHOOK_SIGNING_SECRETS  = var.webhook_signing_secrets
    ENTRA_CLIENT_STATE       = var.entra_client_state
    ENTRA_CLIENT_SECRET      = var.entra_client_secret
    ENTRA_CLIENT_CERTIFICATE = var.entra_client_certificate
  }

  # Which secrets exist (resource keys and app setting names) is decided
  # from variables known at plan time, never from the secret values: a hook
  # secret generated in the same apply (random_password) is unknown while
  # planning, and a key set built from it fails with "Invalid for_each
  # argument". DUO_SKEY always; the hook secret of each IdP in
  # hook_sources (for "entra" the clientState and the credential, the client secret
  # or the certificate as the variable entra_credential says: either may be
  # made in the same apply, as terraform/idp/entra's client secret is); an optional
  # secret when its variable is set. nonsensitive()
  # only unmarks whether an optional secret is set, which is no secret: the
  # plan names the Key Vault secret anyway.
  secrets_set = toset(concat(
    ["DUO_SKEY"],
    contains(var.hook_sources, "okta") ? ["OKTA_AUTH_SECRET"] : [],
    contains(var.hook_sources, "auth0") ? ["AUTH0_AUTH_SECRET"] : [],
    local.entra_enabled ? ["ENTRA_CLIENT_STATE", local.entra_credential_env] : [],
    nonsensitive(var.okta_api_token != null) ? ["OKTA_API_TOKEN"] : [],
    nonsensitive(var.auth0_client_secret != null) ? ["AUTH0_CLIENT_SECRET"] : [],
    nonsensitive(var.webhook_signing_secrets != null) ? ["WEBHOOK_SIGNING_SECRETS"] : [],
  ))
}

resource "azurerm_key_vault_secret" "relay" {
  #checkov:skip=CKV_AZURE_41:No expiry date: the values are rotated by changing the variable and applying (README: rotation), and an expiry in code would be a deadline for an apply that nothing enforces.
  for_each = local.secrets_set

  name         = local.secret_names[each.key]
  value        = local.secret_values[each.key]
  key_vault_id = azurerm_key_vault.relay.id
  content_type = "text/plain"
  tags         = var.tags

  # Terraform writes (and later reads) these with its own role (Key Vault
  # Secrets Officer on this vault), which must exist and have taken effect
  # first (main.tf).
  depends_on = [
    azurerm_role_assignment.deployer_key_vault_secrets,
    time_sleep.deployer_access,
  ]
}
