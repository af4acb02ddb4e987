# Who and what is synced (issue 17): attribute mapping, scope by IdP group,
# accounts left alone. README "Attribute mapping", "Scope by IdP group",
# "Beside Duo's own directory sync". Each field sets one variable of the
# relay, only when given; the relay validates the values at start and
# names the bad variable.

variable "user_sync" {
  description = <<-EOT
    Optional relay settings on who and what is synced, each set only when given:
    username_attribute (DUO_USERNAME_ATTRIBUTE, e.g. "okta:profile.employeeNumber" or "auth0:app_metadata.duo_user"),
    username_lowercase / username_strip_domain (DUO_USERNAME_LOWERCASE / _STRIP_DOMAIN),
    realname_attribute, firstname_attribute, lastname_attribute, email_attribute (DUO_<FIELD>_ATTRIBUTE), email_lowercase,
    alias1_attribute .. alias3_attribute (DUO_ALIASn_ATTRIBUTE),
    scope_groups (SCOPE_GROUPS: only members of these IdP groups/roles are synced; needs the IdP API variables),
    exclude_directory_synced (DUO_EXCLUDE_DIRECTORY_SYNCED, default true in the relay), exclude_groups (DUO_EXCLUDE_GROUPS),
    exclude_usernames (DUO_EXCLUDE_USERNAMES, a regex),
    phone_attribute (DUO_PHONE_ATTRIBUTE, e.g. "okta:profile.mobilePhone"), phone_default_region (DUO_PHONE_DEFAULT_REGION), phone_readd (DUO_PHONE_READD).
  EOT
  type = object({
    username_attribute       = optional(string)
    username_lowercase       = optional(bool)
    username_strip_domain    = optional(bool)
    realname_attribute       = optional(string)
    firstname_attribute      = optional(string)
    lastname_attribute       = optional(string)
    email_attribute          = optional(string)
    email_lowercase          = optional(bool)
    alias1_attribute         = optional(string)
    alias2_attribute         = optional(string)
    alias3_attribute         = optional(string)
    scope_groups             = optional(list(string))
    exclude_directory_synced = optional(bool)
    exclude_groups           = optional(list(string))
    exclude_usernames        = optional(string)
    phone_attribute          = optional(string)
    phone_default_region     = optional(string)
    phone_readd              = optional(bool)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.user_sync.scope_groups == null ? true : length(var.user_sync.scope_groups) > 0
    error_message = "user_sync.scope_groups must name at least one group; leave it null to sync every user."
  }
}

locals {
  # Keys decided from the variable alone (never from resource attributes).
  user_sync_env = {
    for key, value in {
      DUO_USERNAME_ATTRIBUTE       = var.user_sync.username_attribute
      DUO_USERNAME_LOWERCASE       = var.user_sync.username_lowercase == null ? null : tostring(var.user_sync.username_lowercase)
      DUO_USERNAME_STRIP_DOMAIN    = var.user_sync.username_strip_domain == null ? null : tostring(var.user_sync.username_strip_domain)
      DUO_REALNAME_ATTRIBUTE       = var.user_sync.realname_attribute
      DUO_FIRSTNAME_ATTRIBUTE      = var.user_sync.firstname_attribute
      DUO_LASTNAME_ATTRIBUTE       = var.user_sync.lastname_attribute
      DUO_EMAIL_ATTRIBUTE          = var.user_sync.email_attribute
      DUO_EMAIL_LOWERCASE          = var.user_sync.email_lowercase == null ? null : tostring(var.user_sync.email_lowercase)
      DUO_ALIAS1_ATTRIBUTE         = var.user_sync.alias1_attribute
      DUO_ALIAS2_ATTRIBUTE         = var.user_sync.alias2_attribute
      DUO_ALIAS3_ATTRIBUTE         = var.user_sync.alias3_attribute
      SCOPE_GROUPS                 = var.user_sync.scope_groups == null ? null : join(",", var.user_sync.scope_groups)
      DUO_EXCLUDE_DIRECTORY_SYNCED = var.user_sync.exclude_directory_synced == null ? null : tostring(var.user_sync.exclude_directory_synced)
      DUO_EXCLUDE_GROUPS           = var.user_sync.exclude_groups == null ? null : join(",", var.user_sync.exclude_groups)
      DUO_EXCLUDE_USERNAMES        = var.user_sync.exclude_usernames
      DUO_PHONE_ATTRIBUTE          = var.user_sync.phone_attribute
      DUO_PHONE_DEFAULT_REGION     = var.user_sync.phone_default_region
      DUO_PHONE_READD              = var.user_sync.phone_readd == null ? null : tostring(var.user_sync.phone_readd)
    } : key => value if value != null
  }
}
