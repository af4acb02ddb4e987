"""Static checks of the scheduled reconcile in terraform/modules/{aws,azure,gcp}
(README "Reconcile"), with the helpers of test_terraform.py.

- off by default: `reconcile_schedule` defaults to null and every resource
  the reconcile adds exists only when it is set (count on
  local.reconcile_enabled);
- what the schedule starts is what the entry binaries run: AWS passes
  {"relay_task":"reconcile",…} to a function running the same artifact and
  environment (relay-aws dispatches relay_task "reconcile"); Azure sets the
  app setting the `reconcile` timer function's schedule names and switches
  the function off without a schedule; GCP runs the service's image with the
  argument `reconcile` (relay-gcp's main dispatches it);
- the RELAY_RECONCILE_* settings the modules write are those relay-core reads;
- no retries where the platform would repeat a failed run on its own.
"""

from __future__ import annotations

import json
import re

import pytest

from test_terraform import CLOUDS, REPO_ROOT, Module, _as_list, _cargo_sources, _text, cloud_module, env_keys

RECONCILE_RS = REPO_ROOT / "crates" / "relay-core" / "src" / "reconcile.rs"
SETTINGS = ("RELAY_RECONCILE_SOURCE", "RELAY_RECONCILE_DRY_RUN", "RELAY_RECONCILE_MAX_DELETES")


def _is_reconcile(name: str) -> bool:
    return "reconcile" in name or "scheduler" in name


def off_by_default_problems(module: Module) -> list[str]:
    """The schedule variable defaults to null, and every reconcile resource
    and data source is counted on local.reconcile_enabled."""
    problems = []
    var = module.variables.get("reconcile_schedule")
    if var is None:
        return ["no variable reconcile_schedule"]
    if "default" not in var or var["default"] is not None:
        problems.append(f"reconcile_schedule must default to null (off), not {var.get('default')!r}")
    enabled = _text(module.locals.get("reconcile_enabled", ""))
    if not re.search(r"var\.reconcile_schedule\s*!=\s*null", enabled):
        problems.append(f"local.reconcile_enabled is {enabled!r}, not var.reconcile_schedule != null")
    blocks = [(f"{t}.{n}", b) for (t, n), b in module.resources.items()]
    blocks += [(f"data.{t}.{n}", b) for (t, n), b in module.data.items()]
    found = 0
    for where, body in blocks:
        if not _is_reconcile(where.rsplit(".", 1)[-1]):
            continue
        found += 1
        count = _text(body.get("count", ""))
        if not re.search(r"local\.reconcile_enabled\s*\?\s*1\s*:\s*0", count):
            problems.append(f"{where}: not counted on local.reconcile_enabled (count = {count!r})")
    if found == 0:
        problems.append("no reconcile resources")
    return problems


@pytest.mark.parametrize("cloud", CLOUDS)
def test_reconcile_is_off_by_default_and_one_variable_turns_it_on(cloud):
    problems = off_by_default_problems(cloud_module(cloud))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("cloud", CLOUDS)
def test_reconcile_settings_are_the_ones_relay_core_reads(cloud):
    module = cloud_module(cloud)
    source = RECONCILE_RS.read_text()
    written = set(re.findall(r"RELAY_RECONCILE_[A-Z_]+", "\n".join(_text(v) for v in module.locals.values())))
    for name in written:
        assert f'"{name}"' in source or name == "RELAY_RECONCILE_SCHEDULE", f"relay-core reads no {name}"
    # The source defaults to the IdP whose API is configured, as relay-core's.
    assert "var.okta_org_url != null" in _text(module.locals["reconcile_source"])
    if cloud != "aws":  # AWS passes them in the task instead
        assert set(SETTINGS) <= written, f"modules/{cloud} writes {sorted(written)}"


def test_aws_schedule_invokes_the_same_artifact_with_the_reconcile_task():
    module = cloud_module("aws")
    function = module.resources[("aws_lambda_function", "reconcile")]
    hook = module.resources[("aws_lambda_function", "relay")]
    for attr in ("filename", "source_code_hash", "role", "runtime", "handler", "architectures"):
        assert _text(function[attr]) == _text(hook[attr]), f"the reconcile function's {attr} differs"
    assert _text(function["environment"]) == _text(hook["environment"])
    assert function["timeout"] == 900
    schedule = module.resources[("aws_scheduler_schedule", "reconcile")]
    target = _as_list(schedule["target"])[0]
    assert "aws_lambda_function.reconcile" in _text(target["arn"])
    assert "aws_iam_role.scheduler" in _text(target["role_arn"])
    assert _as_list(target["retry_policy"])[0]["maximum_retry_attempts"] == 0
    assert "local.reconcile_task" in _text(target["input"])
    task = module.locals["reconcile_task"]
    assert task["relay_task"] == "reconcile", task
    assert _text(task["source"]) == "${local.reconcile_source}"
    assert "var.reconcile_dry_run" in _text(task["dry_run"]) and "var.reconcile_max_deletes" in _text(task["max_deletes"])
    # Lambda's own async retries are off too.
    invoke = module.resources[("aws_lambda_function_event_invoke_config", "reconcile")]
    assert invoke["maximum_retry_attempts"] == 0
    # The task names and fields relay-aws and relay-core read.
    dispatcher = _cargo_sources("relay-aws")
    assert 'Some("reconcile")' in dispatcher and 'event.get("relay_task")' in dispatcher
    core = RECONCILE_RS.read_text()
    for field in ("source", "dry_run", "max_deletes"):
        assert f'"{field}"' in core, f"relay-core reads no task field {field}"


def test_azure_timer_function_reads_the_setting_the_module_writes():
    module = cloud_module("azure")
    settings = module.locals["reconcile_settings"]
    assert "var.reconcile_schedule" in _text(settings["RELAY_RECONCILE_SCHEDULE"])
    for flag in ("AzureWebJobs.reconcile.Disabled", "AzureWebJobs_reconcile_Disabled"):
        assert _text(settings[flag]) == "${local.reconcile_off}", flag
    assert re.search(r"local\.reconcile_enabled\s*\?\s*\"false\"\s*:\s*\"true\"", _text(module.locals["reconcile_off"]))
    assert "RELAY_RECONCILE_SCHEDULE" in env_keys(module), "the function app does not get local.reconcile_settings"
    function = json.loads((REPO_ROOT / "crates" / "relay-azure" / "app" / "reconcile" / "function.json").read_text())
    trigger = function["bindings"][0]
    assert trigger["type"] == "timerTrigger" and trigger["schedule"] == "%RELAY_RECONCILE_SCHEDULE%"
    source = (REPO_ROOT / "crates" / "relay-azure" / "src" / "reconcile.rs").read_text()
    assert 'FUNCTION_NAME: &str = "reconcile"' in source


def test_gcp_scheduler_runs_the_service_image_as_relay_gcp_reconcile():
    module = cloud_module("gcp")
    job = module.resources[("google_cloud_run_v2_job", "reconcile")]
    task = _as_list(_as_list(job["template"])[0]["template"])[0]
    container = _as_list(task["containers"])[0]
    assert _text(container["image"]) == "${var.image}"
    assert container["args"] == ["reconcile"]
    assert "google_service_account.relay" in _text(task["service_account"])
    assert task["max_retries"] == 0
    scheduler = module.resources[("google_cloud_scheduler_job", "reconcile")]
    target = _as_list(scheduler["http_target"])[0]
    assert "google_cloud_run_v2_job.reconcile" in _text(target["uri"]) and _text(target["uri"]).endswith(":run")
    assert "google_service_account.reconcile_scheduler" in _text(target["oauth_token"])
    assert _as_list(scheduler["retry_config"])[0]["retry_count"] == 0
    invoker = module.resources[("google_cloud_run_v2_job_iam_member", "reconcile_scheduler")]
    assert invoker["role"] == "roles/run.invoker" and "google_cloud_run_v2_job.reconcile" in _text(invoker["name"])
    main = _cargo_sources("relay-gcp")
    assert 'Some("reconcile")' in main


def test_self_off_by_default_catches_an_always_on_resource():
    module = Module.from_text(
        """
        variable "reconcile_schedule" {
          type    = string
          default = "rate(1 hour)"
        }
        locals {
          reconcile_enabled = true
        }
        resource "aws_scheduler_schedule" "reconcile" {
          name = "x"
        }
        resource "aws_lambda_function" "reconcile" {
          count = local.reconcile_enabled ? 1 : 0
        }
        """
    )
    problems = off_by_default_problems(module)
    assert any("default to null" in p for p in problems), problems
    assert any("local.reconcile_enabled is" in p for p in problems), problems
    assert any(p.startswith("aws_scheduler_schedule.reconcile") for p in problems), problems
    assert not any(p.startswith("aws_lambda_function.reconcile") for p in problems), problems
