# Scheduled catch-up (off until catch_up_enabled): the `catch_up` function
# of the Function App (crates/relay-azure/app/catch_up, a timerTrigger on
# %RELAY_CATCH_UP_SCHEDULE%) reads the IdP's own event log from the
# checkpoint in the idempotency table and applies what the hook missed
# (README "Catch-up"). As for reconcile, the host resolves the schedule
# expression even for a disabled function, so RELAY_CATCH_UP_SCHEDULE always
# has a value and the function is switched off instead. Two alerts: a run
# failed (the handler answers 500), and the checkpoint lag (the `catch_up`
# line's checkpoint_lag_s) above catch_up_lag_alarm_seconds.
# For Entra ID (source "entra") a run renews or re-creates the relay's
# Graph subscriptions at ENTRA_NOTIFICATION_URL, runs the users/groups
# delta queries from the deltaLinks kept in the same checkpoint store, and
# with entra_audit_log polls the directory audit log for MFA resets: this
# schedule is what keeps the subscriptions alive (entra.tf).

variable "catch_up_enabled" {
  description = "Run catch-up from the IdP's event log on catch_up_schedule (README \"Catch-up\"). false (default) = the catch_up function stays disabled and no alert is created."
  type        = bool
  default     = false
  nullable    = false
}

variable "catch_up_schedule" {
  description = "When catch-up runs: an NCRONTAB expression with seconds, in UTC, e.g. \"0 */15 * * * *\" (default: every 15 minutes)."
  type        = string
  default     = "0 */15 * * * *"
  nullable    = false

  validation {
    condition     = can(regex("^\\S+ \\S+ \\S+ \\S+ \\S+ \\S+$", var.catch_up_schedule))
    error_message = "catch_up_schedule must be an NCRONTAB expression with six fields (seconds first), e.g. \"0 */15 * * * *\"."
  }
}

variable "catch_up_source" {
  description = "What catch-up reads: \"okta\" (System Log), \"auth0\" (tenant logs) or \"entra\" (Microsoft Graph: renews the relay's subscriptions, runs the users/groups delta queries, and with entra_audit_log polls the audit log for MFA resets). null (default) = okta when okta_org_url is set, else auth0 when auth0_domain is set, else entra when hook_sources includes \"entra\"."
  type        = string
  default     = null

  validation {
    condition     = var.catch_up_source == null || contains(["okta", "auth0", "entra"], coalesce(var.catch_up_source, "okta"))
    error_message = "catch_up_source must be \"okta\", \"auth0\" or \"entra\"."
  }
}

variable "catch_up_window" {
  description = "How far back the first run (no checkpoint yet) reads: RELAY_CATCH_UP_WINDOW, e.g. \"24h\" (default), \"90m\", \"2d\"; at most 90d."
  type        = string
  default     = "24h"
  nullable    = false

  validation {
    condition     = can(regex("^[1-9][0-9]*[smhd]?$", var.catch_up_window))
    error_message = "catch_up_window must be a duration like 24h, 90m or 2d."
  }
}

variable "catch_up_lag_alarm_seconds" {
  description = "Alert when a catch-up run reports a checkpoint lag (seconds since the log was last read to its end) above this. Default 3600: four missed 15-minute runs."
  type        = number
  default     = 3600
  nullable    = false

  validation {
    condition     = var.catch_up_lag_alarm_seconds >= 60 && floor(var.catch_up_lag_alarm_seconds) == var.catch_up_lag_alarm_seconds
    error_message = "catch_up_lag_alarm_seconds must be a whole number of seconds, 60 or more."
  }
}

locals {
  catch_up_enabled = var.catch_up_enabled
  catch_up_source  = coalesce(var.catch_up_source, var.okta_org_url != null ? "okta" : var.auth0_domain != null ? "auth0" : local.entra_enabled ? "entra" : "auth0")
  catch_up_off     = local.catch_up_enabled ? "false" : "true"

  # App settings of the catch_up function (relay_core::catch_up reads the
  # RELAY_CATCH_UP_* ones). The switch is set under both spellings, as for
  # reconcile.
  catch_up_settings = {
    RELAY_CATCH_UP_SCHEDULE          = var.catch_up_schedule
    "AzureWebJobs.catch_up.Disabled" = local.catch_up_off
    AzureWebJobs_catch_up_Disabled   = local.catch_up_off
    RELAY_CATCH_UP_SOURCE            = local.catch_up_source
    RELAY_CATCH_UP_WINDOW            = var.catch_up_window
  }

  # What an IdP 401/403 means, in the alert's words.
  catch_up_denied = local.catch_up_source == "entra" ? local.entra_denied : "an IdP 401/403 means the API credentials lack the log scope"
  # What a lag delays.
  catch_up_delayed = local.catch_up_source == "entra" ? local.entra_delayed : "Missed hook deliveries (an MFA reset, a deactivation) wait that long."

  # The catch-up runs' lines with their lag (README "Catch-up").
  catch_up_lag_query = join("\n", [
    "traces",
    "| extend e = parse_json(message)",
    "| where e.message == \"catch_up\"",
    "| extend checkpoint_lag_s = tolong(e.checkpoint_lag_s)",
  ])
}

# A run that did not end well: the host records the invocation as failed
# (the handler answers 500: an event failed, reading the log failed, the
# checkpoint could not be read or saved, bad configuration); the `catch_up`
# line in traces says which.
resource "azurerm_monitor_scheduled_query_rules_alert_v2" "catch_up_failed" {
  count = local.catch_up_enabled ? 1 : 0

  name                    = "${var.name}-catch-up-failed"
  resource_group_name     = local.resource_group_name
  location                = var.location
  scopes                  = [azurerm_application_insights.relay.id]
  description             = "A scheduled catch-up from the ${local.catch_up_source} log failed. The traces line whose message is \"catch_up\" has the status (event_failed, idp_failed, store_failed) and the error; ${local.catch_up_denied}. The next run retries from the same checkpoint. README \"Catch-up\"."
  severity                = 2
  evaluation_frequency    = "PT15M"
  window_duration         = "PT1H"
  auto_mitigation_enabled = true
  tags                    = var.tags

  criteria {
    query                   = "requests | where name == \"catch_up\" and success == false"
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

  # Exists only when enabled: refuses it without the IdP API settings the
  # run reads.
  lifecycle {
    precondition {
      condition     = local.catch_up_source == "okta" ? (var.okta_org_url != null && var.okta_api_token != null) : local.catch_up_source == "entra" ? local.entra_catch_up_ready : (var.auth0_domain != null && var.auth0_client_id != null && var.auth0_client_secret != null)
      error_message = "Catch-up reads the IdP's log API: set okta_org_url and okta_api_token (catch_up_source okta; scope okta.logs.read), auth0_domain, auth0_client_id and auth0_client_secret (auth0; scope read:logs), or hook_sources with \"entra\" and entra_tenant_id, entra_client_id, entra_client_state and entra_client_secret (or entra_client_certificate with entra_credential = \"certificate\") (entra; Graph permissions User.Read.All and Group.Read.All, AuditLog.Read.All with entra_audit_log)."
    }
  }
}

# The log has not been read to its end for catch_up_lag_alarm_seconds: runs
# keep failing or stopping at their page budget (status behind), so events
# the hook missed wait that long to reach Duo.
resource "azurerm_monitor_scheduled_query_rules_alert_v2" "catch_up_lag" {
  count = local.catch_up_enabled ? 1 : 0

  name                    = "${var.name}-catch-up-lag"
  resource_group_name     = local.resource_group_name
  location                = var.location
  scopes                  = [azurerm_application_insights.relay.id]
  description             = "Catch-up has not read the ${local.catch_up_source} log to its end for more than ${var.catch_up_lag_alarm_seconds} s (checkpoint_lag_s of the catch_up lines). ${local.catch_up_delayed} status behind = raise RELAY_CATCH_UP_MAX_PAGES or run more often; failed runs = see the catch-up-failed alert. Query: ${local.catch_up_lag_query}"
  severity                = 2
  evaluation_frequency    = "PT15M"
  window_duration         = "PT1H"
  auto_mitigation_enabled = true
  tags                    = var.tags

  criteria {
    query                   = local.catch_up_lag_query
    time_aggregation_method = "Maximum"
    metric_measure_column   = "checkpoint_lag_s"
    operator                = "GreaterThan"
    threshold               = var.catch_up_lag_alarm_seconds

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
}
