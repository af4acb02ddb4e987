#!/usr/bin/env python3
"""Every Terraform root, planned from an empty state, for the variable sets a
user would choose: the examples with only their required variables (the hook
secret generated in the same apply), with every optional secret supplied,
with queue mode, a reconcile schedule, catch-up, alerts, and the IdP
registration on and off; the cloud modules and the IdP modules on their own.

Each combination runs `check` of the terraform-offline tool
(../shared/tools/terraform-offline, or $TF_OFFLINE_DIR): the real
`terraform init`, `validate` and `plan` against the providers' schemas, with
mock providers, so nothing reaches a cloud. A plan fails on everything
Terraform itself decides: unknown arguments, wrong types, module wiring,
variable validations, preconditions, and a `for_each`/`count` that depends
on values only known after apply (what broke the first apply of okta-gcp
and auth0-azure). Some combinations also look into the plan text (`expect`,
`refuse`): what the plan must show or must not.

    python3 terraform/tests/plan_matrix.py            # all, two at a time
    python3 terraform/tests/plan_matrix.py --list     # what would run
    python3 terraform/tests/plan_matrix.py --only okta-gcp --jobs 1

Exit status: 0 every combination planned, 1 one failed, 2 the tool is
missing or broken. Standard library only; scripts/terraform-checks.sh runs it
and terraform/tests/test_plan_matrix.py reuses it on a tree with the old
defects put back, to show it fails on them.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

TF_ROOT = Path(__file__).resolve().parents[1]
REPO_ROOT = TF_ROOT.parent

# Placeholder for a path to an artifact zip; replaced by a dummy zip.
ZIP = "<artifact.zip>"

# Values a user would type. The secrets are fake but pass the modules'
# validations (40-character Duo key, 16+ character hook secrets).
DUO = {
    "duo_api_host": "api-12345678.duosecurity.com",
    "duo_ikey": "DIABCDEFGHIJKLMNOPQR",
    "duo_skey": "0123456789abcdefghij0123456789abcdefghij",
}
OKTA_SECRET = "okta-hook-secret-0123456789abcdef"
AUTH0_SECRET = "auth0-hook-secret-0123456789abcdef"
TOKEN = "00token-0123456789abcdefghijklmnopqrstuvwx"
PREVIOUS = "previous-hook-secret-0123456789abcdef"
# The user_sync settings (issue 17) reach the relay's environment.
USER_SYNC_SHOWN = r'"DUO_USERNAME_ATTRIBUTE"\s*=\s*"okta:profile\.employeeNumber"'
SCOPE_SHOWN = r'"SCOPE_GROUPS"\s*=\s*"duo-users,00gCONTRACTORS"'
GCP_USER_SYNC_SHOWN = r'name\s*=\s*"DUO_USERNAME_ATTRIBUTE"\s*\n\s*\+\s*value\s*=\s*"okta:profile\.employeeNumber"'
GCP_SCOPE_SHOWN = r'name\s*=\s*"SCOPE_GROUPS"\s*\n\s*\+\s*value\s*=\s*"duo-users,00gCONTRACTORS"'

# What a plan of the AWS function / Azure app shows when its plain settings
# are reviewable (not folded into one "(sensitive value)").
AWS_PLAIN_SHOWN = r'"DUO_IKEY"\s*=\s*"DIABCDEFGHIJKLMNOPQR"'
AZURE_PLAIN_SHOWN = r'"DUO_IKEY"\s*=\s*"DIABCDEFGHIJKLMNOPQR"'
GCP_PLAIN_SHOWN = r'name\s*=\s*"OKTA_ORG_URL"\s*\n\s*\+\s*value\s*=\s*"https://acme\.okta\.com"'
WHOLLY_SENSITIVE = r"(variables|app_settings)\s*=\s*\(sensitive value\)"
# GCP: the alert policies on log-based metrics wait for the metrics.
GCP_METRIC_WAIT = r"time_sleep\.log_metrics will be created"

# Entra ID (issue 18). The tenant id reaches the relay as a plain setting
# (the mock's azuread_client_config answers the zero UUID); the client id
# of the app registration made in the same apply is unknown while planning
# but must still be there; the clientState and the client secret are
# stored as secrets and reach the app as references, never as plain
# (sensitive) values.
# The plain Entra settings, shown in the plan with the values given.
ENTRA_TENANT_SHOWN = r'"ENTRA_TENANT_ID"\s*=\s*"11111111-2222-3333-4444-555555555555"'
ENTRA_CLIENT_ID_SHOWN = r'"ENTRA_CLIENT_ID"\s*=\s*"66666666-7777-8888-9999-000000000000"'
ENTRA_KEY_VAULT_SECRETS = (
    r'azurerm_key_vault_secret\.relay\["ENTRA_CLIENT_STATE"\] will be created',
    r'azurerm_key_vault_secret\.relay\["ENTRA_CLIENT_SECRET"\] will be created',
    # the app setting is the Key Vault reference to the secret's id (unknown
    # until it exists), not the value (which would show as sensitive)
    r'"ENTRA_CLIENT_STATE"\s*=\s*\(known after apply\)',
    r'"ENTRA_CLIENT_SECRET"\s*=\s*\(known after apply\)',
)
ENTRA_SECRETS_PLAIN = r'"ENTRA_CLIENT_(STATE|SECRET)"\s*=\s*\(sensitive value\)'
# The scheduled catch-up of Entra ID (issue 18): the runner gets the URL
# the subscriptions deliver to. (?s) regexes look inside one resource's
# block: from its "will be created" line to the next one.
def in_block(address: str, rx: str) -> str:
    return rf"(?s)# {address} will be created(?:(?!will be created).)*?{rx}"


ENTRA_URL_DEFAULT = r'"ENTRA_NOTIFICATION_URL"\s*=\s*\(known after apply\)'
ENTRA_AUDIT_ON = r'"ENTRA_AUDIT_LOG"\s*=\s*"true"'
GCP_ENTRA_AUDIT_ON = r'name\s*=\s*"ENTRA_AUDIT_LOG"\s*\n\s*\+\s*value\s*=\s*"true"'
ENTRA_URL_CUSTOM = r'"ENTRA_NOTIFICATION_URL"\s*=\s*"https://relay\.example\.com/(api/)?entra"'
ENTRA_MODULE_VARS = {
    "entra_tenant_id": "11111111-2222-3333-4444-555555555555",
    "entra_client_id": "66666666-7777-8888-9999-000000000000",
    "entra_client_secret": "entra-client-secret-0123456789abcdef",
    "entra_client_state": "entra-client-state-0123456789abcdef",
}
# A certificate instead of the client secret (ENTRA_CLIENT_CERTIFICATE):
# graph-sim's throwaway key pair (public on purpose), the PEM relay-core
# reads. On the command line with its line breaks written as \n (the
# one-line form the relay reads too; a -var value spanning lines would also
# spread over the tool's log line, which hides only the first); the
# generated roots below hand it over with real line breaks.
ENTRA_CERTIFICATE_PEM = (REPO_ROOT / "crates" / "graph-sim" / "src" / "test-client-certificate.pem").read_text(encoding="utf-8")
ENTRA_CERTIFICATE_PEM = ENTRA_CERTIFICATE_PEM[ENTRA_CERTIFICATE_PEM.index("-----BEGIN"):]
ENTRA_CERTIFICATE = ENTRA_CERTIFICATE_PEM.strip().replace("\n", "\\n")
ENTRA_CERT_VARS = {
    **{k: v for k, v in ENTRA_MODULE_VARS.items() if k != "entra_client_secret"},
    "entra_credential": "certificate",
    "entra_client_certificate": ENTRA_CERTIFICATE,
}
# Where the certificate goes, per cloud: a key of the AWS secret (never the
# plain environment), a Key Vault secret behind a reference, a Secret
# Manager secret read through secret_key_ref by the service and the job.
ENTRA_CERT_PLAIN = r'"ENTRA_CLIENT_(STATE|SECRET|CERTIFICATE)"\s*='
GCP_CERT_REF = r'name\s*=\s*"ENTRA_CLIENT_CERTIFICATE"\s*\n\s*\+\s*value\s*=\s*\(known after apply\)\s*\n\s*\n\s*\+\s*value_source\s*\{\s*\n\s*\+\s*secret_key_ref'
GCP_CERT_PLAIN = r'name\s*=\s*"ENTRA_CLIENT_(SECRET|CERTIFICATE)"\s*\n\s*\+\s*value\s*=\s*("|\(sensitive value\))'


# What entra-aws and entra-gcp need besides the Graph credential (the
# registration's ids from terraform/idp/entra; the clientState generated in
# the example).
ENTRA_EXAMPLE_BASE = {
    "examples/entra-aws": {
        "region": "us-east-1",
        **DUO,
        "lambda_zip_path": ZIP,
        "entra_tenant_id": ENTRA_MODULE_VARS["entra_tenant_id"],
        "entra_client_id": ENTRA_MODULE_VARS["entra_client_id"],
    },
    "examples/entra-gcp": {
        "project": "my-gcp-project",
        "region": "europe-west1",
        "image": "europe-west1-docker.pkg.dev/my-gcp-project/relay/relay-gcp:v1",
        **DUO,
        "entra_tenant_id": ENTRA_MODULE_VARS["entra_tenant_id"],
        "entra_client_id": ENTRA_MODULE_VARS["entra_client_id"],
    },
}


@dataclasses.dataclass(frozen=True)
class Combination:
    root: str  # relative to terraform/
    name: str
    variables: dict
    expect: tuple = ()  # regexes the verbose plan must match
    refuse: tuple = ()  # regexes it must not match
    # A root written for the check (main.tf), for what a user's own root
    # does and no root here does: {modules} is the checked tree's modules/.
    generated: str = ""

    @property
    def label(self) -> str:
        return f"{self.root} [{self.name}]"


def _example(root, name, base, extra=None, expect=(), refuse=(), generated=""):
    return Combination(root, name, {**base, **(extra or {})}, tuple(expect), tuple(refuse), generated)


# The first base64 line of the throwaway private key: no plan may show it
# (the variables are sensitive; the tool hides one-line -var values).
KEY_MATERIAL = re.escape(ENTRA_CERTIFICATE_PEM.splitlines()[1])

# Per cloud: the module's own required inputs in a generated root.
_SAME_APPLY_INPUTS = {
    "aws": ('provider "aws" {\n  region = "us-east-1"\n}\n', 'lambda_zip_path = var.zip\n'),
    "azure": ('provider "azurerm" {\n  features {}\n}\n', 'location         = "westeurope"\n  package_zip_path = var.zip\n'),
    "gcp": ("", 'project = "my-gcp-project"\n  region  = "europe-west1"\n  image   = "europe-west1-docker.pkg.dev/my-gcp-project/relay/relay-gcp:v1"\n'),
}


def same_apply_certificate_root(cloud: str) -> str:
    """A user's root whose Graph certificate (and clientState) comes from a
    resource of the same apply: unknown while planning. The module must
    still decide its secrets (entra_credential, a plain value) and plan:
    issue 12's `Invalid for_each argument` otherwise."""
    provider, inputs = _SAME_APPLY_INPUTS[cloud]
    return f'''# Written by terraform/tests/plan_matrix.py (same-apply certificate).
{provider}
variable "zip" {{
  type    = string
  default = null
}}

resource "random_password" "same_apply" {{
  length  = 32
  special = false
}}

# A stand-in for a certificate made or fetched in the same apply: a
# resource's attribute, unknown (null or not) until the apply creates it.
# (Terraform decides that a string template is not null even when its parts
# are unknown, so a template would not show the defect.)
resource "terraform_data" "certificate" {{
  input = sensitive(<<-EOT
{ENTRA_CERTIFICATE_PEM.strip()}
  EOT
  )
}}

module "relay" {{
  source = "{{modules}}/{cloud}"

  {inputs}  duo_api_host = "{DUO['duo_api_host']}"
  duo_ikey     = "{DUO['duo_ikey']}"
  duo_skey     = "{DUO['duo_skey']}"

  hook_sources             = ["entra"]
  entra_tenant_id          = "{ENTRA_MODULE_VARS['entra_tenant_id']}"
  entra_client_id          = "{ENTRA_MODULE_VARS['entra_client_id']}"
  entra_client_state       = random_password.same_apply.result
  entra_credential         = "certificate"
  entra_client_certificate = terraform_data.certificate.output
  catch_up_enabled         = true
}}
'''


def matrix() -> list[Combination]:
    out: list[Combination] = []

    # --- examples: what a user copies ---------------------------------------
    aws = {"region": "us-east-1", **DUO, "okta_org_url": "https://acme.okta.com", "lambda_zip_path": ZIP}
    root = "examples/okta-aws"
    out += [
        _example(
            root,
            "required variables only (hook secret generated)",
            aws,
            expect=[AWS_PLAIN_SHOWN],
            refuse=[r"catch_up\[0\] will be created"],
        ),
        _example(
            root,
            "user-supplied secrets",
            aws,
            {"okta_api_token": TOKEN, "relay_okta_api_token": TOKEN, "previous_hook_secret": PREVIOUS},
            expect=[AWS_PLAIN_SHOWN, r'"OKTA_ORG_URL"\s*=\s*"https://acme\.okta\.com"'],
            refuse=[WHOLLY_SENSITIVE],
        ),
        _example(root, "queue mode", aws, {"queue_enabled": True}, expect=[r'"RELAY_MODE"\s*=\s*"queue"']),
        _example(
            root,
            "reconcile schedule",
            aws,
            {"relay_okta_api_token": TOKEN, "reconcile_schedule": "rate(1 hour)"},
            expect=[r"module\.relay\.aws_scheduler_schedule\.reconcile\[0\] will be created"],
        ),
        _example(
            root,
            "catch-up",
            aws,
            {"relay_okta_api_token": TOKEN, "catch_up_enabled": True},
            expect=[
                r"module\.relay\.aws_scheduler_schedule\.catch_up\[0\] will be created",
                r"module\.relay\.aws_cloudwatch_metric_alarm\.catch_up_lag\[0\] will be created",
                r'"RELAY_CATCH_UP_WINDOW"\s*=\s*"24h"',
            ],
        ),
        _example(
            root,
            "user sync settings",
            aws,
            {"relay_okta_api_token": TOKEN, "user_sync": '{username_attribute = "okta:profile.employeeNumber", scope_groups = ["duo-users", "00gCONTRACTORS"]}'},
            expect=[USER_SYNC_SHOWN, SCOPE_SHOWN],
        ),
        _example(root, "alerts", aws, {"alert_email": "oncall@example.com"}),
        _example(
            root,
            "IdP registration off",
            aws,
            {"register_hook": False},
            refuse=[r"okta_event_hook\.relay\[0\] will be created"],
        ),
    ]

    gcp = {
        "project": "my-gcp-project",
        "region": "europe-west1",
        "image": "europe-west1-docker.pkg.dev/my-gcp-project/relay/relay-gcp:v1",
        **DUO,
        "okta_org_url": "https://acme.okta.com",
    }
    root = "examples/okta-gcp"
    out += [
        _example(root, "required variables only (hook secret generated)", gcp, expect=[GCP_METRIC_WAIT]),
        _example(
            root,
            "user-supplied secrets",
            gcp,
            {"okta_api_token": TOKEN, "relay_okta_api_token": TOKEN, "previous_hook_secret": PREVIOUS},
            expect=[GCP_PLAIN_SHOWN],
        ),
        _example(root, "queue mode", gcp, {"queue_enabled": True}),
        _example(
            root,
            "reconcile schedule",
            gcp,
            {"relay_okta_api_token": TOKEN, "reconcile_schedule": "0 * * * *"},
            expect=[r"google_cloud_scheduler_job\.reconcile\[0\] will be created"],
        ),
        _example(
            root,
            "catch-up",
            gcp,
            {"relay_okta_api_token": TOKEN, "catch_up_enabled": True, "catch_up_lag_alarm_seconds": 1800},
            expect=[
                r"google_cloud_scheduler_job\.catch_up\[0\] will be created",
                r"time_sleep\.catch_up_metrics\[0\] will be created",
                r"jsonPayload\.checkpoint_lag_s>1800",
            ],
        ),
        _example(
            root,
            "user sync settings",
            gcp,
            {"relay_okta_api_token": TOKEN, "user_sync": '{username_attribute = "okta:profile.employeeNumber", scope_groups = ["duo-users", "00gCONTRACTORS"]}'},
            expect=[GCP_USER_SYNC_SHOWN, GCP_SCOPE_SHOWN],
        ),
        _example(root, "alerts", gcp, {"alert_email": "oncall@example.com"}, expect=[GCP_METRIC_WAIT]),
        _example(
            root,
            "IdP registration off",
            gcp,
            {"register_hook": False},
            refuse=[r"okta_event_hook\.relay\[0\] will be created"],
        ),
    ]

    azure = {"location": "westeurope", **DUO, "auth0_domain": "acme.us.auth0.com", "package_zip_path": ZIP}
    root = "examples/auth0-azure"
    out += [
        _example(
            root,
            "required variables only (hook secret generated)",
            azure,
            expect=[AZURE_PLAIN_SHOWN, r'"AzureWebJobs_catch_up_Disabled"\s*=\s*"true"'],
            refuse=[r"catch_up_(failed|lag)\[0\] will be created"],
        ),
        _example(
            root,
            "user-supplied secrets",
            azure,
            {
                "subscription_id": "00000000-0000-0000-0000-000000000000",
                "auth0_client_id": "terraformclientid0123456789abcdef",
                "auth0_client_secret": TOKEN,
                "relay_auth0_client_id": "relayclientid0123456789abcdef012",
                "relay_auth0_client_secret": TOKEN,
                "previous_hook_secret": PREVIOUS,
            },
            expect=[AZURE_PLAIN_SHOWN, r'"AUTH0_DOMAIN"\s*=\s*"acme\.us\.auth0\.com"'],
            refuse=[WHOLLY_SENSITIVE],
        ),
        _example(root, "queue mode", azure, {"queue_enabled": True}, expect=[r'"RELAY_MODE"\s*=\s*"queue"']),
        _example(
            root,
            "reconcile schedule",
            azure,
            {
                "relay_auth0_client_id": "relayclientid0123456789abcdef012",
                "relay_auth0_client_secret": TOKEN,
                "reconcile_schedule": "0 0 * * * *",
            },
            expect=[r'"AzureWebJobs_reconcile_Disabled"\s*=\s*"false"'],
        ),
        _example(
            root,
            "catch-up",
            azure,
            {
                "relay_auth0_client_id": "relayclientid0123456789abcdef012",
                "relay_auth0_client_secret": TOKEN,
                "catch_up_enabled": True,
            },
            expect=[
                r'"AzureWebJobs_catch_up_Disabled"\s*=\s*"false"',
                r'"RELAY_CATCH_UP_SOURCE"\s*=\s*"auth0"',
                r"azurerm_monitor_scheduled_query_rules_alert_v2\.catch_up_lag\[0\] will be created",
            ],
        ),
        _example(
            root,
            "user sync settings",
            azure,
            {
                "relay_auth0_client_id": "relayclientid0123456789abcdef012",
                "relay_auth0_client_secret": TOKEN,
                "user_sync": '{username_attribute = "auth0:app_metadata.duo_user", scope_groups = ["duo-users"]}',
            },
            expect=[
                r'"DUO_USERNAME_ATTRIBUTE"\s*=\s*"auth0:app_metadata\.duo_user"',
                r'"SCOPE_GROUPS"\s*=\s*"duo-users"',
            ],
        ),
        _example(root, "alerts", azure, {"alert_email": "oncall@example.com"}),
        _example(
            root,
            "IdP registration off",
            azure,
            {"register_hook": False},
            refuse=[r"auth0_(event|log)_stream\.relay\[0\] will be created"],
        ),
        _example(root, "Log Stream only", azure, {"auth0_event_stream_enabled": False}),
    ]

    # The app registration's outputs (terraform/idp/entra, its own root);
    # the clientState is generated in the example.
    entra = {
        "location": "westeurope",
        **DUO,
        "package_zip_path": ZIP,
        "entra_tenant_id": ENTRA_MODULE_VARS["entra_tenant_id"],
        "entra_client_id": ENTRA_MODULE_VARS["entra_client_id"],
        "entra_client_secret": ENTRA_MODULE_VARS["entra_client_secret"],
    }
    root = "examples/entra-azure"
    out += [
        _example(
            root,
            "required variables only (clientState generated)",
            entra,
            expect=[
                AZURE_PLAIN_SHOWN,
                ENTRA_TENANT_SHOWN,
                ENTRA_CLIENT_ID_SHOWN,
                *ENTRA_KEY_VAULT_SECRETS,
                r"random_password\.client_state will be created",
                r'"AzureWebJobs_reconcile_Disabled"\s*=\s*"true"',
                # the scheduled catch-up is on by default: it creates and
                # renews the Graph subscriptions at the app's own URL
                r'"AzureWebJobs_catch_up_Disabled"\s*=\s*"false"',
                r'"RELAY_CATCH_UP_SOURCE"\s*=\s*"entra"',
                ENTRA_URL_DEFAULT,
                r"azurerm_monitor_scheduled_query_rules_alert_v2\.catch_up_failed\[0\] will be created",
                in_block(r"module\.relay\.azurerm_monitor_scheduled_query_rules_alert_v2\.catch_up_failed\[0\]", r"a Graph 401/403 means the app registration lacks a permission"),
            ],
            refuse=[WHOLLY_SENSITIVE, ENTRA_SECRETS_PLAIN, r"azuread_", r'"OKTA_AUTH_SECRET"', r'"ENTRA_AUDIT_LOG"'],
        ),
        _example(
            root,
            "catch-up off",
            entra,
            {"catch_up_enabled": False},
            # the HTTP function still gets the URL (it re-creates a
            # subscription Graph removed)
            expect=[r'"AzureWebJobs_catch_up_Disabled"\s*=\s*"true"', ENTRA_URL_DEFAULT],
            refuse=[r"catch_up_(failed|lag)\[0\] will be created"],
        ),
        _example(
            root,
            "notification URL of a custom domain, hourly catch-up",
            entra,
            {"entra_notification_url": "https://relay.example.com/api/entra", "catch_up_schedule": "0 5 * * * *"},
            expect=[ENTRA_URL_CUSTOM, r'"RELAY_CATCH_UP_SCHEDULE"\s*=\s*"0 5 \* \* \* \*"'],
            refuse=[ENTRA_URL_DEFAULT],
        ),
        _example(
            root,
            "MFA resets from the audit log",
            entra,
            {"entra_audit_log": True},
            expect=[ENTRA_AUDIT_ON, r'"RELAY_CATCH_UP_SOURCE"\s*=\s*"entra"'],
        ),
        _example(root, "queue mode", entra, {"queue_enabled": True}, expect=[r'"RELAY_MODE"\s*=\s*"queue"', ENTRA_TENANT_SHOWN]),
        _example(
            root,
            "reconcile schedule",
            entra,
            {"reconcile_schedule": "0 0 3 * * *"},
            expect=[r'"AzureWebJobs_reconcile_Disabled"\s*=\s*"false"', r'"RELAY_RECONCILE_SOURCE"\s*=\s*"entra"'],
        ),
        _example(
            root,
            "user sync settings",
            entra,
            {"user_sync": '{username_attribute = "entra:onPremisesSamAccountName", scope_groups = ["duo-users"]}'},
            expect=[r'"DUO_USERNAME_ATTRIBUTE"\s*=\s*"entra:onPremisesSamAccountName"', r'"SCOPE_GROUPS"\s*=\s*"duo-users"'],
        ),
    ]

    # A certificate instead of the client secret: the example picks the
    # module's entra_credential from whether one is given.
    entra_cert = {**{k: v for k, v in entra.items() if k != "entra_client_secret"}, "entra_client_certificate": ENTRA_CERTIFICATE}
    out += [
        _example(
            root,
            "a certificate instead of the client secret",
            entra_cert,
            expect=[
                r'azurerm_key_vault_secret\.relay\["ENTRA_CLIENT_CERTIFICATE"\] will be created',
                r'"ENTRA_CLIENT_CERTIFICATE"\s*=\s*\(known after apply\)',
                *ENTRA_KEY_VAULT_SECRETS[::2],
                r'"RELAY_CATCH_UP_SOURCE"\s*=\s*"entra"',
            ],
            refuse=[r'"?ENTRA_CLIENT_SECRET"?\]?\s*(=|will be created)', r'"ENTRA_CLIENT_CERTIFICATE"\s*=\s*\(sensitive value\)', WHOLLY_SENSITIVE, KEY_MATERIAL],
        ),
    ]

    # entra-aws and entra-gcp (issue 18): the same example on the other two
    # clouds. The scheduled catch-up (on by default) is what creates and
    # renews the subscriptions, so its runner must hold the notification
    # URL (the hook's own URL + /entra) and the hook itself must not (a
    # cycle); the secrets stay in the secret store.
    entra_aws = {**ENTRA_EXAMPLE_BASE["examples/entra-aws"], "entra_client_secret": ENTRA_MODULE_VARS["entra_client_secret"]}
    root = "examples/entra-aws"
    out += [
        _example(
            root,
            "required variables only (clientState generated)",
            entra_aws,
            expect=[
                AWS_PLAIN_SHOWN,
                ENTRA_TENANT_SHOWN,
                ENTRA_CLIENT_ID_SHOWN,
                r"random_password\.client_state will be created",
                r"module\.relay\.aws_secretsmanager_secret_version\.relay\[0\] will be created",
                in_block(r"module\.relay\.aws_lambda_function\.catch_up\[0\]", ENTRA_URL_DEFAULT),
                in_block(r"module\.relay\.aws_scheduler_schedule\.catch_up\[0\]", r'source\s*=\s*"entra"'),
                in_block(r"module\.relay\.aws_cloudwatch_metric_alarm\.catch_up_failed\[0\]", r"a Graph 401/403 means the app registration lacks a permission"),
            ],
            refuse=[
                WHOLLY_SENSITIVE,
                ENTRA_CERT_PLAIN,
                r"azuread_",
                r'"OKTA_AUTH_SECRET"',
                r'"ENTRA_AUDIT_LOG"',
                r"aws_scheduler_schedule\.reconcile\[0\] will be created",
                in_block(r"module\.relay\.aws_lambda_function\.relay", r'"ENTRA_NOTIFICATION_URL"'),
            ],
        ),
        _example(
            root,
            "a certificate instead of the client secret",
            ENTRA_EXAMPLE_BASE[root],
            {"entra_client_certificate": ENTRA_CERTIFICATE},
            # a key of the Secrets Manager secret (test_plan_matrix.py reads
            # it from the plan's JSON), never a plain variable
            expect=[r"module\.relay\.aws_secretsmanager_secret_version\.relay\[0\] will be created", in_block(r"module\.relay\.aws_lambda_function\.catch_up\[0\]", ENTRA_URL_DEFAULT)],
            refuse=[ENTRA_CERT_PLAIN, WHOLLY_SENSITIVE, KEY_MATERIAL],
        ),
        _example(
            root,
            "MFA resets from the audit log",
            entra_aws,
            {"entra_audit_log": True},
            expect=[in_block(r"module\.relay\.aws_lambda_function\.catch_up\[0\]", ENTRA_AUDIT_ON)],
            refuse=[in_block(r"module\.relay\.aws_lambda_function\.relay", r'"ENTRA_(AUDIT_LOG|NOTIFICATION_URL)"')],
        ),
        _example(
            root,
            "catch-up off",
            entra_aws,
            {"catch_up_enabled": False},
            # nothing gets the URL then: the hook function cannot hold it
            expect=[ENTRA_TENANT_SHOWN],
            refuse=[r"catch_up(_failed|_lag)?\[0\] will be created", r'"ENTRA_NOTIFICATION_URL"'],
        ),
    ]

    entra_gcp = {**ENTRA_EXAMPLE_BASE["examples/entra-gcp"], "entra_client_secret": ENTRA_MODULE_VARS["entra_client_secret"]}
    root = "examples/entra-gcp"
    out += [
        _example(
            root,
            "required variables only (clientState generated)",
            entra_gcp,
            expect=[
                GCP_METRIC_WAIT,
                r'name\s*=\s*"ENTRA_TENANT_ID"\s*\n\s*\+\s*value\s*=\s*"11111111-2222-3333-4444-555555555555"',
                r'name\s*=\s*"ENTRA_CLIENT_ID"\s*\n\s*\+\s*value\s*=\s*"66666666-7777-8888-9999-000000000000"',
                r"random_password\.client_state will be created",
                r'module\.relay\.google_secret_manager_secret\.relay\["ENTRA_CLIENT_STATE"\] will be created',
                r'module\.relay\.google_secret_manager_secret\.relay\["ENTRA_CLIENT_SECRET"\] will be created',
                in_block(r"module\.relay\.google_cloud_run_v2_job\.catch_up\[0\]", r'name\s*=\s*"ENTRA_NOTIFICATION_URL"\s*\n\s*\+\s*value\s*=\s*\(known after apply\)'),
                in_block(r"module\.relay\.google_cloud_run_v2_job\.catch_up\[0\]", r'name\s*=\s*"RELAY_CATCH_UP_SOURCE"\s*\n\s*\+\s*value\s*=\s*"entra"'),
                in_block(r"module\.relay\.google_cloud_run_v2_job\.catch_up\[0\]", r'name\s*=\s*"ENTRA_CLIENT_STATE"\s*\n\s*\+\s*value\s*=\s*\(known after apply\)\s*\n\s*\n\s*\+\s*value_source\s*\{\s*\n\s*\+\s*secret_key_ref'),
                r"module\.relay\.google_cloud_scheduler_job\.catch_up\[0\] will be created",
            ],
            refuse=[
                GCP_CERT_PLAIN,
                r'name\s*=\s*"ENTRA_CLIENT_STATE"\s*\n\s*\+\s*value\s*=\s*("|\(sensitive value\))',
                r"azuread_",
                r'"OKTA_AUTH_SECRET"',
                r'"ENTRA_AUDIT_LOG"',
                r"google_cloud_scheduler_job\.reconcile\[0\] will be created",
                in_block(r"module\.relay\.google_cloud_run_v2_service\.relay", r'"ENTRA_NOTIFICATION_URL"'),
            ],
        ),
        _example(
            root,
            "a certificate instead of the client secret",
            ENTRA_EXAMPLE_BASE[root],
            {"entra_client_certificate": ENTRA_CERTIFICATE},
            expect=[
                r'module\.relay\.google_secret_manager_secret\.relay\["ENTRA_CLIENT_CERTIFICATE"\] will be created',
                in_block(r"module\.relay\.google_cloud_run_v2_service\.relay", GCP_CERT_REF),
                in_block(r"module\.relay\.google_cloud_run_v2_job\.catch_up\[0\]", GCP_CERT_REF),
            ],
            refuse=[r'"?ENTRA_CLIENT_SECRET"?\]?\s*(=|will be created)', GCP_CERT_PLAIN, KEY_MATERIAL],
        ),
        _example(
            root,
            "MFA resets from the audit log",
            entra_gcp,
            {"entra_audit_log": True},
            expect=[in_block(r"module\.relay\.google_cloud_run_v2_job\.catch_up\[0\]", GCP_ENTRA_AUDIT_ON)],
            refuse=[in_block(r"module\.relay\.google_cloud_run_v2_service\.relay", r'"ENTRA_(AUDIT_LOG|NOTIFICATION_URL)"')],
        ),
        _example(
            root,
            "catch-up off",
            entra_gcp,
            {"catch_up_enabled": False},
            expect=[GCP_METRIC_WAIT],
            refuse=[r"catch_up\[0\] will be created", r'"ENTRA_NOTIFICATION_URL"'],
        ),
    ]

    # --- cloud modules on their own (known secrets) -------------------------
    root = "modules/aws"
    base = {**DUO, "lambda_zip_path": ZIP, "okta_auth_secret": OKTA_SECRET}
    out += [
        _example(root, "one hook secret", base),
        _example(
            root,
            "everything on",
            base,
            {
                "hook_sources": '["okta", "auth0", "entra"]',
                **ENTRA_MODULE_VARS,
                "auth0_auth_secret": AUTH0_SECRET,
                "okta_org_url": "https://acme.okta.com",
                "okta_api_token": TOKEN,
                "auth0_domain": "acme.us.auth0.com",
                "auth0_client_id": "relayclientid0123456789abcdef012",
                "auth0_client_secret": TOKEN,
                "webhook_signing_secrets": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "queue_enabled": True,
                "reconcile_schedule": "cron(15 3 * * ? *)",
                "catch_up_enabled": True,
                "alert_email": "oncall@example.com",
                "alarm_actions": '["arn:aws:sns:us-east-1:123456789012:pager"]',
                "kms_key_arn": "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555",
                "user_sync": '{username_attribute = "okta:profile.employeeNumber", username_lowercase = true, alias1_attribute = "okta:login", scope_groups = ["duo-users", "00gCONTRACTORS"], exclude_groups = ["AD Sync Users"], exclude_usernames = "svc-.*", phone_attribute = "okta:profile.mobilePhone", phone_default_region = "US", phone_readd = false}',
            },
            # Entra's ids are plain variables of the function, its secrets
            # keys of the secret only (relay-aws refuses them in the plain
            # environment).
            expect=[
                AWS_PLAIN_SHOWN,
                USER_SYNC_SHOWN,
                SCOPE_SHOWN,
                r'"ENTRA_TENANT_ID"\s*=\s*"11111111-2222-3333-4444-555555555555"',
                r'"ENTRA_CLIENT_ID"\s*=\s*"66666666-7777-8888-9999-000000000000"',
            ],
            refuse=[r'"ENTRA_CLIENT_(STATE|SECRET)"\s*='],
        ),
        _example(
            root,
            "Entra ID catch-up (source by default)",
            {**{k: v for k, v in base.items() if k != "okta_auth_secret"}, "hook_sources": '["entra"]', **ENTRA_MODULE_VARS, "catch_up_enabled": True},
            # the catch-up function holds the hook function's URL + /entra;
            # the hook function itself cannot (its own URL: a cycle)
            expect=[
                in_block(r"aws_lambda_function\.catch_up\[0\]", ENTRA_URL_DEFAULT),
                in_block(r"aws_scheduler_schedule\.catch_up\[0\]", r'source\s*=\s*"entra"'),
                in_block(r"aws_cloudwatch_metric_alarm\.catch_up_failed\[0\]", r"a Graph 401/403 means the app registration lacks a permission"),
            ],
            refuse=[in_block(r"aws_lambda_function\.relay", r'"ENTRA_NOTIFICATION_URL"'), r'"ENTRA_CLIENT_(STATE|SECRET)"\s*=', r'"ENTRA_AUDIT_LOG"'],
        ),
        _example(
            root,
            "Entra ID catch-up with the audit poll, notification URL of a custom domain",
            {**{k: v for k, v in base.items() if k != "okta_auth_secret"}, "hook_sources": '["entra"]', **ENTRA_MODULE_VARS, "catch_up_enabled": True, "catch_up_source": "entra", "entra_notification_url": "https://relay.example.com/entra", "entra_audit_log": True},
            expect=[
                in_block(r"aws_lambda_function\.catch_up\[0\]", ENTRA_URL_CUSTOM),
                in_block(r"aws_lambda_function\.catch_up\[0\]", ENTRA_AUDIT_ON),
                r'entra_notification_url\s*=\s*"https://relay\.example\.com/entra"',
            ],
            refuse=[in_block(r"aws_lambda_function\.relay", r'"ENTRA_(AUDIT_LOG|NOTIFICATION_URL)"')],
        ),
        _example(
            root,
            "existing secret",
            {
                **{k: v for k, v in DUO.items() if k != "duo_skey"},
                "lambda_zip_path": ZIP,
                "existing_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:relay-AbCdEf",
            },
            refuse=[r"aws_secretsmanager_secret\.relay\[0\] will be created"],
        ),
        _example(
            root,
            "Entra ID with a certificate, catch-up source entra",
            {**{k: v for k, v in base.items() if k != "okta_auth_secret"}, "hook_sources": '["entra"]', **ENTRA_CERT_VARS, "catch_up_enabled": True, "catch_up_source": "entra"},
            # the certificate is a key of the secret (its JSON is sensitive
            # in the plan; test_plan_matrix.py reads it from the plan's
            # JSON), never a plain variable of either function
            expect=[
                r"aws_secretsmanager_secret_version\.relay\[0\] will be created",
                in_block(r"aws_lambda_function\.catch_up\[0\]", ENTRA_URL_DEFAULT),
                in_block(r"aws_scheduler_schedule\.catch_up\[0\]", r'source\s*=\s*"entra"'),
            ],
            refuse=[ENTRA_CERT_PLAIN, KEY_MATERIAL],
        ),
        _example(
            root,
            "Entra ID certificate from the same apply",
            {"zip": ZIP},
            expect=[r"module\.relay\.aws_secretsmanager_secret_version\.relay\[0\] will be created", in_block(r"module\.relay\.aws_lambda_function\.catch_up\[0\]", ENTRA_URL_DEFAULT)],
            refuse=[ENTRA_CERT_PLAIN, KEY_MATERIAL],
            generated=same_apply_certificate_root("aws"),
        ),
    ]

    root = "modules/azure"
    base = {
        "location": "westeurope",
        "package_zip_path": ZIP,
        **DUO,
        "hook_sources": '["okta"]',
        "okta_auth_secret": OKTA_SECRET,
    }
    out += [
        _example(root, "one hook secret", base),
        _example(
            root,
            "everything on",
            base,
            {
                "hook_sources": '["okta", "auth0", "entra"]',
                **ENTRA_MODULE_VARS,
                "auth0_auth_secret": AUTH0_SECRET,
                "okta_org_url": "https://acme.okta.com",
                "okta_api_token": TOKEN,
                "auth0_domain": "acme.us.auth0.com",
                "auth0_client_id": "relayclientid0123456789abcdef012",
                "auth0_client_secret": TOKEN,
                "webhook_signing_secrets": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "queue_enabled": True,
                "reconcile_schedule": "0 0 * * * *",
                "catch_up_enabled": True,
                "alert_email": "oncall@example.com",
                "action_group_ids": '["/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ops/providers/Microsoft.Insights/actionGroups/pager"]',
                "resource_group_name": "existing-rg",
                "shared_access_key_enabled": False,
                "user_sync": '{username_attribute = "okta:profile.employeeNumber", username_lowercase = true, alias1_attribute = "okta:login", scope_groups = ["duo-users", "00gCONTRACTORS"], exclude_groups = ["AD Sync Users"], exclude_usernames = "svc-.*", phone_attribute = "okta:profile.mobilePhone", phone_default_region = "US", phone_readd = false}',
            },
            expect=[
                AZURE_PLAIN_SHOWN,
                USER_SYNC_SHOWN,
                SCOPE_SHOWN,
                r'"ENTRA_TENANT_ID"\s*=\s*"11111111-2222-3333-4444-555555555555"',
                *ENTRA_KEY_VAULT_SECRETS[:3],
            ],
            refuse=[ENTRA_SECRETS_PLAIN],
        ),
    ]

    azure_entra = {**{k: v for k, v in base.items() if k != "okta_auth_secret"}, "hook_sources": '["entra"]', **ENTRA_MODULE_VARS}
    azure_entra_cert = {**{k: v for k, v in base.items() if k != "okta_auth_secret"}, "hook_sources": '["entra"]', **ENTRA_CERT_VARS}
    out += [
        _example(
            root,
            "Entra ID catch-up (source by default)",
            azure_entra,
            {"catch_up_enabled": True},
            expect=[r'"RELAY_CATCH_UP_SOURCE"\s*=\s*"entra"', ENTRA_URL_DEFAULT, r'"AzureWebJobs_catch_up_Disabled"\s*=\s*"false"'],
            refuse=[r'"ENTRA_AUDIT_LOG"'],
        ),
        _example(
            root,
            "Entra ID catch-up with the audit poll, notification URL of a custom domain",
            azure_entra,
            {"catch_up_enabled": True, "catch_up_source": "entra", "entra_notification_url": "https://relay.example.com/api/entra", "entra_audit_log": True},
            expect=[ENTRA_URL_CUSTOM, ENTRA_AUDIT_ON],
        ),
        _example(
            root,
            "Entra ID with a certificate, catch-up source entra",
            azure_entra_cert,
            {"catch_up_enabled": True, "catch_up_source": "entra"},
            # a Key Vault secret behind a reference app setting, instead of
            # the client secret's
            expect=[
                r'azurerm_key_vault_secret\.relay\["ENTRA_CLIENT_CERTIFICATE"\] will be created',
                r'"ENTRA_CLIENT_CERTIFICATE"\s*=\s*\(known after apply\)',
                r'"RELAY_CATCH_UP_SOURCE"\s*=\s*"entra"',
                r'"AzureWebJobs_catch_up_Disabled"\s*=\s*"false"',
            ],
            refuse=[r'"?ENTRA_CLIENT_SECRET"?\]?\s*(=|will be created)', r'"ENTRA_CLIENT_CERTIFICATE"\s*=\s*("|\(sensitive value\))', KEY_MATERIAL],
        ),
        _example(
            root,
            "Entra ID certificate from the same apply",
            {"zip": ZIP},
            expect=[r'module\.relay\.azurerm_key_vault_secret\.relay\["ENTRA_CLIENT_CERTIFICATE"\] will be created', r'"ENTRA_CLIENT_CERTIFICATE"\s*=\s*\(known after apply\)'],
            refuse=[r'"?ENTRA_CLIENT_SECRET"?\]?\s*(=|will be created)', KEY_MATERIAL],
            generated=same_apply_certificate_root("azure"),
        ),
    ]

    root = "modules/gcp"
    base = {
        "project": "my-gcp-project",
        "region": "europe-west1",
        "image": "europe-west1-docker.pkg.dev/my-gcp-project/relay/relay-gcp:v1",
        **DUO,
        "hook_sources": '["okta"]',
        "okta_auth_secret": OKTA_SECRET,
    }
    out += [
        _example(root, "one hook secret", base, expect=[GCP_METRIC_WAIT]),
        _example(
            root,
            "everything on",
            base,
            {
                "hook_sources": '["okta", "auth0", "entra"]',
                **ENTRA_MODULE_VARS,
                "auth0_auth_secret": AUTH0_SECRET,
                "okta_org_url": "https://acme.okta.com",
                "okta_api_token": TOKEN,
                "auth0_domain": "acme.us.auth0.com",
                "auth0_client_id": "relayclientid0123456789abcdef012",
                "auth0_client_secret": TOKEN,
                "queue_enabled": True,
                "reconcile_schedule": "0 * * * *",
                "catch_up_enabled": True,
                "alert_email": "oncall@example.com",
                "notification_channels": '["projects/my-gcp-project/notificationChannels/123"]',
                "create_firestore_database": False,
                "firestore_database": "(default)",
                "invoker_iam_disabled": True,
                "user_sync": '{username_attribute = "okta:profile.employeeNumber", username_lowercase = true, alias1_attribute = "okta:login", scope_groups = ["duo-users", "00gCONTRACTORS"], exclude_groups = ["AD Sync Users"], exclude_usernames = "svc-.*", phone_attribute = "okta:profile.mobilePhone", phone_default_region = "US", phone_readd = false}',
            },
            expect=[
                GCP_METRIC_WAIT,
                GCP_PLAIN_SHOWN,
                GCP_USER_SYNC_SHOWN,
                GCP_SCOPE_SHOWN,
                r'name\s*=\s*"ENTRA_TENANT_ID"\s*\n\s*\+\s*value\s*=\s*"11111111-2222-3333-4444-555555555555"',
                r'google_secret_manager_secret\.relay\["ENTRA_CLIENT_STATE"\] will be created',
                r'google_secret_manager_secret\.relay\["ENTRA_CLIENT_SECRET"\] will be created',
                # from Secret Manager (a secret_key_ref), not a value
                r'name\s*=\s*"ENTRA_CLIENT_STATE"\s*\n\s*\+\s*value\s*=\s*\(known after apply\)\s*\n\s*\n\s*\+\s*value_source\s*\{\s*\n\s*\+\s*secret_key_ref',
            ],
            refuse=[r'name\s*=\s*"ENTRA_CLIENT_(STATE|SECRET)"\s*\n\s*\+\s*value\s*=\s*("|\(sensitive value\))'],
        ),
    ]

    gcp_entra = {**{k: v for k, v in base.items() if k != "okta_auth_secret"}, "hook_sources": '["entra"]', **ENTRA_MODULE_VARS}
    gcp_entra_cert = {**{k: v for k, v in base.items() if k != "okta_auth_secret"}, "hook_sources": '["entra"]', **ENTRA_CERT_VARS}
    out += [
        _example(
            root,
            "Entra ID catch-up (source by default)",
            gcp_entra,
            {"catch_up_enabled": True},
            # the job holds the service's URL + /entra and reads the
            # clientState and the client secret from Secret Manager
            expect=[
                in_block(r"google_cloud_run_v2_job\.catch_up\[0\]", r'name\s*=\s*"ENTRA_NOTIFICATION_URL"\s*\n\s*\+\s*value\s*=\s*\(known after apply\)'),
                in_block(r"google_cloud_run_v2_job\.catch_up\[0\]", r'name\s*=\s*"RELAY_CATCH_UP_SOURCE"\s*\n\s*\+\s*value\s*=\s*"entra"'),
                in_block(r"google_cloud_run_v2_job\.catch_up\[0\]", r'name\s*=\s*"ENTRA_CLIENT_STATE"\s*\n\s*\+\s*value\s*=\s*\(known after apply\)\s*\n\s*\n\s*\+\s*value_source\s*\{\s*\n\s*\+\s*secret_key_ref'),
                in_block(r"google_cloud_run_v2_job\.catch_up\[0\]", r'name\s*=\s*"ENTRA_CLIENT_SECRET"\s*\n\s*\+\s*value\s*=\s*\(known after apply\)\s*\n\s*\n\s*\+\s*value_source\s*\{\s*\n\s*\+\s*secret_key_ref'),
            ],
            refuse=[in_block(r"google_cloud_run_v2_service\.relay", r'"ENTRA_NOTIFICATION_URL"'), r'"ENTRA_AUDIT_LOG"'],
        ),
        _example(
            root,
            "Entra ID catch-up with the audit poll, notification URL of a custom domain",
            gcp_entra,
            {"catch_up_enabled": True, "catch_up_source": "entra", "entra_notification_url": "https://relay.example.com/entra", "entra_audit_log": True},
            expect=[
                in_block(r"google_cloud_run_v2_job\.catch_up\[0\]", r'name\s*=\s*"ENTRA_NOTIFICATION_URL"\s*\n\s*\+\s*value\s*=\s*"https://relay\.example\.com/entra"'),
                in_block(r"google_cloud_run_v2_job\.catch_up\[0\]", GCP_ENTRA_AUDIT_ON),
            ],
            refuse=[in_block(r"google_cloud_run_v2_service\.relay", r'"ENTRA_(AUDIT_LOG|NOTIFICATION_URL)"')],
        ),
        _example(
            root,
            "Entra ID with a certificate, catch-up source entra",
            gcp_entra_cert,
            {"catch_up_enabled": True, "catch_up_source": "entra"},
            # a Secret Manager secret, read by the service and the job
            # through secret_key_ref, instead of the client secret's
            expect=[
                r'google_secret_manager_secret\.relay\["ENTRA_CLIENT_CERTIFICATE"\] will be created',
                in_block(r"google_cloud_run_v2_service\.relay", GCP_CERT_REF),
                in_block(r"google_cloud_run_v2_job\.catch_up\[0\]", GCP_CERT_REF),
            ],
            refuse=[r'"?ENTRA_CLIENT_SECRET"?\]?\s*(=|will be created)', GCP_CERT_PLAIN, KEY_MATERIAL],
        ),
        _example(
            root,
            "Entra ID certificate from the same apply",
            {},
            expect=[
                r'module\.relay\.google_secret_manager_secret\.relay\["ENTRA_CLIENT_CERTIFICATE"\] will be created',
                in_block(r"module\.relay\.google_cloud_run_v2_service\.relay", GCP_CERT_REF),
                in_block(r"module\.relay\.google_cloud_run_v2_job\.catch_up\[0\]", GCP_CERT_REF),
            ],
            refuse=[r'"?ENTRA_CLIENT_SECRET"?\]?\s*(=|will be created)', GCP_CERT_PLAIN, KEY_MATERIAL],
            generated=same_apply_certificate_root("gcp"),
        ),
    ]

    # --- IdP registration on its own ------------------------------------------
    root = "idp/okta"
    base = {"okta_hook_url": "https://relay.example.com/okta", "okta_auth_secret": OKTA_SECRET}
    out += [
        _example(root, "hook and verification", base),
        _example(root, "hook, verify later", base, {"okta_verify": False}),
        _example(root, "disabled", {}, {"okta_enabled": False}),
    ]
    root = "idp/auth0"
    base = {
        "auth0_events_url": "https://relay.example.com/auth0",
        "auth0_logs_url": "https://relay.example.com/auth0/logs",
        "auth0_auth_secret": AUTH0_SECRET,
    }
    out += [
        _example(root, "both streams", base),
        _example(root, "none", {}, {"auth0_event_stream_enabled": False, "auth0_log_stream_enabled": False}),
    ]
    root = "idp/entra"
    out += [
        _example(
            root,
            "users and groups",
            {},
            expect=[
                r'azuread_app_role_assignment\.msgraph\["User\.Read\.All"\] will be created',
                r'azuread_app_role_assignment\.msgraph\["Group\.Read\.All"\] will be created',
                r"time_rotating\.client_secret will be created",
                r"rotation_days\s*=\s*90",
            ],
            refuse=[r'\["AuditLog\.Read\.All"\]'],
        ),
        _example(
            root,
            "with the audit log, rotated monthly",
            {},
            {"audit_log_enabled": True, "client_secret_rotation_days": 30},
            expect=[r'azuread_app_role_assignment\.msgraph\["AuditLog\.Read\.All"\] will be created', r"rotation_days\s*=\s*30"],
        ),
    ]
    return out


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------


def tool_dir() -> Path:
    env = os.environ.get("TF_OFFLINE_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "tools" / "terraform-offline"


# Roots that need a provider the shared tool does not serve (azuread:
# tests/schemas/README.md). Every other root plans with the tool's own
# schemas only, as a user's (and an outside) check of it does: an example
# that pulls in azuread must fail here too.
EXTRA_SCHEMA_ROOTS = ("idp/entra",)


def tool_env(root: str | None = None) -> dict:
    """The tool's environment for `root`: the repository's extra schemas
    only for EXTRA_SCHEMA_ROOTS, each set with its own cache, so a root
    planned without them cannot find azuread in a mirror built with them."""
    env = dict(os.environ)
    home = Path(env.get("TF_OFFLINE_HOME") or REPO_ROOT / ".tools" / "terraform-offline")
    extra = TF_ROOT / "tests" / "schemas"
    others = [p for p in env.get("TF_OFFLINE_EXTRA_SCHEMAS", "").split(os.pathsep) if p and Path(p) != extra]
    if root in EXTRA_SCHEMA_ROOTS and extra.is_dir():
        others.insert(0, str(extra))
        home = home.with_name(home.name + "-extra-schemas")
    env["TF_OFFLINE_EXTRA_SCHEMAS"] = os.pathsep.join(others)
    env["TF_OFFLINE_HOME"] = str(home)
    return env


def tool_available() -> tuple[bool, str]:
    """(usable, why not)."""
    check = tool_dir() / "check"
    if not check.is_file():
        return False, f"terraform-offline not found at {tool_dir()} (set TF_OFFLINE_DIR)"
    terraform = os.environ.get("TF_OFFLINE_TERRAFORM") or shutil.which("terraform")
    if not terraform:
        return False, "terraform is not on PATH"
    return True, ""


def setup() -> tuple[bool, str]:
    """Prepares the tool's cache once, before combinations run in parallel."""
    out = ""
    for root in (None, *EXTRA_SCHEMA_ROOTS):
        proc = subprocess.run(
            [sys.executable, str(tool_dir() / "setup"), "--if-needed"],
            env=tool_env(root),
            capture_output=True,
            text=True,
        )
        out += proc.stdout + proc.stderr
        if proc.returncode != 0:
            return False, out
    return True, out


def _var_args(variables: dict, artifact: Path) -> list[str]:
    args = []
    for key, value in variables.items():
        if value == ZIP:
            value = str(artifact)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        args += ["-var", f"{key}={value}"]
    return args


@dataclasses.dataclass
class Result:
    combo: Combination
    ok: bool
    seconds: float
    problems: list
    output: str


def run_one(combo: Combination, tree: Path, artifact: Path) -> Result:
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tf-matrix-root-") as generated:
        directory = tree / combo.root
        if combo.generated:
            directory = Path(generated)
            (directory / "main.tf").write_text(combo.generated.replace("{modules}", str((tree / "modules").resolve())), encoding="utf-8")
        cmd = [sys.executable, str(tool_dir() / "check"), "-v", str(directory)]
        cmd += _var_args(combo.variables, artifact)
        proc = subprocess.run(cmd, env=tool_env(combo.root), capture_output=True, text=True, cwd=str(tree))
    output = proc.stdout + proc.stderr
    problems = []
    if proc.returncode != 0:
        problems.append(f"check exited {proc.returncode}")
    else:
        for rx in combo.expect:
            if not re.search(rx, output):
                problems.append(f"the plan does not show /{rx}/")
        for rx in combo.refuse:
            if re.search(rx, output):
                problems.append(f"the plan shows /{rx}/")
    return Result(combo, not problems, time.monotonic() - start, problems, output)


def run(combos: list[Combination], tree: Path = TF_ROOT, jobs: int = 2, on_result=None) -> list[Result]:
    """Plans every combination against the terraform/ folder `tree`."""
    with tempfile.TemporaryDirectory(prefix="tf-matrix-") as tmp:
        artifact = Path(tmp) / "artifact.zip"
        with zipfile.ZipFile(artifact, "w") as z:
            z.writestr("bootstrap", "")
        results = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [pool.submit(run_one, c, tree, artifact) for c in combos]
            for future in futures:
                result = future.result()
                results.append(result)
                if on_result:
                    on_result(result)
        return results


def _failure_excerpt(output: str) -> str:
    """Terraform's errors, without the whole verbose plan."""
    lines = output.splitlines()
    keep = [i for i, line in enumerate(lines) if re.search(r"Error:|FAILED|Warning:|^\[\d/3\]", line)]
    if not keep:
        return "\n".join(lines[-40:])
    first = max(0, keep[0] - 2)
    return "\n".join(lines[first : first + 60])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=TF_ROOT, help="the terraform/ folder to check")
    parser.add_argument("--jobs", type=int, default=2, help="combinations planned at once (default 2)")
    parser.add_argument("--only", default="", help="only combinations whose label contains this")
    parser.add_argument("--list", action="store_true", help="list the combinations and exit")
    args = parser.parse_args(argv)

    combos = [c for c in matrix() if args.only in c.label]
    if args.list:
        for c in combos:
            print(c.label)
        print(f"{len({c.root for c in combos})} roots, {len(combos)} combinations")
        return 0
    ok, why = tool_available()
    if not ok:
        print(f"plan matrix: {why}", file=sys.stderr)
        return 2
    start = time.monotonic()
    ok, out = setup()
    if not ok:
        print(f"plan matrix: terraform-offline setup failed:\n{out}", file=sys.stderr)
        return 2

    def report(r: Result):
        mark = "ok  " if r.ok else "FAIL"
        print(f"  {mark} {r.seconds:5.1f}s  {r.combo.label}", flush=True)
        if not r.ok:
            for p in r.problems:
                print(f"         {p}")
            print("         " + _failure_excerpt(r.output).replace("\n", "\n         "))

    print(f"plan matrix: {len(combos)} combinations, {args.jobs} at a time ({tool_dir()})", flush=True)
    results = run(combos, args.tree, args.jobs, report)
    failed = [r for r in results if not r.ok]
    roots = len({c.root for c in combos})
    took = time.monotonic() - start
    if failed:
        print(f"plan matrix: {len(failed)} of {len(combos)} combinations FAILED ({roots} roots, {took:.0f}s)")
        return 1
    print(f"plan matrix: {roots} roots, {len(combos)} combinations, all planned from an empty state ({took:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
