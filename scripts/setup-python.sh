#!/usr/bin/env bash
# Creates the model pipeline's venv at models/.venv and the tests' at
# tests/.venv (idempotent).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/models/.venv"
req="$root/models/train/requirements.txt"

# One venv per requirements file, remade only when the file changes.
make_venv() {
  local venv=$1 req=$2
  local stamp="$venv/.requirements.sha256" want
  want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet -r "$req"
  echo "$want" > "$stamp"
}
make_venv "$venv" "$req"
# The tests' real protocol peers (a Sparkplug B host).
make_venv "$root/tests/.venv" "$root/tests/tools/requirements.txt"
# A real Home Assistant (tests/it/homeassistant.rs).
make_venv "$root/tests/.venv-ha" "$root/tests/tools/homeassistant-requirements.txt"
