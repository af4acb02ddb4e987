# Logs: relay-azure writes one JSON line per event on stdout; the Functions
# host forwards it to Application Insights as a trace (category
# Host.Function.Console) whose message is the line. Application Insights is
# workspace-based, so the data lives in this workspace (table AppTraces) for
# log_retention_days.
resource "azurerm_log_analytics_workspace" "relay" {
  name                = "${var.name}-law"
  resource_group_name = local.resource_group_name
  location            = var.location
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  tags                = var.tags
}

resource "azurerm_application_insights" "relay" {
  name                = "${var.name}-appi"
  resource_group_name = local.resource_group_name
  location            = var.location
  workspace_id        = azurerm_log_analytics_workspace.relay.id
  application_type    = "other"
  retention_in_days   = var.log_retention_days
  tags                = var.tags
}

locals {
  # "Everything that happened in the last hour" (README: "Find what
  # happened"); the failed-events alert below uses the same filter.
  starter_query = join("\n", [
    "traces",
    "| where timestamp > ago(1h)",
    "| extend e = parse_json(message)",
    "| where e.message == \"event\"",
    "| project timestamp, e.subject, e.event_type, e.outcome, e.operations, e.duo_calls, e.detail",
    "| order by timestamp desc",
  ])

  failed_events_query = join("\n", [
    "traces",
    "| extend e = parse_json(message)",
    "| where e.message == \"event\" and tostring(e.outcome) startswith \"failed\"",
  ])

  # Duo 429 answers: the summary lines' duo_throttled, summed by the alert
  # over each window (README "Metrics and alarms").
  duo_throttled_query = join("\n", [
    "traces",
    "| extend e = parse_json(message)",
    "| where e.message == \"event\"",
    "| extend duo_throttled = toint(e.duo_throttled)",
  ])

  # Queue mode: the relay's own line for a message it moved to dead letters.
  dead_letter_query = join("\n", [
    "traces",
    "| extend e = parse_json(message)",
    "| where e.message == \"dead_letter\"",
  ])

  # The Functions host's line when a queue message has failed
  # maxDequeueCount times (10: extensions.queues.maxDequeueCount in
  # crates/relay-azure/app/host.json, relay_azure::worker::HOST_MAX_DEQUEUE_COUNT):
  # "Message has reached MaxDequeueCount of 10. Moving message to queue
  # 'relay-events-poison'.").
  poison_query = var.queue_enabled ? join("\n", [
    "traces",
    "| where message has \"MaxDequeueCount\" and message has \"${local.poison_queue_name}\"",
  ]) : null
}

# ---------------------------------------------------------------------------
# Who is told
# ---------------------------------------------------------------------------

resource "azurerm_monitor_action_group" "relay" {
  count = var.alert_email == null ? 0 : 1

  name                = "${var.name}-alerts"
  resource_group_name = local.resource_group_name
  short_name          = substr(local.compact_name, 0, 12)
  tags                = var.tags

  email_receiver {
    name                    = "on-call"
    email_address           = var.alert_email
    use_common_alert_schema = true
  }
}

locals {
  action_group_ids = concat(azurerm_monitor_action_group.relay[*].id, var.action_group_ids)
}

# ---------------------------------------------------------------------------
# Alerts
# ---------------------------------------------------------------------------

# 5xx answers: transient trouble the IdP retries (Duo or Table Storage
# unreachable), or a handler that does not start (an unresolved Key Vault
# reference, a missing setting): the host then answers 5xx to every call.
resource "azurerm_monitor_metric_alert" "http_5xx" {
  name                = "${var.name}-http-5xx"
  resource_group_name = local.resource_group_name
  scopes              = [azurerm_linux_function_app.relay.id]
  description         = "The relay answered more than 5 requests with 5xx in 15 minutes. Look at the traces of the Function App (output `logs`) for the event lines and for start-up errors."
  severity            = 2
  frequency           = "PT5M"
  window_size         = "PT15M"
  auto_mitigate       = true
  tags                = var.tags

  criteria {
    metric_namespace = "Microsoft.Web/sites"
    metric_name      = "Http5xx"
    aggregation      = "Total"
    operator         = "GreaterThan"
    threshold        = 5
  }

  dynamic "action" {
    for_each = local.action_group_ids

    content {
      action_group_id = action.value
    }
  }
}

# Events whose Duo operations failed after the retries (outcome "failed…"):
# the IdP got 200 or gave up, so nobody else will notice.
resource "azurerm_monitor_scheduled_query_rules_alert_v2" "failed_events" {
  name                    = "${var.name}-failed-events"
  resource_group_name     = local.resource_group_name
  location                = var.location
  scopes                  = [azurerm_application_insights.relay.id]
  description             = "At least one event's Duo operations failed in the last 5 minutes. Query: ${local.failed_events_query}"
  severity                = 2
  evaluation_frequency    = "PT5M"
  window_duration         = "PT5M"
  auto_mitigation_enabled = true
  tags                    = var.tags

  criteria {
    query                   = local.failed_events_query
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
}

# Queue mode: the Functions host moved a message to the poison queue itself
# (the worker never answered it: crash or timeout).
resource "azurerm_monitor_scheduled_query_rules_alert_v2" "poison_messages" {
  count = var.queue_enabled ? 1 : 0

  name                    = "${var.name}-poison-messages"
  resource_group_name     = local.resource_group_name
  location                = var.location
  scopes                  = [azurerm_application_insights.relay.id]
  description             = "A queued event failed every attempt and was moved to ${local.poison_queue_name}."
  severity                = 2
  evaluation_frequency    = "PT5M"
  window_duration         = "PT5M"
  auto_mitigation_enabled = true
  tags                    = var.tags

  criteria {
    query                   = local.poison_query
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
}

# Duo kept rate-limiting for 15 minutes (README runbook: 429 storm): the
# summary lines' duo_throttled summed per 5-minute window, at or over the
# threshold in 3 windows in a row.
resource "azurerm_monitor_scheduled_query_rules_alert_v2" "duo_throttled" {
  name                    = "${var.name}-duo-throttled"
  resource_group_name     = local.resource_group_name
  location                = var.location
  scopes                  = [azurerm_application_insights.relay.id]
  description             = "Duo answered 429 at least ${var.duo_throttled_alert_threshold} times in each of 3 consecutive 5-minute windows (sum of duo_throttled in the event lines): a bulk change in the IdP or another Admin API client is using up Duo's rate limit. README runbook: 429 storm."
  severity                = 3
  evaluation_frequency    = "PT5M"
  window_duration         = "PT5M"
  auto_mitigation_enabled = true
  tags                    = var.tags

  criteria {
    query                   = local.duo_throttled_query
    time_aggregation_method = "Total"
    metric_measure_column   = "duo_throttled"
    operator                = "GreaterThanOrEqual"
    threshold               = var.duo_throttled_alert_threshold

    failing_periods {
      minimum_failing_periods_to_trigger_alert = 3
      number_of_evaluation_periods             = 3
    }
  }

  dynamic "action" {
    for_each = length(local.action_group_ids) == 0 ? [] : [local.action_group_ids]

    content {
      action_groups = action.value
    }
  }
}

# Queue mode: the relay moved a message to dead letters and logged a
# dead_letter line (README runbook: dead letters piling up). The
# poison_messages alert above catches the Functions host's own moves.
resource "azurerm_monitor_scheduled_query_rules_alert_v2" "dead_letter_events" {
  count = var.queue_enabled ? 1 : 0

  name                    = "${var.name}-dead-letter-events"
  resource_group_name     = local.resource_group_name
  location                = var.location
  scopes                  = [azurerm_application_insights.relay.id]
  description             = "The relay moved at least one queued event to dead letters in the last 5 minutes (dead_letter lines: reason, attempts). Query: ${local.dead_letter_query}"
  severity                = 2
  evaluation_frequency    = "PT5M"
  window_duration         = "PT5M"
  auto_mitigation_enabled = true
  tags                    = var.tags

  criteria {
    query                   = local.dead_letter_query
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
}
