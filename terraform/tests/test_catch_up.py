"""Static checks of the scheduled catch-up in terraform/modules/{aws,azure,gcp}
(README "Catch-up"), with the helpers of test_terraform.py.

- off by default: `catch_up_enabled` defaults to false and every resource
  the catch-up adds exists only when it is on (count on
  local.catch_up_enabled), except the Azure function's settings, which
  switch the timer function off instead;
- what the schedule starts is what the entry binaries run: AWS passes
  {"relay_task":"catch_up",…} to a function running the same artifact
  (relay-aws's Invocation reads "catch_up"); Azure sets the app setting the
  `catch_up` timer function's schedule names; GCP runs the service's image
  with the argument `catch-up` (relay-gcp's main dispatches it);
- the RELAY_CATCH_UP_* variables the modules set are the ones relay-core
  reads, and every cloud's catch-up gets the store settings the entry reads;
- the alarms: a failed run, and the lag read from the `catch_up` line's
  checkpoint_lag_s (EMF CatchUpLagSeconds on AWS, KQL on Azure, a log-based
  metric on GCP) with the threshold variable;
- no retries where the platform would repeat a failed run on its own;
- Entra ID as a source (issue 18): "entra" is accepted and is the default
  after okta and auth0, a run gets ENTRA_NOTIFICATION_URL (the URL the
  relay's Graph subscriptions deliver to) where it can without a cycle,
  the same string the module outputs, and an entra catch-up is refused
  without the app registration and the clientState.
"""

from __future__ import annotations

import json
import re

import pytest

from test_terraform import CLOUDS, REPO_ROOT, Module, _as_list, _cargo_sources, _text, cloud_module, env_keys, keys_of, relay_metrics

CATCH_UP_RS = REPO_ROOT / "crates" / "relay-core" / "src" / "catch_up" / "mod.rs"
# Set by the Functions host from function.json, not read by relay-core.
HOST_ONLY = {"RELAY_CATCH_UP_SCHEDULE"}


def _is_catch_up(name: str) -> bool:
    return "catch_up" in name


def off_by_default_problems(module: Module) -> list[str]:
    """catch_up_enabled defaults to false, local.catch_up_enabled is it, and
    every catch-up resource and data source is counted on it."""
    problems = []
    var = module.variables.get("catch_up_enabled")
    if var is None:
        return ["no variable catch_up_enabled"]
    if var.get("default") is not False:
        problems.append(f"catch_up_enabled must default to false (off), not {var.get('default')!r}")
    if _text(module.locals.get("catch_up_enabled", "")) != "${var.catch_up_enabled}":
        problems.append(f"local.catch_up_enabled is {module.locals.get('catch_up_enabled')!r}, not var.catch_up_enabled")
    blocks = [(f"{t}.{n}", b) for (t, n), b in module.resources.items()]
    blocks += [(f"data.{t}.{n}", b) for (t, n), b in module.data.items()]
    found = 0
    for where, body in blocks:
        if not _is_catch_up(where.rsplit(".", 1)[-1]):
            continue
        found += 1
        count = _text(body.get("count", ""))
        if not re.search(r"local\.catch_up_enabled\s*\?\s*1\s*:\s*0", count):
            problems.append(f"{where}: not counted on local.catch_up_enabled (count = {count!r})")
    if found == 0:
        problems.append("no catch-up resources")
    return problems


@pytest.mark.parametrize("cloud", CLOUDS)
def test_catch_up_is_off_by_default_and_one_variable_turns_it_on(cloud):
    problems = off_by_default_problems(cloud_module(cloud))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("cloud", CLOUDS)
def test_catch_up_settings_are_the_ones_relay_core_reads(cloud):
    module = cloud_module(cloud)
    source = CATCH_UP_RS.read_text()
    written = set(re.findall(r"RELAY_CATCH_UP_[A-Z_]+", "\n".join(_text(v) for v in module.locals.values())))
    assert "RELAY_CATCH_UP_WINDOW" in written, f"modules/{cloud} writes {sorted(written)}"
    for name in written - HOST_ONLY:
        assert f'"{name}"' in source, f"relay-core reads no {name}"
    # Azure and GCP name the source in a setting; AWS in the task.
    if cloud != "aws":
        assert "RELAY_CATCH_UP_SOURCE" in written
    # The source defaults to the IdP whose API is configured, as relay-core's.
    assert "var.okta_org_url != null" in _text(module.locals["catch_up_source"])
    assert '"OKTA_ORG_URL"' in source and '"AUTH0_DOMAIN"' in source


def test_aws_schedule_invokes_the_same_artifact_with_the_catch_up_task():
    module = cloud_module("aws")
    function = module.resources[("aws_lambda_function", "catch_up")]
    hook = module.resources[("aws_lambda_function", "relay")]
    for attr in ("filename", "source_code_hash", "role", "runtime", "handler", "architectures"):
        assert _text(function[attr]) == _text(hook[attr]), f"the catch-up function's {attr} differs"
    # The hook's environment (store, secret, metrics namespace) and the window.
    variables = _text(_as_list(function["environment"])[0]["variables"])
    assert variables == "${local.catch_up_environment}", variables
    merged = _text(module.locals["catch_up_environment"])
    assert "local.environment" in merged and "RELAY_CATCH_UP_WINDOW" in merged
    schedule = module.resources[("aws_scheduler_schedule", "catch_up")]
    target = _as_list(schedule["target"])[0]
    assert "aws_lambda_function.catch_up" in _text(target["arn"])
    assert "aws_iam_role.catch_up_invoker" in _text(target["role_arn"])
    assert _as_list(target["retry_policy"])[0]["maximum_retry_attempts"] == 0
    assert "local.catch_up_task" in _text(target["input"])
    task = module.locals["catch_up_task"]
    assert task["relay_task"] == "catch_up", task
    assert _text(task["source"]) == "${local.catch_up_source}"
    assert module.resources[("aws_lambda_function_event_invoke_config", "catch_up")]["maximum_retry_attempts"] == 0
    # The scheduler's role may invoke this function only.
    policy = module.data[("aws_iam_policy_document", "catch_up_invoker")]
    statements = _as_list(policy["statement"])
    assert [s["actions"] for s in statements] == [["lambda:InvokeFunction"]]
    assert statements[0]["resources"] == ["${aws_lambda_function.catch_up[0].arn}"]
    # The task name and field relay-aws and relay-core read.
    dispatcher = _cargo_sources("relay-aws")
    assert 'Some("catch_up") => Task::CatchUp' in dispatcher
    assert 't.get("source")' in CATCH_UP_RS.read_text()


def test_aws_alarms_read_the_failed_runs_and_the_lag_metric_the_relay_writes():
    module = cloud_module("aws")
    failed = module.resources[("aws_cloudwatch_metric_alarm", "catch_up_failed")]
    assert failed["namespace"] == "AWS/Lambda" and failed["metric_name"] == "Errors"
    assert "aws_lambda_function.catch_up" in _text(failed["dimensions"])
    lag = module.resources[("aws_cloudwatch_metric_alarm", "catch_up_lag")]
    assert _text(lag["threshold"]) == "${var.catch_up_lag_alarm_seconds}"
    assert lag["statistic"] == "Maximum"
    spec = {m["name"]: m for m in relay_metrics()["emf"]["metrics"]}[lag["metric_name"]]
    assert (spec["line"], spec["field"]) == ("catch_up", "checkpoint_lag_s"), spec
    assert sorted(lag["dimensions"]) in [sorted(s) for s in spec["dimension_sets"]]


def test_azure_timer_function_reads_the_setting_the_module_writes():
    module = cloud_module("azure")
    settings = module.locals["catch_up_settings"]
    assert _text(settings["RELAY_CATCH_UP_SCHEDULE"]) == "${var.catch_up_schedule}"
    for flag in ("AzureWebJobs.catch_up.Disabled", "AzureWebJobs_catch_up_Disabled"):
        assert _text(settings[flag]) == "${local.catch_up_off}", flag
    assert re.search(r"local\.catch_up_enabled\s*\?\s*\"false\"\s*:\s*\"true\"", _text(module.locals["catch_up_off"]))
    keys = env_keys(module)
    assert {"RELAY_CATCH_UP_SCHEDULE", "RELAY_CATCH_UP_SOURCE", "RELAY_CATCH_UP_WINDOW"} <= keys, sorted(keys)
    function = json.loads((REPO_ROOT / "crates" / "relay-azure" / "app" / "catch_up" / "function.json").read_text())
    trigger = function["bindings"][0]
    assert trigger["type"] == "timerTrigger" and trigger["schedule"] == "%RELAY_CATCH_UP_SCHEDULE%"
    source = (REPO_ROOT / "crates" / "relay-azure" / "src" / "catch_up.rs").read_text()
    assert 'FUNCTION_NAME: &str = "catch_up"' in source
    # The alerts: failed invocations of that function, and the lag column.
    failed = module.resources[("azurerm_monitor_scheduled_query_rules_alert_v2", "catch_up_failed")]
    assert 'name == \\"catch_up\\"' in json.dumps(_as_list(failed["criteria"])[0]["query"])
    lag = _as_list(module.resources[("azurerm_monitor_scheduled_query_rules_alert_v2", "catch_up_lag")]["criteria"])[0]
    assert lag["metric_measure_column"] == "checkpoint_lag_s" and lag["time_aggregation_method"] == "Maximum"
    assert _text(lag["threshold"]) == "${var.catch_up_lag_alarm_seconds}"


def test_gcp_scheduler_runs_the_service_image_as_relay_gcp_catch_up():
    module = cloud_module("gcp")
    job = module.resources[("google_cloud_run_v2_job", "catch_up")]
    task = _as_list(_as_list(job["template"])[0]["template"])[0]
    container = _as_list(task["containers"])[0]
    assert _text(container["image"]) == "${var.image}"
    assert container["args"] == ["catch-up"]
    assert "google_service_account.relay" in _text(task["service_account"])
    assert task["max_retries"] == 0
    # The store settings relay-gcp reads, as the service gets them.
    names = {e["name"] for e in _as_list(container["env"]) if isinstance(e, dict)}
    assert {"GOOGLE_CLOUD_PROJECT", "RELAY_FIRESTORE_DATABASE", "RELAY_FIRESTORE_COLLECTION", "DUO_SKEY"} <= names, names
    service = _as_list(_as_list(module.resources[("google_cloud_run_v2_service", "relay")]["template"])[0]["containers"])[0]
    by_name = {e["name"]: _text(e.get("value", "")) for e in _as_list(service["env"]) if isinstance(e, dict)}
    for e in _as_list(container["env"]):
        if e["name"].startswith("RELAY_FIRESTORE") or e["name"] == "GOOGLE_CLOUD_PROJECT":
            assert _text(e["value"]) == by_name[e["name"]], e["name"]
    scheduler = module.resources[("google_cloud_scheduler_job", "catch_up")]
    target = _as_list(scheduler["http_target"])[0]
    assert "google_cloud_run_v2_job.catch_up" in _text(target["uri"]) and _text(target["uri"]).endswith(":run")
    assert "google_service_account.catch_up_trigger" in _text(target["oauth_token"])
    assert _as_list(scheduler["retry_config"])[0]["retry_count"] == 0
    invoker = module.resources[("google_cloud_run_v2_job_iam_member", "catch_up_trigger")]
    assert invoker["role"] == "roles/run.invoker" and "google_cloud_run_v2_job.catch_up" in _text(invoker["name"])
    main = _cargo_sources("relay-gcp")
    assert 'Some("catch-up")' in main
    # The lag alert counts the job's catch_up lines over the threshold.
    lag_filter = module.expand(module.locals["catch_up_lag_filter"])
    assert 'jsonPayload.message=\\"catch_up\\"' in lag_filter or 'jsonPayload.message="catch_up"' in lag_filter
    assert "jsonPayload.checkpoint_lag_s>${var.catch_up_lag_alarm_seconds}" in lag_filter
    assert "checkpoint_lag_s" in relay_metrics()["log_lines"]["catch_up"]


# --- Entra ID (issue 18) ------------------------------------------------------


@pytest.mark.parametrize("cloud", CLOUDS)
def test_catch_up_source_entra_is_accepted_and_the_default_after_okta_and_auth0(cloud):
    module = cloud_module(cloud)
    validation = _text(module.variables["catch_up_source"]["validation"])
    assert re.search(r'contains\(\[\\?"okta\\?", \\?"auth0\\?", \\?"entra\\?"\]', validation), validation
    # relay-core's default when the source is unset: okta if OKTA_ORG_URL,
    # else auth0 if AUTH0_DOMAIN, else entra; the module decides it from
    # the same settings (entra: hook_sources, which sets ENTRA_TENANT_ID).
    expr = _text(module.locals["catch_up_source"])
    assert re.search(
        r'var\.okta_org_url != null \? "okta" : var\.auth0_domain != null \? "auth0" : local\.entra_enabled \? "entra"', expr
    ), expr


def entra_url_problems(cloud: str, module: Module) -> list[str]:
    """ENTRA_NOTIFICATION_URL reaches the catch-up runner as the module's
    local.entra_notification_url (which the output shows), keyed on the
    catch-up source, a variable; on AWS and GCP never the hook function or
    service, whose own URL it is (a dependency cycle)."""
    problems = []
    if _text(module.outputs.get("entra_notification_url", {}).get("value")) != "${local.entra_notification_url}":
        problems.append("the output entra_notification_url is not local.entra_notification_url")
    if cloud == "azure":
        # One app: the same settings for the HTTP function (re-creating a
        # removed subscription) and the catch_up function.
        settings = module.locals.get("entra_settings", {})
        if "ENTRA_NOTIFICATION_URL = local.entra_notification_url" not in _text(settings):
            problems.append(f"entra_settings does not set ENTRA_NOTIFICATION_URL = local.entra_notification_url: {_text(settings)!r}")
        if "azurerm_linux_function_app" in _text(module.locals.get("entra_notification_url")):
            problems.append("local.entra_notification_url reads the Function App itself (a cycle)")
        return problems
    runner_local, hook_local = ("catch_up_environment", "environment") if cloud == "aws" else ("catch_up_env", "optional_plain_env")
    entra_env = _text(module.locals.get("catch_up_entra_env", ""))
    if not re.search(r'^\$\{local\.catch_up_source == "entra" \?', entra_env):
        problems.append(f"catch_up_entra_env is not keyed on local.catch_up_source: {entra_env!r}")
    if "ENTRA_NOTIFICATION_URL = local.entra_notification_url" not in entra_env:
        problems.append(f"catch_up_entra_env does not set ENTRA_NOTIFICATION_URL = local.entra_notification_url: {entra_env!r}")
    if "ENTRA_NOTIFICATION_URL" not in keys_of(module, module.locals.get(runner_local)):
        problems.append(f"local.{runner_local} (the catch-up runner's) does not hold ENTRA_NOTIFICATION_URL")
    if "ENTRA_NOTIFICATION_URL" in keys_of(module, module.locals.get(hook_local)):
        problems.append(f"local.{hook_local} (the hook's own) holds ENTRA_NOTIFICATION_URL: its own URL, a cycle")
    return problems


@pytest.mark.parametrize("cloud", CLOUDS)
def test_entra_catch_up_gets_the_notification_url_the_module_outputs(cloud):
    problems = entra_url_problems(cloud, cloud_module(cloud))
    assert not problems, f"modules/{cloud}: " + "\n".join(problems)
    # The name relay-core reads.
    api = (REPO_ROOT / "crates" / "relay-core" / "src" / "source" / "entra" / "api.rs").read_text(encoding="utf-8")
    assert 'NOTIFICATION_URL: &str = "ENTRA_NOTIFICATION_URL"' in api


@pytest.mark.parametrize("cloud", CLOUDS)
def test_entra_catch_up_is_refused_without_the_app_registration(cloud):
    """The precondition of the catch-up resource: source entra needs the
    Entra settings (the plan matrix's negative case plans it)."""
    module = cloud_module(cloud)
    anchor = {
        "aws": ("aws_lambda_function", "catch_up"),
        "azure": ("azurerm_monitor_scheduled_query_rules_alert_v2", "catch_up_failed"),
        "gcp": ("google_cloud_run_v2_job", "catch_up"),
    }[cloud]
    lifecycle = _text(module.resources[anchor]["lifecycle"])
    assert 'local.catch_up_source == \\"entra\\" ? local.entra_catch_up_ready' in lifecycle, lifecycle
    ready = _text(module.locals["entra_catch_up_ready"])
    for needed in ("local.entra_enabled", "var.entra_tenant_id != null", "var.entra_client_id != null", "local.entra_credential_given", "var.entra_client_state != null"):
        assert needed in ready, f"entra_catch_up_ready does not check {needed}: {ready}"
    # the credential: the client secret, or the certificate instead
    # (entra_credential), so a certificate-only relay may catch up
    given = _text(module.locals["entra_credential_given"])
    assert given == '${var.entra_credential == "certificate" ? var.entra_client_certificate != null : var.entra_client_secret != null}', given


def test_relay_core_takes_entra_as_a_catch_up_source_in_the_modules_order():
    """The other side of the modules' default: relay-core parses "entra"
    and, with no source given, picks okta, auth0, entra in that order."""
    source = CATCH_UP_RS.read_text(encoding="utf-8")
    assert '"entra" => Some(Self::Entra)' in source
    scheduled = source[source.index("pub fn scheduled(") :]
    scheduled = scheduled[: scheduled.index("\n    }\n")]
    order = [scheduled.find(k) for k in ('"OKTA_ORG_URL"', '"AUTH0_DOMAIN"', "entra::api::TENANT_ID")]
    assert -1 not in order and order == sorted(order), order


def entra_audit_problems(cloud: str, module: Module) -> list[str]:
    """ENTRA_AUDIT_LOG = "true" only when var.entra_audit_log (default
    false) is, for the catch-up runner only on AWS and GCP; a precondition
    ties it to the Entra catch-up."""
    problems = []
    var = module.variables.get("entra_audit_log")
    if var is None:
        return ["no variable entra_audit_log"]
    if var.get("default") is not False or var.get("nullable") is not False:
        problems.append(f"entra_audit_log must default to false and not be nullable: {var}")
    where = "entra_settings" if cloud == "azure" else "catch_up_entra_env"
    text = _text(module.locals.get(where, ""))
    if 'var.entra_audit_log ? {ENTRA_AUDIT_LOG = "true"} : {}' not in text:
        problems.append(f"local.{where} does not set ENTRA_AUDIT_LOG = \"true\" on var.entra_audit_log: {text!r}")
    if cloud != "azure" and "ENTRA_AUDIT_LOG" in keys_of(module, module.locals.get("environment" if cloud == "aws" else "optional_plain_env")):
        problems.append("the hook's own environment holds ENTRA_AUDIT_LOG")
    hook = {"aws": ("aws_lambda_function", "relay"), "azure": ("azurerm_linux_function_app", "relay"), "gcp": ("google_cloud_run_v2_service", "relay")}[cloud]
    lifecycle = _text(module.resources.get(hook, {}).get("lifecycle", ""))
    if '!var.entra_audit_log || (var.catch_up_enabled && local.catch_up_source == \\"entra\\")' not in lifecycle:
        problems.append("no precondition ties entra_audit_log to the Entra catch-up")
    return problems


@pytest.mark.parametrize("cloud", CLOUDS)
def test_entra_audit_log_reaches_the_catch_up_runner_only_when_asked(cloud):
    problems = entra_audit_problems(cloud, cloud_module(cloud))
    assert not problems, f"modules/{cloud}: " + "\n".join(problems)
    entra = (REPO_ROOT / "crates" / "relay-core" / "src" / "catch_up" / "entra.rs").read_text(encoding="utf-8")
    assert 'AUDIT_LOG: &str = "ENTRA_AUDIT_LOG"' in entra


@pytest.mark.parametrize("example", ["entra-azure", "entra-aws", "entra-gcp"])
def test_entra_example_passes_the_audit_log_switch_and_turns_the_catch_up_on(example):
    ex = Module(REPO_ROOT / "terraform" / "examples" / example)
    relay = ex.modules["relay"]
    # the notification URL override and the schedule reach the module
    for name in ("entra_notification_url", "catch_up_schedule", "catch_up_window", "catch_up_lag_alarm_seconds"):
        assert _text(relay[name]) == f"${{var.{name}}}", (name, relay.get(name))
    assert _text(relay["entra_audit_log"]) == "${var.entra_audit_log}"
    assert relay["catch_up_source"] == "entra"
    assert _text(relay["catch_up_enabled"]) == "${var.catch_up_enabled}"
    assert ex.variables["catch_up_enabled"].get("default") is True, "the schedule is what keeps the subscriptions alive"
    assert ex.variables["entra_audit_log"].get("default") is False
    # its description points at the permission's switch in idp/entra
    assert "audit_log_enabled" in ex.variables["entra_audit_log"]["description"]
    assert "audit_log_enabled" in Module(REPO_ROOT / "terraform" / "idp" / "entra").variables


def test_self_entra_url_checks_catch_the_url_in_the_hooks_own_environment():
    good = """
        locals {
          entra_notification_url = coalesce(var.entra_notification_url, "${local.base_url}/entra")
          catch_up_entra_env = local.catch_up_source == "entra" ? {
            ENTRA_NOTIFICATION_URL = local.entra_notification_url
          } : {}
          environment = merge(local.environment_base, {})
          environment_base = { DUO_IKEY = var.duo_ikey }
          catch_up_environment = merge(local.environment, { RELAY_CATCH_UP_WINDOW = var.catch_up_window }, local.catch_up_entra_env)
        }
        output "entra_notification_url" {
          value = local.entra_notification_url
        }
    """
    assert not entra_url_problems("aws", Module.from_text(good)), entra_url_problems("aws", Module.from_text(good))
    in_hook = good.replace("merge(local.environment_base, {})", "merge(local.environment_base, local.catch_up_entra_env)")
    assert any("a cycle" in p for p in entra_url_problems("aws", Module.from_text(in_hook)))
    not_in_runner = good.replace(", local.catch_up_entra_env)", ")")
    assert any("does not hold" in p for p in entra_url_problems("aws", Module.from_text(not_in_runner)))
    always = good.replace('local.catch_up_source == "entra" ?', 'var.entra_notification_url != null ?')
    assert any("not keyed on local.catch_up_source" in p for p in entra_url_problems("aws", Module.from_text(always)))
    other_output = good.replace("value = local.entra_notification_url", 'value = "${local.base_url}/entra"')
    assert any("output" in p for p in entra_url_problems("aws", Module.from_text(other_output)))


def test_self_off_by_default_catches_an_always_on_resource():
    module = Module.from_text(
        """
        variable "catch_up_enabled" {
          type    = bool
          default = true
        }
        locals {
          catch_up_enabled = true
        }
        resource "aws_scheduler_schedule" "catch_up" {
          name = "x"
        }
        resource "aws_lambda_function" "catch_up" {
          count = local.catch_up_enabled ? 1 : 0
        }
        """
    )
    problems = off_by_default_problems(module)
    assert any("default to false" in p for p in problems), problems
    assert any("local.catch_up_enabled is" in p for p in problems), problems
    assert any(p.startswith("aws_scheduler_schedule.catch_up") for p in problems), problems
    assert not any(p.startswith("aws_lambda_function.catch_up") for p in problems), problems
