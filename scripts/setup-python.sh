#!/usr/bin/env bash
# Creates the model pipeline's venv at models/.venv (idempotent).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/models/.venv"
req="$root/models/train/requirements.txt"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet -r "$req"
echo "$want" > "$stamp"
