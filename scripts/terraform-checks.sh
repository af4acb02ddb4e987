#!/usr/bin/env bash
# The Terraform checks (scripts/test runs this; so does CI):
#
# 1. plan matrix: every root (examples, cloud modules, idp modules) planned
#    from an empty state for the variable sets a user would choose, with the
#    real terraform init/validate/plan against the providers' schemas
#    (terraform-offline's `check`, mock providers, no cloud, no network after
#    its first setup): terraform/tests/plan_matrix.py. Any failure fails.
#    Without the tool or without terraform (a user's own machine) it falls
#    back to `terraform init -backend=false && terraform validate` on every
#    root when the registry is reachable, and otherwise says what it skipped.
# 2. pytest + python-hcl2 over every module (required env vars set, IAM only
#    on the module's own resources, generated Okta event types, sensitive
#    variables, ...), and the proof that the plan matrix fails on the
#    defects it guards against (terraform/tests/test_plan_matrix.py).
# 3. checkov over terraform/.
#
# Each Python tool gets its own venv under .tools/: checkov ships a fork of
# python-hcl2 that shadows the real one.
#
# Environment: TF_OFFLINE_DIR (default ../shared/tools/terraform-offline next
# to the repository), TF_OFFLINE_HOME (default .tools/terraform-offline),
# TF_MATRIX_JOBS (combinations planned at once, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
HCLVENV="$REPO/.tools/hclvenv"
CHECKOVVENV="$REPO/.tools/checkovvenv"
export TF_OFFLINE_DIR="${TF_OFFLINE_DIR:-$REPO/../shared/tools/terraform-offline}"
export TF_OFFLINE_HOME="${TF_OFFLINE_HOME:-$REPO/.tools/terraform-offline}"
# Schemas of providers the shared tool does not serve (azuread) are added by
# plan_matrix.py for terraform/idp/entra only (terraform/tests/schemas/README.md):
# every other root must plan with the tool's own, as anyone's check of it does.

if [ ! -x "$HCLVENV/bin/pytest" ]; then
  echo "installing python-hcl2 and pytest into .tools/hclvenv" >&2
  python3 -m venv "$HCLVENV"
  "$HCLVENV/bin/pip" install --quiet --disable-pip-version-check -r terraform/tests/requirements.txt
fi
if [ ! -x "$CHECKOVVENV/bin/checkov" ]; then
  echo "installing checkov into .tools/checkovvenv" >&2
  python3 -m venv "$CHECKOVVENV"
  "$CHECKOVVENV/bin/pip" install --quiet --disable-pip-version-check 'checkov==3.3.30'
fi

# Every directory holding .tf files (the roots checked by the fallback).
tf_roots() {
  find terraform -name '*.tf' -not -path '*/.terraform/*' -not -path 'terraform/tests/*' -exec dirname {} \; | sort -u
}

# Without the offline tool: validate each root against the real providers,
# in a scratch copy (init writes .terraform/ and a lock file).
fallback_validate() {
  local why="$1"
  echo "terraform plan matrix SKIPPED: $why" >&2
  if ! command -v terraform >/dev/null 2>&1; then
    echo "  terraform is not installed either: init/validate SKIPPED for every root" >&2
    echo "  (install terraform >= 1.6 to validate; the offline tool at $TF_OFFLINE_DIR plans them too)" >&2
    return 0
  fi
  if ! command -v curl >/dev/null 2>&1 ||
    ! curl -fsS --max-time 10 -o /dev/null https://registry.terraform.io/.well-known/terraform.json 2>/dev/null; then
    echo "  registry.terraform.io is not reachable: init/validate SKIPPED for every root" >&2
    return 0
  fi
  local scratch
  scratch="$(mktemp -d)"
  # shellcheck disable=SC2064
  trap "rm -rf '$scratch'" RETURN
  cp -r terraform "$scratch/terraform"
  find "$scratch/terraform" \( -name .terraform -o -name '.terraform.lock.hcl' -o -name '*.tfstate*' \) -prune -exec rm -rf {} +
  local root failed=0
  while read -r root; do
    if (cd "$scratch/$root" && terraform init -backend=false -input=false >/dev/null && terraform validate -no-color >/dev/null); then
      echo "  validate ok   $root"
    else
      echo "  validate FAILED $root (run: cd $root && terraform init -backend=false && terraform validate)" >&2
      failed=1
    fi
  done < <(tf_roots)
  return "$failed"
}

if command -v terraform >/dev/null 2>&1; then
  # terraform fmt style (2-space indent, aligned =); offline.
  if ! terraform fmt -check -recursive terraform >/dev/null 2>&1; then
    echo "terraform fmt: these files are not formatted (run: terraform fmt -recursive terraform):" >&2
    terraform fmt -check -recursive terraform 2>/dev/null >&2 || true
    exit 1
  fi
else
  echo "terraform fmt -check SKIPPED: terraform is not on PATH" >&2
fi

start=$(date +%s)
if [ -f "$TF_OFFLINE_DIR/check" ] && command -v terraform >/dev/null 2>&1; then
  # A failure here fails CI: every root must plan from an empty state.
  python3 terraform/tests/plan_matrix.py --jobs "${TF_MATRIX_JOBS:-2}"
elif [ -f "$TF_OFFLINE_DIR/check" ]; then
  fallback_validate "terraform is not on PATH"
else
  fallback_validate "terraform-offline not found at $TF_OFFLINE_DIR (set TF_OFFLINE_DIR)"
fi
echo "terraform plan matrix: $(( $(date +%s) - start ))s" >&2

"$CHECKOVVENV/bin/checkov" -d terraform --quiet --compact --framework terraform --skip-download
"$HCLVENV/bin/pytest" -q -p no:cacheprovider terraform/tests
