#!/usr/bin/env bash
# Installs the Python tools (moto, cfn-lint, sam) into .venv, once per change of
# local/requirements.txt. Idempotent and quiet when there is nothing to do.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.venv"
req="$root/local/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
command -v python3 >/dev/null || { echo "setup: python3 is required (3.9 or newer)" >&2; exit 1; }
echo "setup: installing Python tools into .venv (moto, cfn-lint, sam)..."
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
