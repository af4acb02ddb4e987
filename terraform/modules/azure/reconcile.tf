# Scheduled reconcile (off until reconcile_schedule is set): the `reconcile`
# function of the Function App (crates/relay-azure/app/reconcile, a
# timerTrigger on %RELAY_RECONCILE_SCHEDULE%) converges Duo to the IdP
# (README "Reconcile"). The host resolves the schedule expression even for a
# disabled function, so RELAY_RECONCILE_SCHEDULE always has a value; the
# function is switched off instead. A run that does not converge fails its
# invocation (the reconcile_failed alert reports it).

variable "reconcile_schedule" {
  description = "When to reconcile Duo with the IdP: an NCRONTAB expression with seconds, in UTC, e.g. \"0 0 * * * *\" (hourly) or \"0 15 3 * * *\" (daily at 03:15). null (default) = no scheduled reconcile (the function stays disabled)."
  type        = string
  default     = null

  validation {
    condition     = var.reconcile_schedule == null || can(regex("^\\S+ \\S+ \\S+ \\S+ \\S+ \\S+$", coalesce(var.reconcile_schedule, "x")))
    error_message = "reconcile_schedule must be an NCRONTAB expression with six fields (seconds first), e.g. \"0 0 * * * *\"."
  }
}

variable "reconcile_source" {
  description = "The IdP a scheduled reconcile reads: \"okta\", \"auth0\" or \"entra\". null (default) = okta when okta_org_url is set, else entra when hook_sources includes \"entra\", else auth0."
  type        = string
  default     = null

  validation {
    condition     = var.reconcile_source == null || contains(["okta", "auth0", "entra"], coalesce(var.reconcile_source, "okta"))
    error_message = "reconcile_source must be \"okta\", \"auth0\" or \"entra\"."
  }
}

variable "reconcile_dry_run" {
  description = "Scheduled runs only report the drift (and fail while there is some) instead of applying it."
  type        = bool
  default     = false
  nullable    = false
}

variable "reconcile_max_deletes" {
  description = "A scheduled run that would delete or deprovision more users and groups than this applies nothing and fails (a misconfigured IdP token can hide users)."
  type        = number
  default     = 10
  nullable    = false

  validation {
    condition     = var.reconcile_max_deletes >= 0 && floor(var.reconcile_max_deletes) == var.reconcile_max_deletes
    error_message = "reconcile_max_deletes must be a whole number, 0 or more."
  }
}

locals {
  reconcile_enabled = var.reconcile_schedule != null
  reconcile_source  = coalesce(var.reconcile_source, var.okta_org_url != null ? "okta" : local.entra_enabled ? "entra" : "auth0")
  reconcile_off     = local.reconcile_enabled ? "false" : "true"

  # App settings of the reconcile function (relay_core::reconcile::
  # ReconcileOptions::scheduled reads the RELAY_RECONCILE_* ones). The
  # placeholder schedule (1 January, midnight) is never reached while the
  # function is disabled. The switch is set under both spellings: the
  # documented AzureWebJobs.<name>.Disabled, and the underscore form a Linux
  # app's environment carries.
  reconcile_settings = {
    RELAY_RECONCILE_SCHEDULE          = coalesce(var.reconcile_schedule, "0 0 0 1 1 *")
    "AzureWebJobs.reconcile.Disabled" = local.reconcile_off
    AzureWebJobs_reconcile_Disabled   = local.reconcile_off
    RELAY_RECONCILE_SOURCE            = local.reconcile_source
    RELAY_RECONCILE_DRY_RUN           = tostring(var.reconcile_dry_run)
    RELAY_RECONCILE_MAX_DELETES       = tostring(var.reconcile_max_deletes)
  }
}

# A scheduled run that did not converge: the host records the invocation as
# failed (the handler answers 500: drift left, the deletion cap, a read
# error); the `reconcile` summary line in traces says which.
resource "azurerm_monitor_scheduled_query_rules_alert_v2" "reconcile_failed" {
  count = local.reconcile_enabled ? 1 : 0

  name                    = "${var.name}-reconcile-failed"
  resource_group_name     = local.resource_group_name
  location                = var.location
  scopes                  = [azurerm_application_insights.relay.id]
  description             = "A scheduled reconcile did not converge Duo with ${local.reconcile_source}. The traces line whose message is \"reconcile\" has the status (drift, incomplete, cap_exceeded) and the detail."
  severity                = 2
  evaluation_frequency    = "PT15M"
  window_duration         = "PT1H"
  auto_mitigation_enabled = true
  tags                    = var.tags

  criteria {
    query                   = "requests | where name == \"reconcile\" and success == false"
    time_aggregation_method = "Count"
    operator                = "GreaterThan"
    threshold               = 0

    failing_periods {
      minimum_failing_periods_to_trigger_alert = 1
      number_of_evaluation_periods             = 1
    }
  }

  dynamic "action" {
    for_each = length(local.action_group_ids) == 0 ? [] : [local.action_group_ids]

    content {
      action_groups = action.value
    }
  }

  # Exists only with a schedule: refuses one without the IdP API settings
  # the run reads.
  lifecycle {
    precondition {
      condition     = local.reconcile_source == "okta" ? (var.okta_org_url != null && var.okta_api_token != null) : local.reconcile_source == "entra" ? local.entra_enabled : (var.auth0_domain != null && var.auth0_client_id != null && var.auth0_client_secret != null)
      error_message = "A scheduled reconcile reads the IdP's API: set okta_org_url and okta_api_token (reconcile_source okta), auth0_domain, auth0_client_id and auth0_client_secret (auth0), or hook_sources with \"entra\" and the entra_* variables (entra)."
    }
  }
}
