"""Static checks of the Terraform under terraform/ (no terraform binary, no cloud).

Run: pytest -q terraform/tests   (needs python-hcl2 and pytest; see requirements.txt)

What is checked, and why each check can fail (the self-tests at the end feed
the helpers inline HCL that must be caught):
- every .tf file parses;
- (a) each cloud module sets every environment variable its entry binary
  requires (terraform/modules/<cloud>/required-env.json, generated from the
  crate's REQUIRED_ENV), at least one of each required-one-of group, and
  (AWS) the secret holds the required keys;
- (b) every IAM permission / role binding targets a resource the module
  itself declares;
- (c) the Okta event hook subscribes to the generated okta-event-types.json,
  never a typed list, and that file equals the relay's KINDS table;
- (d) secret-named variables and secret-bearing outputs are sensitive;
- (e) the examples pass every required module input, no unknown input, use
  only outputs the modules have, and pin providers compatibly with them;
- modules configure no provider (the root does) and every directory pins
  Terraform >= 1.6 and each provider it uses;
- (f) alarms, log-based metrics and KQL alerts read metrics, dimensions and
  log-line fields the relay writes (terraform/relay-metrics.json, generated
  from crates/relay-server/src/metrics.rs), and cover failures, Duo 429s and
  dead letters.

A cloud module whose directory does not exist yet is skipped, not passed.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import hcl2
import pytest

# checkov depends on bc-python-hcl2, which installs the same `hcl2` package
# (an old fork whose output wraps every attribute in a list). Installed in
# one venv, the two overwrite each other's files. Say so instead of failing
# every test with a confusing message.
if isinstance(hcl2.loads('a = "b"\n').get("a"), list):
    raise ImportError(
        "the `hcl2` module here is bc-python-hcl2 (checkov's fork), not python-hcl2 >= 7: "
        "install checkov and python-hcl2 in separate venvs (terraform/tests/requirements.txt)"
    )

TF_ROOT = Path(__file__).resolve().parents[1]
REPO_ROOT = TF_ROOT.parent
CLOUDS = ("aws", "azure", "gcp")
EXAMPLES = ("okta-aws", "auth0-azure", "okta-gcp", "entra-azure", "entra-aws", "entra-gcp")
# The Entra ID examples: a clientState generated in the root, no IdP module.
ENTRA_EXAMPLES = ("entra-azure", "entra-aws", "entra-gcp")
IDP_DIR = TF_ROOT / "idp"
OKTA_EVENT_TYPES_JSON = IDP_DIR / "okta-event-types.json"
OKTA_RS = REPO_ROOT / "crates" / "relay-core" / "src" / "okta.rs"

# Keys python-hcl2 adds that are not part of the configuration.
_META_KEYS = {"__is_block__", "__comments__", "__inline_comments__", "__start_line__", "__end_line__"}

# Resource types of the providers this project uses (a reference is
# TYPE.NAME, TYPE always containing an underscore: var.x, local.x, each.key,
# path.module are never matched).
_REF_RE = re.compile(
    r"(?<![\w.\-])(data\.)?((?:aws|azurerm|azuread|azapi|google|google-beta|random|okta|auth0|archive|null|time|local|tls)_[a-z0-9_]+)\.([A-Za-z_][A-Za-z0-9_\-]*)"
)
_LOCAL_RE = re.compile(r"(?<![\w.])local\.([A-Za-z_][A-Za-z0-9_\-]*)")
_VAR_RE = re.compile(r"(?<![\w.])var\.([A-Za-z_][A-Za-z0-9_\-]*)")
# A map key inside an expression string: `KEY = value` or `"KEY" = value`
# (not `==`, not `=>`).
_KEY_RE = re.compile(r"""(?:^|[{,\s(])"?([A-Za-z_][A-Za-z0-9_]*)"?\s*=(?![=>])""")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A for-expression whose keys are the items of a local:
# `for env in local.secrets_set : env => …`.
_FOR_ITEMS_AS_KEYS_RE = re.compile(r"for\s+(?:[A-Za-z_]\w*\s*,\s*)?([A-Za-z_]\w*)\s+in\s+local\.([A-Za-z_][\w\-]*)\s*:\s*\1\s*=>")

# Names that carry a secret value: contain one of these words...
_SECRET_WORD_RE = re.compile(r"secret|skey|token|password|connection_string|access_key")
# ...unless they end in a suffix that names metadata about a secret, not the
# secret itself (existing_secret_arn, secret_ttl_seconds, hook_secret_version,
# client_secret_end_date).
_NOT_A_SECRET_SUFFIX_RE = re.compile(
    r"_(arn|arns|id|ids|name|names|ttl|seconds|days|date|version|versions|header|enabled|uri|url|path|count|rotation)$"
)

# AWS actions that have no resource-level permissions: "*" is the only
# Resource they accept (Service Authorization Reference).
AWS_WILDCARD_ONLY_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "cloudwatch:PutMetricData",
}
# AWS-managed policies a module may attach (documented in the relay-aws README).
AWS_ALLOWED_MANAGED_POLICIES = {"AWSLambdaBasicExecutionRole"}
# GCP roles that exist only at project level (no resource to grant them on).
GCP_PROJECT_ONLY_ROLES = {
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/cloudtrace.agent",
}

# Arguments of a module block that are not input variables.
_MODULE_META_ARGS = {"source", "version", "providers", "depends_on", "count", "for_each"}


# --------------------------------------------------------------------------
# Parsing helpers
# --------------------------------------------------------------------------


def _unquote(s: str) -> str:
    """python-hcl2 >= 7 keeps the quotes of string literals ('"abc"');
    older versions drop them. Either way, return the text inside."""
    if len(s) >= 2 and s[0] == '"' and s[-1] == '"':
        return s[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return s


def _norm(value):
    if isinstance(value, dict):
        return {_unquote(k): _norm(v) for k, v in value.items() if k not in _META_KEYS}
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, str):
        return _unquote(value)
    return value


def parse_text(text: str) -> dict:
    return _norm(hcl2.loads(text))


@functools.lru_cache(maxsize=None)
def parse_file(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return _norm(hcl2.load(f))


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _text(value) -> str:
    """Any parsed value as one searchable string."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


class Module:
    """The merged top-level blocks of one directory's .tf files."""

    def __init__(self, directory: Path, parsed: list[dict] | None = None):
        self.dir = directory
        if parsed is None:
            parsed = [parse_file(p) for p in sorted(directory.glob("*.tf"))]
        self.resources: dict[tuple[str, str], dict] = {}
        self.data: dict[tuple[str, str], dict] = {}
        self.variables: dict[str, dict] = {}
        self.outputs: dict[str, dict] = {}
        self.modules: dict[str, dict] = {}
        self.locals: dict = {}
        self.providers: list[str] = []
        self.terraform: list[dict] = []
        for doc in parsed:
            for block in _as_list(doc.get("resource")):
                for rtype, named in block.items():
                    for name, body in named.items():
                        self.resources[(rtype, name)] = body
            for block in _as_list(doc.get("data")):
                for dtype, named in block.items():
                    for name, body in named.items():
                        self.data[(dtype, name)] = body
            for attr, target in (("variable", self.variables), ("output", self.outputs), ("module", self.modules)):
                for block in _as_list(doc.get(attr)):
                    target.update(block)
            for block in _as_list(doc.get("locals")):
                self.locals.update(block)
            for block in _as_list(doc.get("provider")):
                self.providers.extend(block.keys())
            self.terraform.extend(_as_list(doc.get("terraform")))

    @classmethod
    def from_text(cls, text: str, directory: Path = Path(".")) -> "Module":
        return cls(directory, [parse_text(text)])

    def of_type(self, pattern: str) -> list[tuple[str, str, dict]]:
        rx = re.compile(pattern)
        return [(t, n, b) for (t, n), b in self.resources.items() if rx.fullmatch(t)]

    def expand(self, value, declassify: bool = False, _seen: frozenset = frozenset()) -> str:
        """The value's text followed by the text of every local it uses,
        recursively: enough to see what an expression finally refers to.
        declassify: leave out locals wrapped in nonsensitive(…) (for the
        sensitivity check: Terraform drops their sensitivity)."""
        text = _text(value)
        parts = [text]
        for name in _LOCAL_RE.findall(text):
            if name in self.locals and name not in _seen:
                if declassify and "nonsensitive(" in _text(self.locals[name]):
                    continue
                parts.append(self.expand(self.locals[name], declassify, _seen | {name}))
        return "\n".join(parts)

    def declared_refs(self, text: str) -> tuple[set[str], set[str]]:
        """(managed resources of this module referenced in text,
        references to resources this module does not declare)."""
        ours, foreign = set(), set()
        for data, rtype, name in _REF_RE.findall(text):
            key = f"{data}{rtype}.{name}"
            declared = (rtype, name) in (self.data if data else self.resources)
            if not declared:
                foreign.add(key)
            elif not data:
                ours.add(key)
        return ours, foreign

    def sensitive_variables(self) -> set[str]:
        return {n for n, b in self.variables.items() if b.get("sensitive") is True}


def tf_dirs() -> list[Path]:
    return sorted({p.parent for p in TF_ROOT.rglob("*.tf") if ".terraform" not in p.parts})


def all_tf_files() -> list[Path]:
    return sorted(p for p in TF_ROOT.rglob("*.tf") if ".terraform" not in p.parts)


def cloud_module(cloud: str) -> Module:
    directory = TF_ROOT / "modules" / cloud
    if not directory.is_dir():
        pytest.skip(f"terraform/modules/{cloud} does not exist yet")
    return Module(directory)


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


# --------------------------------------------------------------------------
# Environment variables a module sets
# --------------------------------------------------------------------------

# Compute resources whose environment the relay runs with.
_COMPUTE_TYPES = r"aws_lambda_function|azurerm_(linux_|windows_)?function_app(_flex_consumption)?|google_cloud_run_v2_service|google_cloud_run_service"


def _walk(value):
    """Every (key, value) pair of nested dicts/lists."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, v
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def keys_of(module: Module, value, identifiers_too: bool = False, _seen: frozenset = frozenset()) -> set[str]:
    """Map keys a value can produce: a literal map's keys; for an
    expression string, the KEY = … pairs written in it and, recursively, the
    keys of the locals it uses (merge(local.a, {B = …}), conditionals,
    for-expressions). identifiers_too: plain identifier strings in lists
    count as well (for_each = ["A", "B"] with name = each.value)."""
    keys: set[str] = set()
    if isinstance(value, dict):
        keys.update(value.keys())
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str) and identifiers_too and _ENV_NAME_RE.match(item):
                keys.add(item)
            else:
                keys |= keys_of(module, item, identifiers_too, _seen)
    elif isinstance(value, str):
        keys.update(_KEY_RE.findall(value))
        if identifiers_too:
            keys.update(re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"', value))
        # {for env in local.set : env => …}: the keys are the set's items.
        items_of = {local for _, local in _FOR_ITEMS_AS_KEYS_RE.findall(value)}
        for name in _LOCAL_RE.findall(value):
            if name in module.locals and name not in _seen:
                keys |= keys_of(module, module.locals[name], identifiers_too or name in items_of, _seen | {name})
    return keys


def env_keys(module: Module) -> set[str]:
    """Every environment variable / app setting name the module's compute
    resources set: Lambda environment.variables, Function App app_settings,
    Cloud Run env blocks (plain and dynamic)."""
    keys: set[str] = set()
    for _, _, body in module.of_type(_COMPUTE_TYPES):
        for key, value in _walk(body):
            if key in ("variables", "app_settings"):
                keys |= keys_of(module, value)
            elif key == "env":
                for block in _as_list(value):
                    if isinstance(block, dict) and isinstance(block.get("name"), str):
                        name = block["name"]
                        if _ENV_NAME_RE.match(name):
                            keys.add(name)
            elif key == "dynamic":
                for dyn in _as_list(value):
                    if isinstance(dyn, dict) and isinstance(dyn.get("env"), dict):
                        keys |= keys_of(module, dyn["env"].get("for_each"), identifiers_too=True)
    return keys


def _load_json(path: Path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _one_of_groups(data) -> list[list[str]]:
    """required-one-of-env.json: one list of names, or a list of such lists."""
    assert isinstance(data, list) and data, "expected a non-empty JSON list"
    if all(isinstance(x, str) for x in data):
        return [data]
    assert all(isinstance(g, list) and g and all(isinstance(x, str) for x in g) for g in data), (
        "expected a list of names or a list of lists of names"
    )
    return data


# --------------------------------------------------------------------------
# IAM: what each permission targets
# --------------------------------------------------------------------------


def _dynamic_candidates(module: Module, for_each) -> list[str]:
    """The items a dynamic block iterates over, as expressions:
    `cond ? [X] : []` → [X]; `local.l` → its items."""
    text = _text(for_each)
    items = []
    # List literals, not index accesses (x[0]); an item may hold an index.
    for inner in re.findall(r"(?<![\w\])])\[((?:[^\[\]]|\[[^\[\]]*\])*)\]", text):
        items += [i.strip() for i in inner.split(",") if i.strip()]
    if not items:
        items = [text]
    return [i if i.startswith("${") or i.startswith('"') else "${" + i + "}" for i in items]


def _aws_entry_ok(module: Module, entry: str) -> bool:
    """A Resource entry is fine when it refers to a resource this module
    declares (directly or through locals), or is exactly one input variable
    (an ARN the user hands in, e.g. a customer-managed KMS key)."""
    ours, foreign = module.declared_refs(module.expand(entry))
    if foreign:
        return False
    if ours:
        return True
    return re.fullmatch(r"\$\{var\.[A-Za-z_][A-Za-z0-9_]*\}", entry.strip()) is not None


def aws_iam_problems(module: Module) -> list[str]:
    problems = []
    statements: list[tuple[str, dict, str | None]] = []  # (where, statement, dynamic for_each)
    for (dtype, dname), body in module.data.items():
        if dtype != "aws_iam_policy_document":
            continue
        for st in _as_list(body.get("statement")):
            statements.append((f"data.{dtype}.{dname}", st, None))
        for dyn in _as_list(body.get("dynamic")):
            if isinstance(dyn, dict) and "statement" in dyn:
                for st in _as_list(dyn["statement"].get("content")):
                    statements.append((f"data.{dtype}.{dname} (dynamic)", st, dyn["statement"].get("for_each")))
    for where, st, for_each in statements:
        if st.get("principals") or st.get("not_principals"):
            continue  # a trust or resource policy, not the role's permissions
        if st.get("not_resources") or st.get("not_actions"):
            problems.append(f"{where}: not_resources/not_actions grant everything else")
            continue
        actions = {a for a in _as_list(st.get("actions")) if isinstance(a, str)}
        resources = _as_list(st.get("resources"))
        if not resources:
            problems.append(f"{where}: a statement without resources")
        for entry in resources:
            entry = _text(entry)
            if entry == "*":
                if not actions or not actions <= AWS_WILDCARD_ONLY_ACTIONS:
                    problems.append(f"{where}: Resource \"*\" for {sorted(actions)}")
                continue
            if for_each is not None and re.search(r"\b\w+\.value\b", entry):
                bad = [c for c in _dynamic_candidates(module, for_each) if not _aws_entry_ok(module, c)]
                if bad:
                    problems.append(f"{where}: dynamic resources {bad} are not this module's resources")
                continue
            if not _aws_entry_ok(module, entry):
                problems.append(f"{where}: Resource {entry!r} is not a resource this module declares")
    # Inline JSON policies (jsonencode) instead of policy documents.
    for rtype, name, body in module.of_type(r"aws_iam_(role_)?policy"):
        policy = _text(body.get("policy", ""))
        if "aws_iam_policy_document" in policy:
            continue
        if re.search(r"NotResource|NotAction", policy):
            problems.append(f"{rtype}.{name}: NotResource/NotAction")
        for entry in re.findall(r"Resource\"?\s*[=:]\s*(\[[^\]]*\]|\"[^\"]*\"|[^\s,}]+)", policy):
            if "*" == entry.strip('"[] '):
                problems.append(f"{rtype}.{name}: Resource \"*\" in an inline policy")
            elif not module.declared_refs(module.expand(entry))[0]:
                problems.append(f"{rtype}.{name}: Resource {entry!r} is not a resource this module declares")
    for rtype, name, body in module.of_type(r"aws_iam_(role_policy_attachment|policy_attachment)"):
        arn = _text(body.get("policy_arn", ""))
        if module.declared_refs(module.expand(arn))[0]:
            continue
        if arn.rsplit("/", 1)[-1] not in AWS_ALLOWED_MANAGED_POLICIES:
            problems.append(f"{rtype}.{name}: attaches {arn}")
    for rtype, name, body in module.of_type(r"aws_iam_role"):
        for arn in _as_list(body.get("managed_policy_arns")):
            if _text(arn).rsplit("/", 1)[-1] not in AWS_ALLOWED_MANAGED_POLICIES and not module.declared_refs(module.expand(arn))[0]:
                problems.append(f"aws_iam_role.{name}: managed policy {arn}")
    return problems


def _attr(module: Module, body: dict, attr: str) -> str:
    """An attribute's expanded text; each.key/each.value stand for the
    resource's for_each (for_each = azurerm_storage_queue.relay → each.value.id
    refers to those queues)."""
    text = module.expand(body.get(attr, ""))
    if re.search(r"(?<![\w.])each\.(value|key)", text) and "for_each" in body:
        text += "\n" + module.expand(body["for_each"])
    return text


def azure_iam_problems(module: Module) -> list[str]:
    problems = []
    for rtype, name, body in module.of_type(r"azurerm_role_assignment"):
        scope = _attr(module, body, "scope")
        ours, foreign = module.declared_refs(scope)
        if not ours or foreign:
            problems.append(f"{rtype}.{name}: scope {body.get('scope')!r} is not a resource this module declares")
        principal = _attr(module, body, "principal_id")
        ours, foreign = module.declared_refs(principal)
        if not (ours or "data.azurerm_client_config" in principal) or foreign:
            problems.append(
                f"{rtype}.{name}: principal {body.get('principal_id')!r} is neither this module's identity nor the deploying identity"
            )
    for rtype, name, body in module.of_type(r"azurerm_key_vault_access_policy"):
        ours, foreign = module.declared_refs(_attr(module, body, "key_vault_id"))
        if not ours or foreign:
            problems.append(f"{rtype}.{name}: key_vault_id is not this module's vault")
    return problems


# The attribute of each resource-level GCP IAM resource that names its target.
_GCP_TARGET_ATTRS = (
    "secret_id", "name", "service", "topic", "subscription", "bucket", "dataset_id",
    "crypto_key_id", "key_ring_id", "repository", "instance_name", "database",
    "service_account_id",
)


def gcp_iam_problems(module: Module) -> list[str]:
    problems = []
    for rtype, name, body in module.of_type(r"google_[a-z0-9_]+_iam_(member|binding|policy)"):
        where = f"{rtype}.{name}"
        if rtype.endswith("_iam_policy"):
            problems.append(f"{where}: an authoritative IAM policy replaces every other grant")
            continue
        role = _text(body.get("role", ""))
        members = [_text(m) for m in _as_list(body.get("member")) + _as_list(body.get("members"))]
        if rtype.startswith(("google_project_iam", "google_folder_iam", "google_organization_iam")):
            if rtype.startswith(("google_folder_iam", "google_organization_iam")):
                problems.append(f"{where}: a grant above the project")
            elif role not in GCP_PROJECT_ONLY_ROLES and not body.get("condition"):
                problems.append(f"{where}: project-wide {role} without a condition narrowing it to this module's resource")
        else:
            targets = [a for a in _GCP_TARGET_ATTRS if a in body]
            if not targets:
                problems.append(f"{where}: no target attribute found")
            for attr in targets:
                ours, foreign = module.declared_refs(_attr(module, body, attr))
                if not ours or foreign:
                    problems.append(f"{where}: target {body[attr]!r} is not a resource this module declares")
        for member in members:
            expanded = module.expand(member)
            if re.search(r"(?<![\w.])each\.(value|key)", expanded) and "for_each" in body:
                expanded += "\n" + module.expand(body["for_each"])
            ours, foreign = module.declared_refs(expanded)
            if foreign:
                problems.append(f"{where}: member {member!r} refers to {sorted(foreign)}")
            elif any(r.startswith("google_service_account.") for r in ours):
                continue
            elif member == "allUsers":
                if not (role == "roles/run.invoker" and rtype.startswith("google_cloud_run")):
                    problems.append(f"{where}: allUsers on {rtype} {role}")
            elif "gcp-sa-" in expanded:
                continue  # a Google-managed service agent (e.g. Pub/Sub dead-lettering)
            else:
                problems.append(f"{where}: member {member!r} is not this module's service account")
    return problems


IAM_CHECKS = {"aws": aws_iam_problems, "azure": azure_iam_problems, "gcp": gcp_iam_problems}


# --------------------------------------------------------------------------
# Sensitivity
# --------------------------------------------------------------------------


def names_a_secret(name: str) -> bool:
    return bool(_SECRET_WORD_RE.search(name)) and not _NOT_A_SECRET_SUFFIX_RE.search(name)


def sensitivity_problems(module: Module) -> list[str]:
    problems = []
    sensitive_vars = module.sensitive_variables()
    for name, body in module.variables.items():
        if names_a_secret(name) and body.get("sensitive") is not True:
            problems.append(f"variable {name}: holds a secret but is not sensitive = true")
    for name, body in module.outputs.items():
        if body.get("sensitive") is True:
            continue
        value = body.get("value", "")
        raw = _text(value)
        if "nonsensitive(" in raw:
            continue
        expanded = module.expand(value, declassify=True)
        why = []
        if names_a_secret(name):
            why.append("its name")
        why += [f"var.{v}" for v in _VAR_RE.findall(expanded) if v in sensitive_vars]
        if re.search(r"random_password\.[\w-]+(\[[^\]]*\])?\.(result|bcrypt_hash)", expanded):
            why.append("random_password")
        if re.search(r"\.(secret_string|secret_data|secret_binary)\b", expanded):
            why.append("a secret's value")
        for ref in re.findall(r"module\.[\w-]+(?:\[[^\]]*\])?\.([\w-]+)", expanded):
            if names_a_secret(ref):
                why.append(f"module output {ref}")
        if why:
            problems.append(f"output {name}: exposes {', '.join(sorted(set(why)))} but is not sensitive = true")
    return problems


# --------------------------------------------------------------------------
# Version constraints
# --------------------------------------------------------------------------


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def version_interval(constraint: str) -> tuple[tuple, tuple | None]:
    """A Terraform version constraint as [low, high) (high None = unbounded).
    Supports =, >=, >, <=, <, ~> joined by commas (what this repo uses)."""
    low: tuple = (0,)
    high: tuple | None = None

    def lower(v):
        nonlocal low
        low = max(low, v)

    def upper(v):
        nonlocal high
        high = v if high is None else min(high, v)

    for part in [p.strip() for p in constraint.split(",") if p.strip()]:
        m = re.fullmatch(r"(~>|>=|<=|!=|=|>|<)?\s*v?(\d+(?:\.\d+){0,2})", part)
        assert m, f"unsupported version constraint {part!r}"
        op, v = m.group(1) or "=", _version(m.group(2))
        if op == "~>":
            lower(v)
            bump = list(v[:-1]) if len(v) > 1 else [v[0]]
            bump[-1] += 1
            upper(tuple(bump))
        elif op == ">=":
            lower(v)
        elif op == ">":
            lower(v + (0,) * (3 - len(v)) + (1,))
        elif op == "<":
            upper(v)
        elif op == "<=":
            upper(v + (0,) * (3 - len(v)) + (1,))
        elif op == "=":
            lower(v)
            upper(v + (0,) * (3 - len(v)) + (1,))
    return low, high


def intervals_meet(a: str, b: str) -> bool:
    (alow, ahigh), (blow, bhigh) = version_interval(a), version_interval(b)
    low = max(alow, blow)
    highs = [h for h in (ahigh, bhigh) if h is not None]
    return not highs or low < min(highs)


def required_providers(module: Module) -> dict[str, dict]:
    out = {}
    for block in module.terraform:
        for rp in _as_list(block.get("required_providers")):
            for local_name, spec in rp.items():
                out[local_name] = spec if isinstance(spec, dict) else {"version": spec}
    return out


def required_version(module: Module) -> str | None:
    for block in module.terraform:
        if "required_version" in block:
            return _text(block["required_version"])
    return None


# ==========================================================================
# Tests
# ==========================================================================


@pytest.mark.parametrize("path", all_tf_files(), ids=lambda p: _rel(p))
def test_every_tf_file_parses(path):
    parsed = parse_file(path)
    assert isinstance(parsed, dict)


def test_there_is_terraform_to_check():
    files = all_tf_files()
    assert any(p.is_relative_to(IDP_DIR) for p in files), "terraform/idp has no .tf file"
    for example in EXAMPLES:
        assert (TF_ROOT / "examples" / example / "main.tf").is_file(), f"examples/{example}/main.tf is missing"


def test_every_example_root_is_checked():
    # The per-example tests (required inputs, outputs, provider pins, the
    # .gitignore of secret-bearing files) run over EXAMPLES: a new root
    # missing from it would be checked by none of them.
    roots = sorted(p.parent.name for p in (TF_ROOT / "examples").glob("*/main.tf"))
    assert roots == sorted(EXAMPLES), f"terraform/examples has {roots}, EXAMPLES lists {sorted(EXAMPLES)}"


# --- (a) required environment ----------------------------------------------


@pytest.mark.parametrize("cloud", CLOUDS)
def test_module_sets_every_required_env_var(cloud):
    module = cloud_module(cloud)
    path = module.dir / "required-env.json"
    assert path.is_file(), f"{_rel(path)} is missing: it is generated by the {cloud} entry crate's required_env test"
    required = _load_json(path)
    assert isinstance(required, list) and required and all(isinstance(x, str) for x in required), (
        f"{_rel(path)} must be a non-empty JSON list of variable names"
    )
    assert module.of_type(_COMPUTE_TYPES), f"modules/{cloud} declares no function/service resource"
    missing = sorted(set(required) - env_keys(module))
    assert not missing, f"modules/{cloud} does not set {missing} (required by the entry binary, {_rel(path)})"


@pytest.mark.parametrize("cloud", CLOUDS)
def test_module_sets_one_of_each_required_group(cloud):
    module = cloud_module(cloud)
    path = module.dir / "required-one-of-env.json"
    if not path.is_file():
        pytest.skip(f"{_rel(path)} not generated for {cloud}")
    keys = env_keys(module)
    for group in _one_of_groups(_load_json(path)):
        assert keys & set(group), f"modules/{cloud} sets none of {group} ({_rel(path)})"


@pytest.mark.parametrize("cloud", CLOUDS)
def test_module_secret_holds_required_keys(cloud):
    module = cloud_module(cloud)
    path = module.dir / "required-secret-keys.json"
    if not path.is_file():
        pytest.skip(f"{_rel(path)} not generated for {cloud}")
    spec = _load_json(path)
    assert isinstance(spec, dict) and set(spec) <= {"all_of", "one_of"} and spec, f"{_rel(path)}: expected all_of/one_of"
    versions = module.of_type(r"aws_secretsmanager_secret_version|azurerm_key_vault_secret|google_secret_manager_secret")
    assert versions, f"modules/{cloud} writes no secret"
    keys: set[str] = set()
    for rtype, _, body in versions:
        if rtype == "aws_secretsmanager_secret_version":
            keys |= keys_of(module, body.get("secret_string"))
        elif rtype == "google_secret_manager_secret":
            keys |= keys_of(module, body.get("for_each"), identifiers_too=True)
        else:
            keys |= keys_of(module, body.get("for_each"), identifiers_too=True) | {_text(body.get("name", ""))}
    missing = sorted(set(spec.get("all_of", [])) - keys)
    assert not missing, f"modules/{cloud}: the secret never holds {missing} ({_rel(path)})"
    if spec.get("one_of"):
        assert keys & set(spec["one_of"]), f"modules/{cloud}: the secret holds none of {spec['one_of']}"


# --- (b) IAM on the module's own resources -----------------------------------


@pytest.mark.parametrize("cloud", CLOUDS)
def test_iam_grants_only_on_the_modules_own_resources(cloud):
    module = cloud_module(cloud)
    if not any(module.dir.glob("*.tf")):
        pytest.fail(f"modules/{cloud} exists but has no .tf file")
    problems = IAM_CHECKS[cloud](module)
    assert not problems, "\n".join(problems)


def test_aws_module_has_an_execution_policy():
    module = cloud_module("aws")
    docs = [k for k in module.data if k[0] == "aws_iam_policy_document"]
    inline = module.of_type(r"aws_iam_(role_)?policy")
    assert docs or inline, "modules/aws grants the function nothing: the IAM check would be vacuous"


DYNAMODB_CALL = re.compile(r"\.(get_item|put_item|update_item|delete_item|batch_get_item|batch_write_item|query|scan|transact_get_items|transact_write_items)\(\)\s*\n\s*\.table_name|\.(batch_get_item|batch_write_item)\(\)")


def dynamodb_actions_called(sources: list[str]) -> set[str]:
    """The DynamoDB API actions the relay's source calls (`.put_item()` →
    `dynamodb:PutItem`)."""
    names = set()
    for text in sources:
        for m in DYNAMODB_CALL.finditer(text):
            names.add(m.group(1) or m.group(2))
    return {"dynamodb:" + "".join(part.title() for part in n.split("_")) for n in names}


def test_aws_policy_grants_every_dynamodb_call_the_relay_makes():
    sources = [p.read_text(encoding="utf-8") for p in sorted((REPO_ROOT / "crates/relay-aws/src").rglob("*.rs"))]
    called = dynamodb_actions_called(sources)
    # The store's calls and the group index's batch reads and writes.
    assert {"dynamodb:PutItem", "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"} <= called, called
    policy = cloud_module("aws").data[("aws_iam_policy_document", "relay")]
    table = [st for st in _as_list(policy.get("statement")) if "aws_dynamodb_table" in _text(st.get("resources"))]
    granted = {a for st in table for a in _as_list(st.get("actions"))}
    assert called <= granted, f"the function calls {sorted(called - granted)} on its table without a grant"


# Where each module bounds the instances that apply events at once: each
# gets DUO_RATE_PER_MINUTE = the account's budget divided by them (README
# "One Duo pace").
DUO_PACE_BOUNDS = {
    "aws": ("duo_pacers", ("var.queue_max_concurrency", "var.reserved_concurrency", "var.reconcile_schedule")),
    "azure": ("duo_rate_per_instance", ("var.max_instances", "var.queue_enabled")),
    "gcp": ("duo_rate_per_instance", ("var.max_instances", "var.reconcile_schedule")),
}


@pytest.mark.parametrize("cloud", sorted(DUO_PACE_BOUNDS))
def test_each_instance_gets_its_share_of_the_duo_budget(cloud):
    module = cloud_module(cloud)
    assert "DUO_RATE_PER_MINUTE" in env_keys(module), f"modules/{cloud} leaves every instance the whole Duo budget"
    assert "duo_rate_per_minute" in module.variables
    share = _text(module.locals["duo_rate_per_instance"])
    assert "var.duo_rate_per_minute" in share and "max(6," in share.replace(" ", ""), share
    name, bounds = DUO_PACE_BOUNDS[cloud]
    bound = _text(module.locals[name])
    for variable in bounds:
        assert variable in bound, f"modules/{cloud}: the Duo budget is not divided by {variable}: {bound}"
    lib = (REPO_ROOT / "crates/relay-core/src/config.rs").read_text(encoding="utf-8")
    assert '"DUO_RATE_PER_MINUTE"' in lib, "the relay no longer reads DUO_RATE_PER_MINUTE"


def test_self_dynamodb_calls_are_found():
    src = "self.client\n    .batch_get_item()\n    .request_items(t, k)\nclient.update_item()\n  .table_name(&t)\nlet q = uri.query();"
    assert dynamodb_actions_called([src]) == {"dynamodb:BatchGetItem", "dynamodb:UpdateItem"}


def _queue_mode_value(expr) -> int:
    """The queue-mode branch of `var.queue_enabled ? A : B` (or a literal)."""
    text = _text(expr)
    m = re.fullmatch(r"\$\{var\.queue_enabled \? (\d+) : \d+\}", text)
    return int(m.group(1)) if m else int(text)


def test_aws_queue_mode_matches_the_worker():
    """crates/relay-aws worker.rs / sqs.rs: FIFO queues, the event source
    mapping with partial batch failures, a visibility timeout of 6 × the
    function timeout (and past the 120 s claim), the worker's env vars, and
    what the role may do with each queue."""
    module = cloud_module("aws")
    events = module.resources[("aws_sqs_queue", "events")]
    dead = module.resources[("aws_sqs_queue", "dead_letters")]
    assert events.get("fifo_queue") is True and dead.get("fifo_queue") is True
    assert "aws_sqs_queue.dead_letters" in _text(events["redrive_policy"])

    timeout = _queue_mode_value(module.expand(module.resources[("aws_lambda_function", "relay")]["timeout"]).split("\n")[-1])
    visibility = _text(events["visibility_timeout_seconds"])
    m = re.fullmatch(r"\$\{(\d+) \* local\.function_timeout\}", visibility)
    visibility_secs = int(m.group(1)) * timeout if m else int(visibility)
    assert visibility_secs >= 6 * timeout, f"visibility {visibility_secs} s < 6 × the function timeout {timeout} s"
    assert visibility_secs > 120, "a crashed invocation's message must come back after its 120 s claim expired"
    assert timeout >= 15 + 3 + 10, "the worker needs its 15 s reserve, 3 s margin and some work per batch"

    max_receive = module.variables["queue_max_receive_count"]["default"]
    attempts = module.variables["queue_max_attempts"]["default"]
    batch = module.variables["queue_batch_size"]["default"]
    assert "var.queue_max_receive_count" in _text(events["redrive_policy"])
    assert max_receive > attempts * batch, "the redrive backstop must not fire before the worker's own attempts"
    assert 1 <= batch <= 10

    mappings = [b for _, _, b in module.of_type("aws_lambda_event_source_mapping")]
    assert len(mappings) == 1, "one SQS event source mapping in queue mode"
    mapping = mappings[0]
    assert "var.queue_enabled" in _text(mapping.get("count"))
    assert "aws_sqs_queue.events" in _text(mapping["event_source_arn"])
    assert "aws_lambda_function.relay" in _text(mapping["function_name"])
    assert "ReportBatchItemFailures" in _as_list(mapping.get("function_response_types"))
    assert _as_list(mapping.get("scaling_config")) and "maximum_concurrency" in _as_list(mapping["scaling_config"])[0]

    env = module.expand(module.locals["environment_queue"])
    for name, queue in (("RELAY_QUEUE_URL", "events"), ("RELAY_DLQ_URL", "dead_letters")):
        assert re.search(rf"{name} = one\(aws_sqs_queue\.{queue}\[\*\]\.url\)", env), f"{name} must be the {queue} queue's URL"
    assert 'RELAY_MODE = "queue"' in env
    assert {"RELAY_MODE", "RELAY_QUEUE_URL", "RELAY_DLQ_URL"} <= env_keys(module)
    lib = _cargo_sources("relay-aws")
    for name in ("RELAY_QUEUE_URL", "RELAY_DLQ_URL", "RELAY_MODE"):
        assert f'"{name}"' in lib, f"bootstrap no longer reads {name}"

    policy = module.data[("aws_iam_policy_document", "relay")]
    grants: dict[str, set[str]] = {}
    for dyn in _as_list(policy.get("dynamic")):
        for st in _as_list(dyn["statement"].get("content")):
            for target in ("events", "dead_letters"):
                if f"aws_sqs_queue.{target}[0].arn" in _text(dyn["statement"].get("for_each")):
                    grants.setdefault(target, set()).update(_as_list(st.get("actions")))
    assert {"sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"} <= grants.get("events", set())
    assert "sqs:SendMessage" in grants.get("dead_letters", set()), "the worker writes dead letters"
    table = [st for st in _as_list(policy.get("statement")) if "aws_dynamodb_table" in _text(st.get("resources"))]
    assert table and "dynamodb:UpdateItem" in _as_list(table[0].get("actions")), "watermarks and attempt counters use UpdateItem"

    age = module.resources[("aws_cloudwatch_metric_alarm", "queue_age")]
    assert "var.queue_enabled" in _text(age.get("count"))
    assert age["namespace"] == "AWS/SQS" and age["metric_name"] == "ApproximateAgeOfOldestMessage"
    assert "aws_sqs_queue.events" in _text(age["dimensions"]), "the backlog alarm watches the event queue, not the DLQ"


# --- (c) Okta event types ------------------------------------------------------


def _okta_hooks() -> list[tuple[Module, str, dict]]:
    hooks = []
    for directory in sorted({p.parent for p in IDP_DIR.rglob("*.tf")}):
        module = Module(directory)
        hooks += [(module, n, b) for _, n, b in module.of_type("okta_event_hook")]
    return hooks


def okta_events_problems(module: Module, body: dict) -> list[str]:
    events = body.get("events")
    if isinstance(events, list):
        return [f"events is a typed list ({len(events)} items): use the generated {OKTA_EVENT_TYPES_JSON.name}"]
    expanded = module.expand(events)
    problems = []
    m = re.search(r'jsondecode\(\s*file\(\s*\\?"\$\{path\.module\}/([^"\\]+)\\?"\s*\)\s*\)', expanded)
    if not m:
        problems.append(f"events {events!r} is not jsondecode(file(\"${{path.module}}/…\"))")
    elif (module.dir / m.group(1)).resolve() != OKTA_EVENT_TYPES_JSON.resolve():
        problems.append(f"events reads {m.group(1)}, not {_rel(OKTA_EVENT_TYPES_JSON)}")
    return problems


def test_okta_event_hook_subscribes_to_the_generated_list():
    hooks = _okta_hooks()
    assert hooks, "no okta_event_hook under terraform/idp"
    for module, name, body in hooks:
        problems = okta_events_problems(module, body)
        assert not problems, f"{_rel(module.dir)} okta_event_hook.{name}: " + "; ".join(problems)
        assert (body.get("auth") or {}).get("value") not in (None, ""), f"okta_event_hook.{name} sends no secret"


def test_okta_event_types_json_is_a_list_of_event_types():
    types = _load_json(OKTA_EVENT_TYPES_JSON)
    assert isinstance(types, list) and types, "okta-event-types.json must be a non-empty list"
    assert all(isinstance(t, str) and re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", t) for t in types), types
    assert len(set(types)) == len(types), "duplicate event types"


def rust_okta_kinds(source: str) -> list[str]:
    m = re.search(r"const KINDS\s*:[^=]*=\s*&\[(.*?)\n\];", source, re.S)
    assert m, "const KINDS not found in okta.rs"
    return re.findall(r'\(\s*"([^"]+)"\s*,', m.group(1))


def test_okta_event_types_json_equals_the_relays_kinds():
    if not OKTA_RS.is_file():
        pytest.skip("crates/relay-core/src/okta.rs not found")
    kinds = rust_okta_kinds(OKTA_RS.read_text(encoding="utf-8"))
    assert kinds, "KINDS is empty"
    assert _load_json(OKTA_EVENT_TYPES_JSON) == kinds, (
        "okta-event-types.json differs from relay_core::okta KINDS: "
        "UPDATE_OKTA_EVENT_TYPES=1 cargo test -p relay-core --test okta_event_types"
    )


# --- (d) sensitive values ---------------------------------------------------------


@pytest.mark.parametrize("directory", tf_dirs(), ids=lambda p: _rel(p))
def test_secrets_are_sensitive(directory):
    problems = sensitivity_problems(Module(directory))
    assert not problems, "\n".join(problems)


# --- (e) examples ----------------------------------------------------------------------


def _module_calls(example: str) -> list[tuple[str, dict, Path]]:
    ex = Module(TF_ROOT / "examples" / example)
    calls = []
    for name, body in ex.modules.items():
        source = _text(body.get("source", ""))
        assert source.startswith("../"), f"examples/{example} module {name}: source {source!r} is not a local path"
        calls.append((name, body, (ex.dir / source).resolve()))
    return calls


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_passes_every_required_input_and_no_unknown_one(example):
    calls = _module_calls(example)
    assert calls, f"examples/{example} calls no module"
    checked = 0
    for name, body, target in calls:
        if not target.is_dir():
            continue  # a cloud module still being written
        mod = Module(target)
        assert mod.variables, f"{_rel(target)} declares no variable"
        required = {v for v, b in mod.variables.items() if "default" not in b}
        given = set(body) - _MODULE_META_ARGS
        missing = sorted(required - given)
        unknown = sorted(given - set(mod.variables))
        assert not missing, f"examples/{example} module {name} misses required inputs {missing}"
        assert not unknown, f"examples/{example} module {name} passes inputs {_rel(target)} does not declare: {unknown}"
        checked += 1
    if not checked:
        pytest.skip(f"no module examples/{example} calls exists yet")


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_uses_only_outputs_the_modules_have(example):
    ex = Module(TF_ROOT / "examples" / example)
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(ex.dir.glob("*.tf")))
    targets = {name: target for name, _, target in _module_calls(example)}
    checked = 0
    for call, output in set(re.findall(r"\bmodule\.([\w-]+)\.([\w-]+)", text)):
        assert call in targets, f"examples/{example} refers to module.{call}, which it does not call"
        if not targets[call].is_dir():
            continue
        outputs = Module(targets[call]).outputs
        assert output in outputs, f"examples/{example}: module.{call}.{output} is not an output of {_rel(targets[call])}"
        checked += 1
    if not checked:
        pytest.skip(f"no module examples/{example} calls exists yet")


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e not in ENTRA_EXAMPLES])
def test_example_generates_the_hook_secret_once(example):
    ex = Module(TF_ROOT / "examples" / example)
    passwords = [(n, b) for t, n, b in ex.of_type("random_password")]
    assert len(passwords) == 1, f"examples/{example}: expected one random_password, found {len(passwords)}"
    name, body = passwords[0]
    assert body.get("length", 0) >= 32 and body.get("special") is False, "hook secret: length >= 32, special = false"
    ref = f"random_password.{name}.result"
    users = [call for call, b in ex.modules.items() if ref in ex.expand({k: v for k, v in b.items() if k != "depends_on"})]
    assert len(users) >= 2, f"examples/{example}: the secret should reach the relay and the IdP module, reaches {users}"


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_provider_pins_meet_the_modules(example):
    ex = Module(TF_ROOT / "examples" / example)
    root = required_providers(ex)
    checked = 0
    for call, _, target in _module_calls(example):
        if not target.is_dir():
            continue
        for local_name, spec in required_providers(Module(target)).items():
            if local_name not in root:
                continue  # only the module requires it; nothing to reconcile
            assert _text(root[local_name].get("source")) == _text(spec.get("source")), (
                f"{local_name}: examples/{example} and {_rel(target)} name different sources"
            )
            if spec.get("version") and root[local_name].get("version"):
                assert intervals_meet(_text(root[local_name]["version"]), _text(spec["version"])), (
                    f"{local_name}: examples/{example} pins {root[local_name]['version']!r}, "
                    f"{_rel(target)} pins {spec['version']!r}: no version satisfies both"
                )
            checked += 1
    if not checked:
        pytest.skip(f"no module examples/{example} calls exists yet")


# --- structure shared by all directories ------------------------------------------


@pytest.mark.parametrize("directory", tf_dirs(), ids=lambda p: _rel(p))
def test_pins_terraform_and_every_provider_it_uses(directory):
    module = Module(directory)
    version = required_version(module)
    assert version, f"{_rel(directory)}: no required_version"
    assert intervals_meet(version, ">= 1.6") and version_interval(version)[0] >= (1, 6), (
        f"{_rel(directory)}: required_version {version!r} must not allow Terraform < 1.6"
    )
    pinned = required_providers(module)
    used = {t.split("_", 1)[0] for t, _ in list(module.resources) + list(module.data)}
    used |= set(module.providers)
    for prefix in sorted(used):
        assert prefix in pinned, f"{_rel(directory)} uses {prefix}_* but does not pin it in required_providers"
        assert pinned[prefix].get("version"), f"{_rel(directory)}: provider {prefix} has no version constraint"


# idp/okta's outputs read okta_event_hook_verification.verification_status,
# which the okta provider has from 6.7.0 on (okta/terraform-provider-okta
# #2723, CHANGELOG "6.7.0 (March 27, 2026)"; absent from the 6.6.1 schema).
OKTA_FIRST_WITH_VERIFICATION_STATUS = (6, 7, 0)


def okta_pin_problems(module: Module, where: str) -> list[str]:
    spec = required_providers(module).get("okta")
    if not spec:
        return []
    constraint = _text(spec.get("version", ""))
    low = version_interval(constraint)[0] if constraint else (0,)
    if low + (0,) * (3 - len(low)) < OKTA_FIRST_WITH_VERIFICATION_STATUS:
        return [
            f"{where}: okta {constraint!r} admits versions before 6.7.0, which lack"
            " okta_event_hook_verification.verification_status"
        ]
    return []


@pytest.mark.parametrize("directory", tf_dirs(), ids=lambda p: _rel(p))
def test_okta_pins_admit_only_versions_with_verification_status(directory):
    problems = okta_pin_problems(Module(directory), _rel(directory))
    assert not problems, "\n".join(problems)


def test_self_okta_pin_catches_versions_before_6_7():
    old = Module.from_text('terraform {\n  required_providers {\n    okta = { source = "okta/okta", version = ">= 4.0, < 7.0" }\n  }\n}\n')
    assert okta_pin_problems(old, "old")
    new = Module.from_text('terraform {\n  required_providers {\n    okta = { source = "okta/okta", version = ">= 6.7, < 7.0" }\n  }\n}\n')
    assert not okta_pin_problems(new, "new")
    assert okta_pin_problems(Module.from_text('terraform {\n  required_providers {\n    okta = { source = "okta/okta", version = "~> 6.6" }\n  }\n}\n'), "tilde")


@pytest.mark.parametrize(
    "directory",
    [d for d in tf_dirs() if not d.is_relative_to(TF_ROOT / "examples")],
    ids=lambda p: _rel(p),
)
def test_reusable_modules_configure_no_provider(directory):
    assert not Module(directory).providers, f"{_rel(directory)} configures a provider: the root module does that"


# ==========================================================================
# Self-tests: the helpers catch what they are meant to catch
# ==========================================================================


def test_self_parsing_strips_quotes_and_meta():
    doc = parse_text('variable "x" {\n  type    = string\n  default = "a\\"b"\n}\n')
    assert doc["variable"][0]["x"]["default"] == 'a"b'
    assert "__is_block__" not in doc["variable"][0]["x"]


def test_self_env_keys_follow_locals_and_catch_a_missing_variable():
    module = Module.from_text(
        """
locals {
  base = { DUO_API_HOST = var.host }
  opt  = { for k, v in { GROUP_FILTER = var.gf } : k => v if v != null }
  env  = merge(local.base, local.opt, var.q ? { RELAY_MODE = "queue" } : {})
}
resource "aws_lambda_function" "f" {
  environment {
    variables = local.env
  }
}
resource "google_cloud_run_v2_service" "s" {
  template {
    containers {
      env {
        name  = "DUO_IKEY"
        value = var.ikey
      }
      dynamic "env" {
        for_each = setsubtract(local.secrets, ["X"])
        content {
          name = env.value
        }
      }
    }
  }
}
locals {
  secrets = toset([for k, v in local.secret_values : k if v != null])
  secret_values = { DUO_SKEY = var.skey }
  names = toset(concat(["DUO_SKEY"], var.okta ? ["OKTA_AUTH_SECRET"] : []))
  refs  = { for env in local.names : env => "ref-${env}" if env != "DUO_SKEY" }
}
resource "azurerm_linux_function_app" "a" {
  app_settings = merge({ DUO_IKEY = var.ikey }, local.refs)
}
"""
    )
    keys = env_keys(module)
    assert {"DUO_API_HOST", "GROUP_FILTER", "RELAY_MODE", "DUO_IKEY", "DUO_SKEY", "OKTA_AUTH_SECRET"} <= keys
    assert "RELAY_TABLE_NAME" not in keys
    assert "v" not in keys and "k" not in keys


def test_self_aws_iam_catches_foreign_and_wildcard_resources():
    good = Module.from_text(
        """
resource "aws_dynamodb_table" "t" {}
resource "aws_secretsmanager_secret" "s" {}
resource "aws_sqs_queue" "q" {}
locals { secret_arn = var.existing == null ? aws_secretsmanager_secret.s.arn : var.existing }
data "aws_iam_policy_document" "p" {
  statement {
    actions   = ["dynamodb:PutItem"]
    resources = [aws_dynamodb_table.t.arn, "${aws_dynamodb_table.t.arn}/index/*"]
  }
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.secret_arn]
  }
  statement {
    actions   = ["xray:PutTraceSegments"]
    resources = ["*"]
  }
  dynamic "statement" {
    for_each = var.kms == null ? [] : [var.kms]
    content {
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
  dynamic "statement" {
    for_each = var.queue ? [aws_sqs_queue.q[0].arn] : []
    content {
      actions   = ["sqs:SendMessage"]
      resources = [statement.value]
    }
  }
}
"""
    )
    assert aws_iam_problems(good) == []
    bad = Module.from_text(
        """
resource "aws_dynamodb_table" "t" {}
data "aws_iam_policy_document" "p" {
  statement {
    actions   = ["dynamodb:PutItem"]
    resources = ["*"]
  }
  statement {
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.elsewhere.arn]
  }
  statement {
    actions   = ["logs:PutLogEvents"]
    resources = ["arn:aws:logs:*:*:*"]
  }
  dynamic "statement" {
    for_each = var.queue ? ["arn:aws:sqs:*:*:*"] : []
    content {
      actions   = ["sqs:SendMessage"]
      resources = [statement.value]
    }
  }
}
resource "aws_iam_role_policy_attachment" "admin" {
  policy_arn = "arn:aws:iam::aws:policy/AdministratorAccess"
}
"""
    )
    assert len(aws_iam_problems(bad)) == 5, aws_iam_problems(bad)


def test_self_gcp_and_azure_iam_catch_grants_elsewhere():
    gcp = Module.from_text(
        """
resource "google_service_account" "sa" {}
resource "google_secret_manager_secret" "s" {}
resource "google_secret_manager_secret_iam_member" "ok" {
  secret_id = google_secret_manager_secret.s.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.sa.member
}
resource "google_secret_manager_secret_iam_member" "other_secret" {
  secret_id = "someone-elses-secret"
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.sa.member
}
resource "google_project_iam_member" "project_wide" {
  project = var.project
  role    = "roles/secretmanager.secretAccessor"
  member  = google_service_account.sa.member
}
resource "google_secret_manager_secret_iam_member" "public" {
  secret_id = google_secret_manager_secret.s.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "allUsers"
}
"""
    )
    assert len(gcp_iam_problems(gcp)) == 3, gcp_iam_problems(gcp)
    azure = Module.from_text(
        """
resource "azurerm_key_vault" "kv" {}
resource "azurerm_user_assigned_identity" "id" {}
resource "azurerm_role_assignment" "ok" {
  scope        = azurerm_key_vault.kv.id
  principal_id = azurerm_user_assigned_identity.id.principal_id
}
resource "azurerm_storage_queue" "q" {
  for_each = toset(["a", "b"])
}
resource "azurerm_role_assignment" "queues" {
  for_each     = azurerm_storage_queue.q
  scope        = each.value.resource_manager_id
  principal_id = azurerm_user_assigned_identity.id.principal_id
}
resource "azurerm_role_assignment" "each_elsewhere" {
  for_each     = toset(var.scopes)
  scope        = each.value
  principal_id = azurerm_user_assigned_identity.id.principal_id
}
resource "azurerm_role_assignment" "subscription" {
  scope        = "/subscriptions/${var.sub}"
  principal_id = azurerm_user_assigned_identity.id.principal_id
}
"""
    )
    assert len(azure_iam_problems(azure)) == 2, azure_iam_problems(azure)


def test_self_okta_events_must_come_from_the_generated_file():
    typed = Module.from_text('resource "okta_event_hook" "h" {\n  events = ["user.lifecycle.create"]\n}\n', IDP_DIR / "okta")
    assert okta_events_problems(typed, typed.resources[("okta_event_hook", "h")])
    other = Module.from_text(
        'resource "okta_event_hook" "h" {\n  events = jsondecode(file("${path.module}/mine.json"))\n}\n', IDP_DIR / "okta"
    )
    assert okta_events_problems(other, other.resources[("okta_event_hook", "h")])
    via_local = Module.from_text(
        'locals {\n  t = jsondecode(file("${path.module}/../okta-event-types.json"))\n}\n'
        'resource "okta_event_hook" "h" {\n  events = local.t\n}\n',
        IDP_DIR / "okta",
    )
    assert okta_events_problems(via_local, via_local.resources[("okta_event_hook", "h")]) == []
    assert rust_okta_kinds('const KINDS: &[(&str, Kind)] = &[\n    ("a.b", Kind::A),\n    (\n        "c.d",\n        Kind::B,\n    ),\n];') == [
        "a.b",
        "c.d",
    ]


def test_self_sensitivity_catches_plain_secrets():
    module = Module.from_text(
        """
variable "duo_skey" { type = string }
variable "api_token" {
  type      = string
  sensitive = true
}
variable "secret_ttl_seconds" { type = number }
resource "random_password" "p" { length = 48 }
output "leak" { value = var.api_token }
output "password" { value = random_password.p.result }
output "fine" {
  value     = random_password.p.result
  sensitive = true
}
output "ttl" { value = var.secret_ttl_seconds }
locals {
  names   = toset(nonsensitive([for k, v in { A = var.api_token } : k if v != null]))
  values  = { A = var.api_token }
}
output "names" { value = local.names }
output "values" { value = local.values }
"""
    )
    problems = sensitivity_problems(module)
    assert len(problems) == 4, problems
    assert not any(p.startswith("output names:") for p in problems)
    assert not names_a_secret("existing_secret_arn") and names_a_secret("webhook_signing_secrets")


def test_self_version_intervals():
    assert intervals_meet(">= 6.28, < 7.0", ">= 6.0")
    assert not intervals_meet("~> 5.0", ">= 6.28, < 7.0")
    assert intervals_meet("~> 6.8", ">= 6.0, < 7.0")
    assert not intervals_meet("~> 6.8.1", ">= 6.9")
    assert version_interval(">= 1.6")[0] == (1, 6)


# ==========================================================================
# (f) Metrics and alarms read what the relay writes
# ==========================================================================
#
# terraform/relay-metrics.json is generated from crates/relay-server/src/
# metrics.rs (kept equal by `cargo test -p relay-server --test emf`): the EMF
# metrics with their dimension sets, and the fields of the two log lines
# metrics are taken from (`event`, `dead_letter`). A renamed metric, field or
# dimension in one place and not the other fails here.

RELAY_METRICS_JSON = TF_ROOT / "relay-metrics.json"

_GCP_LINE_RE = re.compile(r'jsonPayload\.message\s*=\s*\\?"([A-Za-z_]+)\\?"')
_GCP_FIELD_RE = re.compile(r"jsonPayload\.([A-Za-z_][A-Za-z0-9_]*)")
_KQL_LINE_RE = re.compile(r'\be\.message\s*==\s*\\?"([A-Za-z_]+)\\?"')
_KQL_FIELD_RE = re.compile(r"\be\.([A-Za-z_][A-Za-z0-9_]*)")
_USER_METRIC_RE = re.compile(r"logging\.googleapis\.com/user/\$\{google_logging_metric\.([A-Za-z0-9_\-]+)(?:\[0\])?\.name\}")
# An alert policy reads a metric type from a time_sleep's triggers:
# time_sleep.NAME.triggers.KEY (or ["KEY"]; NAME[0] for one counted on a
# switch, like the catch-up's).
_SLEEP_TRIGGER_RE = re.compile(r"time_sleep\.([A-Za-z0-9_\-]+)(?:\[0\])?\.triggers(?:\.|\[\")([A-Za-z0-9_\-]+)")


def policy_user_metrics(module: Module, body: dict) -> tuple[set[str], set[str]]:
    """(log-based metrics an alert policy reads through a time_sleep's
    triggers, log-based metrics it names directly)."""
    conditions = _text(body.get("conditions", ""))
    direct = set(_USER_METRIC_RE.findall(conditions))
    waited = set()
    for sleep, key in _SLEEP_TRIGGER_RE.findall(conditions):
        sleep_body = module.resources.get(("time_sleep", sleep), {})
        if not _text(sleep_body.get("create_duration", "")):
            continue
        triggers = sleep_body.get("triggers", {})
        waited |= set(_USER_METRIC_RE.findall(_text(triggers.get(key, "")) if isinstance(triggers, dict) else ""))
    return waited, direct


@functools.lru_cache(maxsize=None)
def relay_metrics() -> dict:
    return _load_json(RELAY_METRICS_JSON)


def _line_fields(contract: dict, kind: str) -> set[str]:
    return set(contract["log_lines"].get(kind, [])) | {"message"}


def aws_metric_alarm_problems(module: Module, contract: dict) -> list[str]:
    """Alarms outside AWS/* namespaces must read the relay's namespace, a
    metric it writes, with one of that metric's dimension sets."""
    metrics = {m["name"]: m for m in contract["emf"]["metrics"]}
    problems = []
    for _, name, body in module.of_type("aws_cloudwatch_metric_alarm"):
        namespace = _text(body.get("namespace", ""))
        if namespace.startswith("AWS/"):
            continue
        where = f"aws_cloudwatch_metric_alarm.{name}"
        if "local.metrics_namespace" not in namespace:
            problems.append(f"{where}: namespace {namespace!r} is neither AWS/* nor local.metrics_namespace")
        spec = metrics.get(_text(body.get("metric_name", "")))
        if spec is None:
            problems.append(f"{where}: the relay writes no metric {body.get('metric_name')!r}")
            continue
        dimensions = body.get("dimensions") or {}
        if not isinstance(dimensions, dict):
            problems.append(f"{where}: dimensions is not a literal map")
            continue
        if sorted(dimensions) not in [sorted(s) for s in spec["dimension_sets"]]:
            problems.append(f"{where}: {spec['name']} has no dimension set {sorted(dimensions)}")
        if "Outcome" in dimensions and dimensions["Outcome"] not in contract["outcomes"]:
            problems.append(f"{where}: outcome {dimensions['Outcome']!r} is not one the relay logs")
        if body.get("treat_missing_data") != "notBreaching":
            problems.append(
                f"{where}: an EMF metric exists only from its first data point: treat_missing_data must be notBreaching"
            )
    return problems


def gcp_log_metric_problems(module: Module, contract: dict) -> list[str]:
    """Each log-based metric selects one relay line by message and reads only
    fields that line has."""
    problems = []
    for _, name, body in module.of_type("google_logging_metric"):
        where = f"google_logging_metric.{name}"
        text = module.expand(body.get("filter"))
        kinds = set(_GCP_LINE_RE.findall(text))
        if len(kinds) != 1 or not kinds <= set(contract["log_lines"]):
            problems.append(
                f"{where}: the filter selects {sorted(kinds) or 'no'} relay line(s) by message,"
                f" not one of {sorted(contract['log_lines'])}"
            )
            continue
        kind = kinds.pop()
        read = text + _text(body.get("label_extractors", "")) + _text(body.get("value_extractor", ""))
        unknown = set(_GCP_FIELD_RE.findall(read)) - _line_fields(contract, kind)
        if unknown:
            problems.append(f"{where}: the {kind!r} line has no field(s) {sorted(unknown)}")
    for _, name, body in module.of_type("google_monitoring_alert_policy"):
        waited, direct = policy_user_metrics(module, body)
        for metric in sorted(direct):
            problems.append(
                f"google_monitoring_alert_policy.{name} names google_logging_metric.{metric} directly: on the first"
                " apply Cloud Monitoring does not know the new metric yet and refuses the policy (404, "
                "hashicorp/terraform-provider-google#11102); read the metric type from a time_sleep's triggers"
            )
        for metric in sorted(waited):
            if ("google_logging_metric", metric) not in module.resources:
                problems.append(f"google_monitoring_alert_policy.{name}: no google_logging_metric.{metric}")
    return problems


def azure_query_problems(module: Module, contract: dict) -> list[str]:
    """Each KQL query over the relay's JSON lines (parse_json(message))
    selects one line by message and reads only fields it has; an alert's
    metric_measure_column is a column its query makes."""
    queries = [(f"local.{k}", v) for k, v in module.locals.items() if k.endswith("_query") and v is not None]
    for _, name, body in module.of_type("azurerm_monitor_scheduled_query_rules_alert_v2"):
        for criteria in _as_list(body.get("criteria")):
            queries.append((f"{name}.criteria.query", criteria.get("query")))
            column = criteria.get("metric_measure_column")
            makes = rf"\b(extend|summarize|project)\b[^|]*\b{re.escape(column or '')}\s*="
            if column and not re.search(makes, module.expand(criteria.get("query"))):
                queries.append((f"{name}.metric_measure_column", f"<no column {column}>"))
    problems = []
    for where, query in queries:
        text = module.expand(query)
        if text.startswith("<no column"):
            problems.append(f"{where}: the query makes {text[1:-1]}")
            continue
        if "parse_json(message)" not in text:
            continue
        kinds = set(_KQL_LINE_RE.findall(text))
        if len(kinds) != 1 or not kinds <= set(contract["log_lines"]):
            problems.append(f"{where}: selects {sorted(kinds) or 'no'} relay line(s) by e.message")
            continue
        kind = kinds.pop()
        unknown = set(_KQL_FIELD_RE.findall(text)) - _line_fields(contract, kind)
        if unknown:
            problems.append(f"{where}: the {kind!r} line has no field(s) {sorted(unknown)}")
    return problems


def _env_value(module: Module, key: str):
    for value in [module.locals] + [b for _, _, b in module.of_type(_COMPUTE_TYPES)]:
        for k, v in _walk(value):
            if k == key:
                return v
    return None


def test_relay_metrics_json_lists_metrics_and_log_lines():
    contract = relay_metrics()
    names = {m["name"] for m in contract["emf"]["metrics"]}
    assert {"Events", "DuoCalls", "DuoThrottled", "DeadLetters"} <= names
    assert {"outcome", "source", "duo_calls", "duo_throttled"} <= set(contract["log_lines"]["event"])
    assert "failed_permanent" in contract["outcomes"]


def test_aws_alarms_read_metrics_the_relay_writes():
    module = cloud_module("aws")
    problems = aws_metric_alarm_problems(module, relay_metrics())
    assert not problems, "\n".join(problems)
    alarms = [
        b
        for _, _, b in module.of_type("aws_cloudwatch_metric_alarm")
        if "local.metrics_namespace" in _text(b.get("namespace", ""))
    ]
    watched = {(_text(b["metric_name"]), json.dumps(b.get("dimensions") or {}, sort_keys=True)) for b in alarms}
    for needed in [("Events", '{"Outcome": "failed_permanent"}'), ("DuoThrottled", "{}"), ("DeadLetters", "{}")]:
        assert needed in watched, f"modules/aws has no alarm on {needed[0]} {needed[1]}"
    for _, name, body in module.of_type("aws_cloudwatch_metric_alarm"):
        assert "local.alarm_actions" in _text(body.get("alarm_actions", "")), f"alarm {name} notifies nobody"
    assert "var.alarm_actions" in _text(module.locals.get("alarm_actions")), "var.alarm_actions is not used"


def test_aws_function_writes_metrics_where_its_alarms_read():
    module = cloud_module("aws")
    assert _text(_env_value(module, "RELAY_METRICS")) == "emf"
    assert "local.metrics_namespace" in _text(_env_value(module, "RELAY_METRICS_NAMESPACE"))


def test_gcp_log_metrics_read_fields_the_relay_logs():
    module = cloud_module("gcp")
    problems = gcp_log_metric_problems(module, relay_metrics())
    assert not problems, "\n".join(problems)
    metrics = {n: module.expand(b.get("filter")) + _text(b) for _, n, b in module.of_type("google_logging_metric")}
    assert any("EXTRACT(jsonPayload.outcome)" in t for t in metrics.values()), "no metric of events by outcome"
    assert any("EXTRACT(jsonPayload.duo_calls)" in t for t in metrics.values()), "no metric of Duo calls"
    throttled = [n for n, t in metrics.items() if "jsonPayload.duo_throttled" in t]
    dead = [n for n, t in metrics.items() if 'message=\\"dead_letter\\"' in t or 'message="dead_letter"' in t]
    assert throttled and dead, "no log-based metric for Duo 429s or dead letters"
    alerted = set()
    for _, name, body in module.of_type("google_monitoring_alert_policy"):
        alerted |= policy_user_metrics(module, body)[0]
        channels = _text(body.get("notification_channels", ""))
        assert "local.notification_channels" in channels, f"alert policy {name} notifies nobody"
    assert set(throttled) & alerted and set(dead) & alerted, "Duo 429s and dead letters must have alert policies"
    assert "var.notification_channels" in _text(module.locals.get("notification_channels"))


def test_azure_queries_read_fields_the_relay_logs():
    module = cloud_module("azure")
    problems = azure_query_problems(module, relay_metrics())
    assert not problems, "\n".join(problems)
    alert_queries = [
        module.expand(c.get("query"))
        for _, _, b in module.of_type("azurerm_monitor_scheduled_query_rules_alert_v2")
        for c in _as_list(b.get("criteria"))
    ]
    assert any("e.duo_throttled" in q for q in alert_queries), "no alert on Duo 429s (duo_throttled)"
    assert any('dead_letter' in q for q in alert_queries), "no alert on dead_letter lines"
    assert "var.action_group_ids" in _text(module.locals.get("action_group_ids"))


def test_self_metric_checks_catch_wrong_names_fields_and_dimensions():
    contract = relay_metrics()
    aws = Module.from_text(
        """
resource "aws_cloudwatch_metric_alarm" "ok" {
  namespace          = local.metrics_namespace
  metric_name        = "Events"
  dimensions         = { Outcome = "failed_permanent" }
  treat_missing_data = "notBreaching"
}
resource "aws_cloudwatch_metric_alarm" "lambda" {
  namespace   = "AWS/Lambda"
  metric_name = "Errors"
}
resource "aws_cloudwatch_metric_alarm" "unknown_metric" {
  namespace          = local.metrics_namespace
  metric_name        = "DuoThrottles"
  treat_missing_data = "notBreaching"
}
resource "aws_cloudwatch_metric_alarm" "unknown_dimension_set" {
  namespace          = local.metrics_namespace
  metric_name        = "DuoCalls"
  dimensions         = { Source = "okta" }
  treat_missing_data = "notBreaching"
}
resource "aws_cloudwatch_metric_alarm" "unknown_outcome" {
  namespace          = local.metrics_namespace
  metric_name        = "Events"
  dimensions         = { Outcome = "failed" }
  treat_missing_data = "notBreaching"
}
resource "aws_cloudwatch_metric_alarm" "other_namespace_and_missing_data" {
  namespace   = "IdpDuoRelay"
  metric_name = "DeadLetters"
}
"""
    )
    problems = aws_metric_alarm_problems(aws, contract)
    assert len(problems) == 5, problems
    assert not any("alarm.ok" in p or "alarm.lambda" in p for p in problems)
    gcp = Module.from_text(
        r"""
locals {
  lines = join(" AND ", [local.svc, "jsonPayload.message=\"event\""])
  svc   = "resource.type=\"cloud_run_revision\""
}
resource "google_logging_metric" "ok" {
  filter           = "${local.lines} AND jsonPayload.duo_throttled>0"
  label_extractors = { outcome = "EXTRACT(jsonPayload.outcome)" }
}
resource "google_logging_metric" "typo" {
  filter          = local.lines
  value_extractor = "EXTRACT(jsonPayload.duo_call)"
}
resource "google_logging_metric" "no_line" {
  filter = local.svc
}
resource "google_logging_metric" "wrong_line_field" {
  filter = "resource.type=\"cloud_run_revision\" AND jsonPayload.message=\"dead_letter\" AND jsonPayload.outcome=\"x\""
}
resource "time_sleep" "metrics" {
  create_duration = "120s"
  triggers = {
    ok_type   = "logging.googleapis.com/user/${google_logging_metric.ok.name}"
    gone_type = "logging.googleapis.com/user/${google_logging_metric.gone.name}"
  }
}
resource "google_monitoring_alert_policy" "waits" {
  conditions {
    condition_threshold {
      filter = "metric.type=\"${time_sleep.metrics.triggers.ok_type}\""
    }
  }
}
resource "google_monitoring_alert_policy" "gone" {
  conditions {
    condition_threshold {
      filter = "metric.type=\"${time_sleep.metrics.triggers.gone_type}\""
    }
  }
}
resource "google_monitoring_alert_policy" "direct" {
  conditions {
    condition_threshold {
      filter = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.ok.name}\""
    }
  }
}
"""
    )
    problems = gcp_log_metric_problems(gcp, contract)
    assert len(problems) == 5, problems
    assert not any(p.startswith("google_logging_metric.ok:") or "policy.waits" in p for p in problems)
    assert any("policy.direct names google_logging_metric.ok directly" in p for p in problems)
    assert any("policy.gone: no google_logging_metric.gone" in p for p in problems)
    azure = Module.from_text(
        r"""
locals {
  ok_query   = join("\n", ["traces", "| extend e = parse_json(message)", "| where e.message == \"event\"", "| extend t = toint(e.duo_throttled)"])
  typo_query = join("\n", ["traces", "| extend e = parse_json(message)", "| where e.message == \"event\" and e.duo_throtled > 0"])
  line_query = join("\n", ["traces", "| extend e = parse_json(message)", "| where e.message == \"dead_letter\" and e.outcome == \"x\""])
  host_query = "traces | where message has \"MaxDequeueCount\""
}
resource "azurerm_monitor_scheduled_query_rules_alert_v2" "a" {
  criteria {
    query                 = local.ok_query
    metric_measure_column = "throttled"
  }
}
"""
    )
    problems = azure_query_problems(azure, contract)
    assert len(problems) == 3, problems
    assert any("no column throttled" in p for p in problems)


# --- queue mode on Azure and GCP: the modules wire what the binaries read ----


def _cargo_sources(crate: str) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted((REPO_ROOT / "crates" / crate / "src").rglob("*.rs")))


def test_azure_queue_mode_settings_match_relay_azure():
    module = cloud_module("azure")
    keys = env_keys(module)
    source = _cargo_sources("relay-azure") + _cargo_sources("relay-core")
    for name in ("RELAY_MODE", "RELAY_QUEUE_NAME", "AZURE_STORAGE_QUEUE_ENDPOINT"):
        assert name in keys, f"modules/azure does not set {name}"
        assert f'"{name}"' in source, f"relay-azure does not read {name}"
    app = REPO_ROOT / "crates" / "relay-azure" / "app"
    worker = json.loads((app / "queue_worker" / "function.json").read_text(encoding="utf-8"))
    assert worker["bindings"][0]["queueName"] == "%RELAY_QUEUE_NAME%"
    # %RELAY_QUEUE_NAME% must resolve in both modes; sync mode switches the
    # worker off by its folder name.
    settings = _text(module.locals["queue_settings"])
    assert settings.count("RELAY_QUEUE_NAME") == 2, settings
    assert "AzureWebJobs_queue_worker_Disabled" in settings
    # The poison queue is the host's name for it, which the relay derives.
    assert _text(module.locals["poison_queue_name"]).endswith("-poison")
    assert '"-poison"' in source
    # Queue mode runs one instance (events apply one at a time).
    (_, _, app_body), = module.of_type(r"azurerm_linux_function_app")
    scale = _text(app_body["site_config"])
    assert re.search(r"app_scale_limit\W+\$?\{?var\.queue_enabled \? 1 :", scale), scale


def test_gcp_queue_mode_settings_match_relay_gcp():
    module = cloud_module("gcp")
    keys = env_keys(module)
    source = _cargo_sources("relay-gcp") + _cargo_sources("relay-core")
    for name in (
        "RELAY_MODE", "RELAY_PUBSUB_TOPIC", "RELAY_PUBSUB_DEAD_LETTER_TOPIC",
        "RELAY_PUBSUB_DEAD_LETTER_SUBSCRIPTION", "RELAY_PUSH_AUDIENCE",
        "RELAY_PUSH_SERVICE_ACCOUNT", "RELAY_QUEUE_MAX_ATTEMPTS",
    ):
        assert name in keys, f"modules/gcp does not set {name}"
        assert f'"{name}"' in source, f"relay-gcp does not read {name}"
    assert "RELAY_PUBSUB_SUBSCRIPTION" not in keys, "relay-gcp reads no such variable"
    worker = module.resources[("google_pubsub_subscription", "worker")]
    push = _text(worker["push_config"])
    assert "/pubsub/push" in push and "PUSH_ROUTE: &str = \"/pubsub/push\"" in source
    # The token the relay checks: this audience, this account.
    assert "local.push_audience" in push and "google_service_account.push" in push
    assert "local.push_audience" in _text(module.locals["optional_plain_env"])
    assert worker["enable_message_ordering"] is True
    assert "retry_policy" in worker and "dead_letter_policy" in worker
    # Pub/Sub's dead-lettering comes after the relay's own.
    assert "var.queue_max_attempts + 2" in _text(module.locals["pubsub_max_delivery_attempts"])
    # A redelivery comes after a cut-off attempt's claim has expired.
    claim = re.search(r"CLAIM_TIMEOUT: Duration = Duration::from_secs\((\d+)\)", _cargo_sources("relay-core"))
    backoff = re.fullmatch(r"(\d+)s", _as_list(worker["retry_policy"])[0]["minimum_backoff"])
    assert claim and backoff and int(backoff.group(1)) > int(claim.group(1)), (backoff, claim)


# --- Entra ID (issue 18): what the modules set is what the binaries read --------

# Entra's settings: plain (the tenant and the app's client id) and secret
# (the subscriptions' clientState, the app's client secret or, instead,
# its certificate).
ENTRA_PLAIN = ("ENTRA_TENANT_ID", "ENTRA_CLIENT_ID")
ENTRA_SECRETS = ("ENTRA_CLIENT_STATE", "ENTRA_CLIENT_SECRET", "ENTRA_CLIENT_CERTIFICATE")
# Which of the two credentials is stored: decided by the plain variable
# entra_credential alone, never by the (sensitive, possibly unknown) values.
ENTRA_CREDENTIAL_ENV = '${var.entra_credential == "certificate" ? "ENTRA_CLIENT_CERTIFICATE" : "ENTRA_CLIENT_SECRET"}'
ENTRA_RS = REPO_ROOT / "crates" / "relay-core" / "src" / "source" / "entra"


def _rust_str_list(source: str, const: str) -> list[str]:
    """The string literals of `pub const NAME: &[&str] = &[...]`."""
    m = re.search(rf"const {const}: &\[&str\] = &\[(.*?)\];", source, re.S)
    assert m, f"no const {const}"
    return re.findall(r'"([^"]+)"', m.group(1))


def entra_env_problems(cloud: str, module: Module) -> list[str]:
    """Each module sets Entra's plain settings as plain settings and its
    secrets through the cloud's secret store only, keyed on hook_sources
    containing "entra" (a variable), never on the values."""
    problems = []
    keys = env_keys(module)
    plain_text = {
        "aws": _text(module.locals.get("environment_entra", "")),
        "azure": _text(module.locals.get("entra_settings", "")),
        "gcp": _text(module.locals.get("entra_env", "")),
    }[cloud]
    if "local.entra_enabled" not in plain_text:
        problems.append(f"the Entra plain settings are not keyed on local.entra_enabled: {plain_text!r}")
    enabled = _text(module.locals.get("entra_enabled", ""))
    if not re.search(r'contains\(var\.hook_sources,\s*"entra"\)', enabled):
        problems.append(f"local.entra_enabled is not hook_sources containing \"entra\": {enabled!r}")
    for name in ENTRA_PLAIN:
        if name not in keys:
            problems.append(f"does not set {name}")
        if name not in plain_text:
            problems.append(f"{name} is not among the plain Entra settings")
    for name in ENTRA_SECRETS:
        if name in plain_text:
            problems.append(f"{name} is set as a plain setting")
    credential_env = _text(module.locals.get("entra_credential_env", ""))
    if credential_env != ENTRA_CREDENTIAL_ENV:
        problems.append(f"local.entra_credential_env is not decided by var.entra_credential alone: {credential_env!r}")
    credential_var = module.variables.get("entra_credential", {})
    if credential_var.get("sensitive") is True or _text(credential_var.get("default")) != "secret":
        problems.append(f"variable entra_credential must be plain with default \"secret\": {credential_var!r}")
    if cloud == "aws":
        secret = _text(module.locals.get("secret_values", ""))
        for name in ENTRA_SECRETS:
            if not re.search(rf'"?\b{name}"?\s*[=:]\s*"?\$?\{{?var\.{name.lower()}\b', secret):
                problems.append(f"the Secrets Manager secret does not hold {name} = var.{name.lower()}")
            if name in keys:
                problems.append(f"{name} is in the Lambda's plain environment")
    else:
        chosen = _text(module.locals.get("secrets_set" if cloud == "azure" else "secret_env", ""))
        if not re.search(r'local\.entra_enabled\s*\?\s*\[\s*"ENTRA_CLIENT_STATE",\s*local\.entra_credential_env\s*\]', chosen):
            problems.append(f"the stored secrets are not chosen by local.entra_enabled: {chosen!r}")
        values = _text(module.locals.get("secret_values", ""))
        for name in ENTRA_SECRETS:
            if not re.search(rf'"?\b{name}"?\s*[=:]\s*"?\$?\{{?var\.{name.lower()}\b', values):
                problems.append(f"secret_values does not map {name} to var.{name.lower()}")
            if name not in keys:
                problems.append(f"does not set {name} (from the secret store)")
    return problems


@pytest.mark.parametrize("cloud", CLOUDS)
def test_entra_settings_are_plain_and_its_secrets_in_the_secret_store(cloud):
    problems = entra_env_problems(cloud, cloud_module(cloud))
    assert not problems, f"modules/{cloud}: " + "\n".join(problems)


@pytest.mark.parametrize("cloud", CLOUDS)
def test_entra_variables_are_the_ones_the_relay_reads(cloud):
    """The names the modules set are the ones relay-core reads, the entry
    accepts ENTRA_CLIENT_STATE as a hook secret, and relay-aws takes the
    secret ones from Secrets Manager only (a plain one is refused at start)."""
    api = (ENTRA_RS / "api.rs").read_text(encoding="utf-8")
    core = _cargo_sources("relay-core")
    for name in ENTRA_PLAIN + ("ENTRA_CLIENT_SECRET", "ENTRA_CLIENT_CERTIFICATE"):
        assert f'"{name}"' in api, f"relay-core's Entra API client reads no {name}"
    assert '"ENTRA_CLIENT_STATE"' in (ENTRA_RS / "mod.rs").read_text(encoding="utf-8")
    module = cloud_module(cloud)
    written = set(re.findall(r"\bENTRA_[A-Z_]+", "\n".join(_text(v) for v in module.locals.values())))
    for name in written:
        assert f'"{name}"' in core, f"modules/{cloud} writes {name}, which relay-core does not read"
    assert set(ENTRA_PLAIN + ENTRA_SECRETS) <= written, f"modules/{cloud} writes only {sorted(written)}"
    one_of = _load_json(module.dir / ("required-secret-keys.json" if cloud == "aws" else "required-one-of-env.json"))
    hooks = one_of["one_of"] if cloud == "aws" else _one_of_groups(one_of)[0]
    assert "ENTRA_CLIENT_STATE" in hooks, f"modules/{cloud}: the entry does not accept ENTRA_CLIENT_STATE as a hook secret"
    if cloud == "aws":
        secret_variables = _rust_str_list(_cargo_sources("relay-aws"), "SECRET_VARIABLES")
        assert set(ENTRA_SECRETS) <= set(secret_variables), secret_variables
        assert not set(ENTRA_PLAIN) & set(secret_variables), "relay-aws would refuse the plain Entra settings"


@pytest.mark.parametrize("cloud", CLOUDS)
def test_entra_notification_url_is_the_relays_route(cloud):
    module = cloud_module(cloud)
    out = module.outputs.get("entra_notification_url")
    assert out, f"modules/{cloud} has no entra_notification_url output"
    # The output is the URL the scheduled catch-up subscribes at (Graph's
    # subscriptions are matched on the exact string): the override, else
    # the relay's route.
    assert _text(out["value"]) == "${local.entra_notification_url}", out["value"]
    url = _text(module.locals["entra_notification_url"])
    assert url.startswith("${coalesce(var.entra_notification_url,"), url
    route = "/entra"
    assert url.endswith(route + '")}'), url
    if cloud == "azure":
        # the Functions host prefixes /api (host.json), on the app's classic
        # default host name (its default_hostname attribute in its own app
        # settings would be a cycle), and the app has a function for the route
        assert re.search(r'"https://\$\{local\.function_app_name\}\.azurewebsites\.net/api/entra"', url), url
        assert "local.function_app_name" in _text(module.resources[("azurerm_linux_function_app", "relay")]["name"])
        function = json.loads((REPO_ROOT / "crates" / "relay-azure" / "app" / "entra" / "function.json").read_text(encoding="utf-8"))
        assert any(b.get("route") == "entra" for b in function["bindings"]), function
    assert '"/entra"' in _cargo_sources("relay-core") + _cargo_sources("relay-server"), "no /entra route in the relay"


_ENTRA_GOOD_HCL = (
    'locals {\n'
    '  entra_enabled = contains(var.hook_sources, "entra")\n'
    '  entra_settings = local.entra_enabled ? { ENTRA_TENANT_ID = var.entra_tenant_id, ENTRA_CLIENT_ID = var.entra_client_id } : {}\n'
    '  entra_credential_env = var.entra_credential == "certificate" ? "ENTRA_CLIENT_CERTIFICATE" : "ENTRA_CLIENT_SECRET"\n'
    '  secrets_set = toset(concat(["DUO_SKEY"], local.entra_enabled ? ["ENTRA_CLIENT_STATE", local.entra_credential_env] : []))\n'
    '  secret_values = { ENTRA_CLIENT_STATE = var.entra_client_state, ENTRA_CLIENT_SECRET = var.entra_client_secret, ENTRA_CLIENT_CERTIFICATE = var.entra_client_certificate }\n'
    '}\n'
    'resource "azurerm_linux_function_app" "relay" {\n'
    '  app_settings = merge(local.entra_settings, { for env in local.secrets_set : env => "ref" })\n'
    '}\n'
    'variable "entra_credential" {\n'
    '  default = "secret"\n'
    '}\n'
)


def test_self_entra_checks_catch_a_plain_secret_and_a_value_keyed_set():
    def problems(old="", new=""):
        return entra_env_problems("azure", Module.from_text(_ENTRA_GOOD_HCL.replace(old, new)))

    assert not problems(), problems()
    plain = problems("ENTRA_CLIENT_ID = var.entra_client_id }", "ENTRA_CLIENT_ID = var.entra_client_id, ENTRA_CLIENT_SECRET = var.entra_client_secret }")
    assert any("ENTRA_CLIENT_SECRET is set as a plain setting" in p for p in plain), plain
    by_value = problems('local.entra_enabled ? ["ENTRA_CLIENT_STATE"', 'nonsensitive(var.entra_client_state != null) ? ["ENTRA_CLIENT_STATE"')
    assert any("not chosen by local.entra_enabled" in p for p in by_value), by_value
    # The Graph credential: its name decided from the certificate's value
    # (unknown when it is made in the same apply), the certificate as a
    # plain setting or not stored, a sensitive entra_credential: refused.
    for old, new, said in (
        ('var.entra_credential == "certificate" ?', "nonsensitive(var.entra_client_certificate != null) ?", "not decided by var.entra_credential alone"),
        ("ENTRA_CLIENT_ID = var.entra_client_id }", "ENTRA_CLIENT_ID = var.entra_client_id, ENTRA_CLIENT_CERTIFICATE = var.entra_client_certificate }", "ENTRA_CLIENT_CERTIFICATE is set as a plain setting"),
        (", ENTRA_CLIENT_CERTIFICATE = var.entra_client_certificate }", " }", "does not map ENTRA_CLIENT_CERTIFICATE"),
        ('  default = "secret"\n', '  default = "secret"\n  sensitive = true\n', "entra_credential must be plain"),
    ):
        found = problems(old, new)
        assert any(said in p for p in found), (said, found)
    plain_by_value = problems("entra_settings = local.entra_enabled ?", "entra_settings = var.entra_tenant_id != null ?")
    assert any("not keyed on local.entra_enabled" in p for p in plain_by_value), plain_by_value
    unset = problems("ENTRA_CLIENT_SECRET = var.entra_client_secret,", "")
    assert any("does not map ENTRA_CLIENT_SECRET" in p for p in unset), unset


@pytest.mark.parametrize("example", ENTRA_EXAMPLES)
def test_entra_example_hands_the_generated_secrets_to_the_relay(example):
    """entra-azure, entra-aws, entra-gcp: the clientState is generated in the root (a secret
    between Graph and the relay, like the other examples' hook secrets) and
    the app registration comes in as variables from terraform/idp/entra's
    outputs, so the root needs no azuread provider (the offline check of an
    example serves only the shared tool's providers)."""
    ex = Module(TF_ROOT / "examples" / example)
    (_, name, body), = ex.of_type("random_password")
    assert body.get("length", 0) >= 32 and body.get("length") <= 128 and body.get("special") is False, body
    relay = ex.modules["relay"]
    assert _text(relay["entra_client_state"]) == f"${{random_password.{name}.result}}"
    assert _text(relay["entra_client_secret"]) == "${var.entra_client_secret}"
    # a certificate instead of the secret: passed through, and the module's
    # entra_credential follows whether one is given (a root variable, known
    # while planning; the module refuses both and neither)
    assert _text(relay["entra_client_certificate"]) == "${var.entra_client_certificate}"
    assert _text(relay["entra_credential"]) == '${nonsensitive(var.entra_client_certificate != null) ? "certificate" : "secret"}', relay["entra_credential"]
    for name in ("entra_client_secret", "entra_client_certificate"):
        assert ex.variables[name].get("sensitive") is True and "default" in ex.variables[name] and ex.variables[name]["default"] is None, (name, ex.variables[name])
    assert _text(relay["entra_tenant_id"]) == "${var.entra_tenant_id}"
    assert _text(relay["entra_client_id"]) == "${var.entra_client_id}"
    assert [_text(s) for s in relay["hook_sources"]] == ["entra"], relay["hook_sources"]
    assert "entra" not in ex.modules, "the app registration is its own root (terraform/idp/entra)"
    assert _text(relay["source"]) == f"../../modules/{example.removeprefix('entra-')}", relay["source"]
    versions = (TF_ROOT / "examples" / example / "versions.tf").read_text()
    assert "hashicorp/azuread" not in versions, f"{example} must not need the azuread provider"
    idp = Module(TF_ROOT / "idp" / "entra")
    for output in ("tenant_id", "client_id", "client_secret"):
        assert output in idp.outputs, output


# --- nothing a user can commit from an example holds a secret -------------------

# What Terraform (and a user following the README) leaves in an example's
# folder. Each of these can hold the Duo secret key, the hook secret or an
# IdP token in clear text.
SECRET_BEARING_FILES = (
    "terraform.tfstate",
    "terraform.tfstate.backup",
    "terraform.tfstate.1712345678.backup",
    ".terraform.tfstate.lock.info",
    ".terraform/terraform.tfstate",
    ".terraform/providers/registry.terraform.io/hashicorp/aws/6.0.0/linux_amd64/terraform-provider-aws",
    "terraform.tfstate.d/staging/terraform.tfstate",
    "terraform.tfvars",
    "terraform.tfvars.json",
    "secrets.auto.tfvars",
    "tfplan",
    "first.tfplan",
    "crash.log",
    "crash.1712345678.log",
    "backend_override.tf",
    "override.tf",
)
# What must stay committable: the configuration and the templates.
TRACKED_FILES = ("main.tf", "variables.tf", "versions.tf", "outputs.tf", "terraform.tfvars.example", ".terraform.lock.hcl")


def _git_ignored(paths: list[str]) -> set[str]:
    import subprocess

    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        input="\n".join(paths) + "\n",
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    if proc.returncode not in (0, 1):
        pytest.skip(f"git check-ignore failed: {proc.stderr.strip()}")
    return set(proc.stdout.split())


@pytest.mark.parametrize("example", EXAMPLES)
def test_git_ignores_every_secret_bearing_file_of_an_example(example):
    import shutil

    if not shutil.which("git") or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    folder = f"terraform/examples/{example}"
    secret = [f"{folder}/{name}" for name in SECRET_BEARING_FILES]
    kept = [f"{folder}/{name}" for name in TRACKED_FILES]
    ignored = _git_ignored(secret + kept)
    assert not set(secret) - ignored, f"git add -A would pick up {sorted(set(secret) - ignored)}"
    assert not set(kept) & ignored, f".gitignore hides {sorted(set(kept) & ignored)}, which belong in git"
