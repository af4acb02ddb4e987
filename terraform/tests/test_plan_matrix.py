"""The plan matrix (plan_matrix.py) fails on the defects it guards against.

Each test copies terraform/ to a temporary folder, puts one old defect back
there by replacing the fixed expression with the one that was shipped, and
plans the matrix combination of the root that broke; the plan must fail, and
for that reason (the error names the defect and the file), or the check could
not catch it. (The same combination on the real tree is part of the matrix
itself, which scripts/terraform-checks.sh runs first: it plans.)

Needs terraform-offline (../shared/tools/terraform-offline or
$TF_OFFLINE_DIR) and terraform; skipped without them, as on a user's machine
(scripts/terraform-checks.sh says so there). Each test plans one or two
combinations (about 10 s each on a quiet machine).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import plan_matrix

available, why = plan_matrix.tool_available()
pytestmark = pytest.mark.skipif(not available, reason=why or "terraform-offline unavailable")


def _copy_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "terraform"
    shutil.copytree(
        plan_matrix.TF_ROOT,
        tree,
        ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*", "__pycache__", "tests"),
    )
    return tree


def _put_back(path: Path, pattern: str, old: str) -> None:
    """Replaces the one match of `pattern` (the fix) with `old` (the defect)."""
    text = path.read_text(encoding="utf-8")
    new, count = re.subn(pattern, lambda _: old, text, flags=re.S)
    assert count == 1, f"{path}: the fixed expression /{pattern}/ is not there once ({count}); update this test"
    path.write_text(new, encoding="utf-8")


def _plan(tree: Path, root: str, name: str) -> plan_matrix.Result:
    combos = [c for c in plan_matrix.matrix() if c.root == root and c.name == name]
    assert len(combos) == 1, f"no matrix combination {root} [{name}]"
    ok, out = plan_matrix.setup()
    assert ok, out
    return plan_matrix.run(combos, tree, jobs=1)[0]


def test_fails_when_gcp_secret_names_come_from_generated_values(tmp_path):
    # The shipped defect: the secret-name set was built from the values, and
    # the generated hook secret is unknown while planning.
    tree = _copy_tree(tmp_path)
    _put_back(
        tree / "modules" / "gcp" / "main.tf",
        r"  secret_env = toset\(concat\(\n.*?\n  \)\)\n",
        "  secret_env = toset([for k, v in local.secret_values : k if nonsensitive(v != null)])\n",
    )
    result = _plan(tree, "examples/okta-gcp", "required variables only (hook secret generated)")
    assert not result.ok, "the plan matrix did not catch the GCP secret-name defect"
    assert "Invalid for_each argument" in result.output, plan_matrix._failure_excerpt(result.output)
    assert "modules/gcp/secrets.tf" in result.output


def test_fails_when_azure_secret_names_come_from_generated_values(tmp_path):
    tree = _copy_tree(tmp_path)
    _put_back(
        tree / "modules" / "azure" / "keyvault.tf",
        r"  secrets_set = toset\(concat\(\n.*?\n  \)\)\n",
        "  secrets_set = toset(nonsensitive([for env, value in local.secret_values : env if value != null]))\n",
    )
    result = _plan(tree, "examples/auth0-azure", "required variables only (hook secret generated)")
    assert not result.ok, "the plan matrix did not catch the Azure secret-name defect"
    assert "Invalid for_each argument" in result.output, plan_matrix._failure_excerpt(result.output)
    assert "modules/azure/keyvault.tf" in result.output


def test_fails_when_a_sensitive_conditional_hides_the_lambda_environment(tmp_path):
    # The shipped defect: a conditional on the sensitive relay token marked
    # okta_org_url, and with it the function's whole environment, sensitive.
    tree = _copy_tree(tmp_path)
    _put_back(
        tree / "examples" / "okta-aws" / "main.tf",
        r"relay_okta_lookups = nonsensitive\(var\.relay_okta_api_token != null\)",
        "relay_okta_lookups = var.relay_okta_api_token != null",
    )
    result = _plan(tree, "examples/okta-aws", "user-supplied secrets")
    assert not result.ok, "the plan matrix did not catch a wholly sensitive Lambda environment"
    assert any("sensitive value" in p or "does not show" in p for p in result.problems), result.problems


def test_fails_when_entra_secret_names_come_from_generated_values(tmp_path):
    # Issue 12's defect for Entra ID: which Key Vault secrets exist decided
    # from the clientState, which idp/entra generates in the same apply.
    tree = _copy_tree(tmp_path)
    _put_back(
        tree / "modules" / "azure" / "keyvault.tf",
        r'local\.entra_enabled \? \["ENTRA_CLIENT_STATE", local\.entra_credential_env\]',
        'nonsensitive(var.entra_client_state != null) ? ["ENTRA_CLIENT_STATE", local.entra_credential_env]',
    )
    result = _plan(tree, "examples/entra-azure", "required variables only (clientState generated)")
    assert not result.ok, "the plan matrix did not catch Entra secret names decided from generated values"
    assert "Invalid for_each argument" in result.output, plan_matrix._failure_excerpt(result.output)
    assert "modules/azure/keyvault.tf" in result.output


@pytest.mark.parametrize("cloud", ["azure", "gcp"])
def test_fails_when_the_entra_credential_is_decided_from_the_certificate(tmp_path, cloud):
    # Issue 12's defect again, for the certificate: which secret holds the
    # Graph credential decided from whether the certificate is set, which a
    # root making it in the same apply does not know while planning (the
    # matrix's generated root). entra_credential, a plain variable, decides.
    tree = _copy_tree(tmp_path)
    _put_back(
        tree / "modules" / cloud / "entra.tf",
        r'entra_credential_env\s*= var\.entra_credential == "certificate" \?',
        'entra_credential_env = nonsensitive(var.entra_client_certificate != null) ?',
    )
    result = _plan(tree, f"modules/{cloud}", "Entra ID certificate from the same apply")
    assert not result.ok, f"modules/{cloud}: the plan matrix did not catch the credential decided from the certificate"
    assert "Invalid for_each argument" in result.output, plan_matrix._failure_excerpt(result.output)


def test_fails_when_the_entra_settings_do_not_reach_the_app(tmp_path):
    # The wiring of issue 18: without the Entra settings in the Function
    # App's app_settings the relay has no tenant to read Graph from.
    tree = _copy_tree(tmp_path)
    _put_back(tree / "modules" / "azure" / "function.tf", r"    local\.entra_settings,\n", "")
    result = _plan(tree, "examples/entra-azure", "required variables only (clientState generated)")
    assert not result.ok, "the plan matrix did not notice the Entra settings missing from the app"
    assert any("ENTRA_TENANT_ID" in p for p in result.problems), result.problems


def test_fails_when_an_example_needs_a_provider_the_tool_does_not_serve(tmp_path):
    # entra-azure once called idp/entra, which needs azuread: the shared
    # tool serves no azuread schema, so anyone's offline check of the
    # example failed at init while the matrix (which added the repository's
    # azuread schema for every root) passed. The extra schemas are now for
    # idp/entra alone; an example that pulls azuread in again must fail.
    tree = _copy_tree(tmp_path)
    _put_back(
        tree / "examples" / "entra-azure" / "versions.tf",
        r"  required_providers \{\n",
        '  required_providers {\n    azuread = {\n      source  = "hashicorp/azuread"\n      version = ">= 3.0, < 4.0"\n    }\n',
    )
    result = _plan(tree, "examples/entra-azure", "required variables only (clientState generated)")
    assert not result.ok, "the plan matrix planned an example that needs azuread"
    assert "hashicorp/azuread" in result.output, plan_matrix._failure_excerpt(result.output)


# --- what must not plan (on the real tree) ------------------------------------


def _plan_combination(root: str, variables: dict) -> plan_matrix.Result:
    ok, out = plan_matrix.setup()
    assert ok, out
    combo = plan_matrix.Combination(root, "must fail", variables)
    return plan_matrix.run([combo], plan_matrix.TF_ROOT, jobs=1)[0]


_MODULE_BASE = {
    "modules/aws": {**plan_matrix.DUO, "lambda_zip_path": plan_matrix.ZIP},
    "modules/azure": {"location": "westeurope", "package_zip_path": plan_matrix.ZIP, **plan_matrix.DUO},
    "modules/gcp": {
        "project": "my-gcp-project",
        "region": "europe-west1",
        "image": "europe-west1-docker.pkg.dev/my-gcp-project/relay/relay-gcp:v1",
        **plan_matrix.DUO,
    },
}


@pytest.mark.parametrize("root", sorted(_MODULE_BASE))
def test_an_entra_catch_up_without_the_app_registration_does_not_plan(root):
    # Issue 18: catch_up_source "entra" on an Okta-only relay would run
    # (and fail) every 15 minutes with no Graph credentials; the precondition
    # refuses it at plan time and says what to set.
    result = _plan_combination(
        root,
        {
            **_MODULE_BASE[root],
            "hook_sources": '["okta"]',
            "okta_auth_secret": plan_matrix.OKTA_SECRET,
            "okta_org_url": "https://acme.okta.com",
            "okta_api_token": plan_matrix.TOKEN,
            "catch_up_enabled": True,
            "catch_up_source": "entra",
        },
    )
    assert not result.ok, f"{root}: an entra catch-up without Entra credentials planned"
    assert "Resource precondition failed" in result.output, plan_matrix._failure_excerpt(result.output)
    assert "catch_up.tf" in result.output and "entra_client_state" in result.output, plan_matrix._failure_excerpt(result.output)


def test_a_plain_http_notification_url_does_not_plan():
    # Graph delivers only to https; the relay refuses anything else too.
    result = _plan_combination(
        "modules/azure",
        {
            **_MODULE_BASE["modules/azure"],
            "hook_sources": '["entra"]',
            **plan_matrix.ENTRA_MODULE_VARS,
            "entra_notification_url": "http://relay.example.com/api/entra",
        },
    )
    assert not result.ok, "an http notification URL planned"
    assert "entra_notification_url must be an https URL" in result.output, plan_matrix._failure_excerpt(result.output)


# The Entra ID examples with the client secret (what a user gives).
_ENTRA_EXAMPLE_SECRET_BASE = {
    "examples/entra-azure": {
        "location": "westeurope",
        **plan_matrix.DUO,
        "package_zip_path": plan_matrix.ZIP,
        "entra_tenant_id": plan_matrix.ENTRA_MODULE_VARS["entra_tenant_id"],
        "entra_client_id": plan_matrix.ENTRA_MODULE_VARS["entra_client_id"],
        "entra_client_secret": plan_matrix.ENTRA_MODULE_VARS["entra_client_secret"],
    },
    **{
        root: {**base, "entra_client_secret": plan_matrix.ENTRA_MODULE_VARS["entra_client_secret"]}
        for root, base in plan_matrix.ENTRA_EXAMPLE_BASE.items()
    },
}


@pytest.mark.parametrize("root", sorted(_ENTRA_EXAMPLE_SECRET_BASE))
def test_the_audit_poll_without_the_entra_catch_up_does_not_plan(root):
    # ENTRA_AUDIT_LOG is read by the scheduled catch-up only: set without
    # it, nothing would poll the audit log and MFA resets would be lost
    # silently.
    variables = {**_ENTRA_EXAMPLE_SECRET_BASE[root], "catch_up_enabled": False, "entra_audit_log": True}
    result = _plan_combination(root, variables)
    assert not result.ok, f"{root}: entra_audit_log without the catch-up planned"
    assert "entra_audit_log is read by the scheduled catch-up" in result.output, plan_matrix._failure_excerpt(result.output)


# --- a certificate instead of the client secret (issue 18) -------------------------

_ENTRA_CERT_BASE = {
    root: {**base, "hook_sources": '["entra"]', **plan_matrix.ENTRA_CERT_VARS}
    for root, base in _MODULE_BASE.items()
}


@pytest.mark.parametrize("root", sorted(_MODULE_BASE))
def test_a_secret_and_a_certificate_together_do_not_plan(root):
    # The relay refuses ENTRA_CLIENT_SECRET with ENTRA_CLIENT_CERTIFICATE.
    result = _plan_combination(root, {**_ENTRA_CERT_BASE[root], "entra_client_secret": plan_matrix.ENTRA_MODULE_VARS["entra_client_secret"]})
    assert not result.ok, f"{root}: a client secret and a certificate planned together"
    assert "Set one Graph credential, not both" in result.output, plan_matrix._failure_excerpt(result.output)


@pytest.mark.parametrize("root", sorted(_MODULE_BASE))
def test_entra_without_a_credential_does_not_plan(root):
    # entra_credential "certificate" with no certificate (and no secret).
    variables = {k: v for k, v in _ENTRA_CERT_BASE[root].items() if k != "entra_client_certificate"}
    result = _plan_combination(root, variables)
    assert not result.ok, f"{root}: Entra ID without a Graph credential planned"
    assert "Resource precondition failed" in result.output, plan_matrix._failure_excerpt(result.output)
    assert "entra_client_certificate" in result.output, plan_matrix._failure_excerpt(result.output)


@pytest.mark.parametrize("root", sorted(_MODULE_BASE))
def test_a_certificate_without_its_private_key_does_not_plan(root):
    # The certificate alone (what the app registration holds) cannot sign
    # an assertion; the message names what is missing, never the value.
    cert_only = plan_matrix.ENTRA_CERTIFICATE[plan_matrix.ENTRA_CERTIFICATE.index("-----BEGIN CERTIFICATE-----"):]
    result = _plan_combination(root, {**_ENTRA_CERT_BASE[root], "entra_client_certificate": cert_only})
    assert not result.ok, f"{root}: a certificate without its private key planned"
    assert "entra_client_certificate must be PEM text holding both the certificate" in result.output, plan_matrix._failure_excerpt(result.output)
    assert cert_only[30:90] not in result.output, "the error quotes the value"


@pytest.mark.parametrize("root", sorted(_ENTRA_EXAMPLE_SECRET_BASE))
def test_the_example_refuses_a_secret_and_a_certificate_together(root):
    variables = {**_ENTRA_EXAMPLE_SECRET_BASE[root], "entra_client_certificate": plan_matrix.ENTRA_CERTIFICATE}
    result = _plan_combination(root, variables)
    assert not result.ok, f"{root} planned with a client secret and a certificate"
    assert "Set one Graph credential, not both" in result.output, plan_matrix._failure_excerpt(result.output)


def _plan_json(root: str, variables: dict, tmp_path: Path) -> dict:
    """The plan of `root` as `terraform show -json` gives it: the values
    the text plan hides as (sensitive value), to see where each one goes."""
    import json
    import subprocess
    import sys
    import zipfile

    ok, out = plan_matrix.setup()
    assert ok, out
    artifact = tmp_path / "artifact.zip"
    with zipfile.ZipFile(artifact, "w") as z:
        z.writestr("bootstrap", "")
    env = plan_matrix.tool_env(root)
    cmd = [sys.executable, str(plan_matrix.tool_dir() / "check"), "--keep", str(plan_matrix.TF_ROOT / root)]
    cmd += plan_matrix._var_args(variables, artifact) + ["-out=matrix.tfplan"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    kept = re.search(r"kept the temporary copy: (\S+)", proc.stdout)
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert kept, proc.stdout
        show = subprocess.run(
            [shutil.which("terraform") or "terraform", "show", "-json", "matrix.tfplan"],
            cwd=kept.group(1),
            env={**env, "TF_CLI_CONFIG_FILE": str(Path(env["TF_OFFLINE_HOME"]) / "terraformrc"), "CHECKPOINT_DISABLE": "1"},
            capture_output=True,
            text=True,
        )
        assert show.returncode == 0, show.stderr
        return json.loads(show.stdout)
    finally:
        if kept:
            top = Path(kept.group(1))
            while top.parent != top and not top.name.startswith("terraform-offline."):
                top = top.parent
            if top.name.startswith("terraform-offline."):
                shutil.rmtree(top, ignore_errors=True)


def _changes(plan: dict) -> dict:
    return {c["address"]: c["change"] for c in plan["resource_changes"]}


PEM_SENT = plan_matrix.ENTRA_CERTIFICATE


@pytest.mark.parametrize("root", sorted(_MODULE_BASE))
def test_the_certificate_reaches_the_secret_store_and_never_a_plain_setting(root, tmp_path):
    combo = next(c for c in plan_matrix.matrix() if c.root == root and c.name == "Entra ID with a certificate, catch-up source entra")
    changes = _changes(_plan_json(root, combo.variables, tmp_path))
    text = json.dumps(changes)
    if root == "modules/aws":
        # a key of the Secrets Manager secret's JSON, with the value given;
        # no ENTRA_CLIENT_SECRET; neither function's plain environment
        secret = json.loads(changes["aws_secretsmanager_secret_version.relay[0]"]["after"]["secret_string"])
        assert secret.get("ENTRA_CLIENT_CERTIFICATE") == PEM_SENT, sorted(secret)
        assert "ENTRA_CLIENT_SECRET" not in secret and "ENTRA_CLIENT_STATE" in secret, sorted(secret)
        for function in ("aws_lambda_function.relay", "aws_lambda_function.catch_up[0]"):
            variables = changes[function]["after"]["environment"][0]["variables"]
            assert not {k for k in variables if k.startswith("ENTRA_CLIENT_") and k != "ENTRA_CLIENT_ID"}, sorted(variables)
    elif root == "modules/azure":
        # a Key Vault secret holding the value; the app setting is the
        # reference to it (its id, unknown until it exists), never the value
        kv = changes['azurerm_key_vault_secret.relay["ENTRA_CLIENT_CERTIFICATE"]']["after"]
        assert kv["value"] == PEM_SENT and kv["name"] == "entra-client-certificate", kv["name"]
        assert 'azurerm_key_vault_secret.relay["ENTRA_CLIENT_SECRET"]' not in changes
        app = changes["azurerm_linux_function_app.relay"]
        assert app["after_unknown"]["app_settings"] is True or app["after_unknown"]["app_settings"].get("ENTRA_CLIENT_CERTIFICATE") is True, app["after_unknown"]
        settings = app["after"].get("app_settings") or {}
        assert "ENTRA_CLIENT_SECRET" not in settings and settings.get("ENTRA_CLIENT_CERTIFICATE") in (None,), sorted(settings)
    else:
        # a Secret Manager secret holding the value, read through
        # secret_key_ref by the service and the catch-up job, never a value
        version = changes['google_secret_manager_secret_version.relay["ENTRA_CLIENT_CERTIFICATE"]']["after"]
        assert version["secret_data"] == PEM_SENT
        assert 'google_secret_manager_secret.relay["ENTRA_CLIENT_SECRET"]' not in changes
        for runner, containers in (
            ("google_cloud_run_v2_service.relay", lambda a: a["template"][0]["containers"]),
            ("google_cloud_run_v2_job.catch_up[0]", lambda a: a["template"][0]["template"][0]["containers"]),
        ):
            env = {e["name"]: e for c in containers(changes[runner]["after"]) for e in c.get("env", [])}
            cert = env.get("ENTRA_CLIENT_CERTIFICATE")
            assert cert, f"{runner}: no ENTRA_CLIENT_CERTIFICATE among {sorted(env)}"
            assert not cert.get("value") and cert["value_source"][0]["secret_key_ref"], (runner, cert)
            assert "ENTRA_CLIENT_SECRET" not in env, sorted(env)
    # the value appears only where it is stored
    line = plan_matrix.ENTRA_CERTIFICATE_PEM.splitlines()[1]
    assert text.count(line) == 1, f"{root}: the certificate appears {text.count(line)} times in the plan"


@pytest.mark.parametrize("root", ["examples/entra-aws", "examples/entra-gcp"])
def test_the_examples_certificate_reaches_the_secret_store_only(root, tmp_path):
    # entra-aws / entra-gcp pick the module's entra_credential from whether
    # a certificate is given: it must land in the secret store, with no
    # client secret beside it, and nowhere else in the plan.
    combo = next(c for c in plan_matrix.matrix() if c.root == root and c.name == "a certificate instead of the client secret")
    changes = _changes(_plan_json(root, combo.variables, tmp_path))
    text = json.dumps(changes)
    line = plan_matrix.ENTRA_CERTIFICATE_PEM.splitlines()[1]
    if root == "examples/entra-aws":
        # The secret's JSON holds the clientState generated in the same
        # apply, so the plan knows none of it (modules/aws's own test above
        # reads its keys with every value given); what the plan does know:
        # neither function holds a Graph credential in its environment, and
        # the certificate is nowhere in a known value.
        version = changes["module.relay.aws_secretsmanager_secret_version.relay[0]"]
        assert version["after_unknown"].get("secret_string") is True, version["after_unknown"]
        for function in ("module.relay.aws_lambda_function.relay", "module.relay.aws_lambda_function.catch_up[0]"):
            variables = changes[function]["after"]["environment"][0]["variables"]
            assert not {k for k in variables if k.startswith("ENTRA_CLIENT_") and k != "ENTRA_CLIENT_ID"}, sorted(variables)
            assert variables.get("ENTRA_TENANT_ID") == plan_matrix.ENTRA_MODULE_VARS["entra_tenant_id"], sorted(variables)
        assert line not in text, f"{root}: the certificate is in a known value of the plan"
        return
    else:
        version = changes['module.relay.google_secret_manager_secret_version.relay["ENTRA_CLIENT_CERTIFICATE"]']["after"]
        assert version["secret_data"] == PEM_SENT
        assert 'module.relay.google_secret_manager_secret.relay["ENTRA_CLIENT_SECRET"]' not in changes
        assert 'module.relay.google_secret_manager_secret.relay["ENTRA_CLIENT_STATE"]' in changes
    assert text.count(line) == 1, f"{root}: the certificate appears {text.count(line)} times in the plan"


# --- a bad secret is refused without being shown -------------------------------
#
# Terraform 1.11 prints the value of a variable whose `validation` fails when
# the module is the root (`var.duo_skey is "..."`), sensitive or not; planned
# through a parent it does not. Our negative plans above plan the modules as
# roots, and so would a user's CI: the content checks of the sensitive
# variables are preconditions (secret_checks.tf in each module), whose
# messages show no value. Every bad value below carries MARKER; the plan must
# fail, name each variable in its message, and show MARKER nowhere.

MARKER = "QxMARK"  # short: every value with it must fail its check

_BAD_SECRETS = {
    "modules/aws": {
        "duo_skey": MARKER + "duo",  # too short
        "okta_auth_secret": MARKER + "ok",  # too short
        "auth0_auth_secret": MARKER + "a0",  # too short
        "okta_api_token": " " + MARKER + "tok",  # starts with a space
        "auth0_client_secret": MARKER + " cs",  # contains a space
        "webhook_signing_secrets": MARKER + "wh",  # not whsec_
        "entra_client_state": MARKER + "st",  # too short
    },
    "modules/azure": {
        "duo_skey": MARKER + "duo",
        "okta_auth_secret": MARKER + "ok",
        "auth0_auth_secret": MARKER + "a0",
        "okta_api_token": "   ",  # only an empty one is refused: no marker to carry
        "auth0_client_secret": "   ",
        "webhook_signing_secrets": MARKER + "wh",
        "entra_client_state": MARKER + "st",
    },
    "modules/gcp": {
        "duo_skey": MARKER + "duo",
        "okta_auth_secret": MARKER + "ok",
        "auth0_auth_secret": MARKER + "a0",
        "okta_api_token": "   ",
        "auth0_client_secret": "   ",
        "entra_client_state": MARKER + "st",
    },
    "idp/okta": {"okta_auth_secret": MARKER + "ok"},
    "idp/auth0": {"auth0_auth_secret": MARKER + "a0"},
}

_BAD_SECRET_BASE = {
    **{
        root: {
            **base,
            "hook_sources": '["okta", "auth0", "entra"]',
            **plan_matrix.ENTRA_MODULE_VARS,
            "okta_org_url": "https://acme.okta.com",
            "auth0_domain": "acme.us.auth0.com",
            "auth0_client_id": "relayclientid0123456789abcdef012",
        }
        for root, base in _MODULE_BASE.items()
    },
    "idp/okta": {"okta_hook_url": "https://relay.example.com/okta"},
    "idp/auth0": {"auth0_events_url": "https://relay.example.com/auth0", "auth0_logs_url": "https://relay.example.com/auth0/logs"},
}


@pytest.mark.parametrize("root", sorted(_BAD_SECRETS))
def test_a_bad_secret_is_refused_without_showing_it(root):
    bad = _BAD_SECRETS[root]
    result = _plan_combination(root, {**_BAD_SECRET_BASE[root], **bad})
    assert not result.ok, f"{root}: bad secrets planned"
    shown = " ".join(result.output.split())  # Terraform wraps its messages
    missing = [name for name in bad if f"{name} must" not in shown]
    assert not missing, f"{root}: no error for {missing}\n" + plan_matrix._failure_excerpt(result.output)
    assert MARKER not in result.output, f"{root}: a secret's value is in the output:\n" + "\n".join(
        line for line in result.output.splitlines() if MARKER in line
    ).replace(MARKER, "<MARKER>")
