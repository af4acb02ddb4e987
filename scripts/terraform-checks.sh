#!/usr/bin/env bash
# The Terraform checks that run here without a terraform binary or a cloud
# account: pytest + python-hcl2 over every module (required env vars set,
# IAM only on the module's own resources, generated Okta event types,
# sensitive variables), and checkov over terraform/. Each gets its own venv
# under .tools/: checkov ships a fork of python-hcl2 that shadows the real one.
set -euo pipefail
cd "$(dirname "$0")/.."
HCLVENV="$PWD/.tools/hclvenv"
CHECKOVVENV="$PWD/.tools/checkovvenv"
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
"$CHECKOVVENV/bin/checkov" -d terraform --quiet --compact --framework terraform --skip-download
"$HCLVENV/bin/pytest" -q -p no:cacheprovider terraform/tests
