#!/usr/bin/env bash
# Smoke test of the built wheel in clean virtual environments, one per extra the docs name for the
# command line: the core install's `conjugacy` says which extra it needs (exit 2, one line), and
# `[cli]` alone runs the commands that need nothing else and names the extra of those that do.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m pip wheel --quiet --no-deps -w "$work" . >/dev/null
wheel=$(ls "$work"/conjugacy-*.whl)

"$PY" -m venv "$work/core"
"$work/core/bin/pip" install --quiet "$wheel"
set +e
out=$("$work/core/bin/conjugacy" --version 2>&1); rc=$?
set -e
[ "$rc" = 2 ] && grep -q "pip install 'conjugacy\[cli\]'" <<<"$out" \
    || { echo "core install: expected one line naming the cli extra, got rc=$rc: $out"; exit 1; }

"$PY" -m venv "$work/cli"
"$work/cli/bin/pip" install --quiet "$wheel[cli]"
"$work/cli/bin/conjugacy" --version
"$work/cli/bin/conjugacy" --help >/dev/null
mkdir "$work/empty"
set +e
out=$("$work/cli/bin/conjugacy" store ls "$work/empty" 2>&1); rc=$?
set -e
[ "$rc" = 2 ] && grep -q "pip install 'conjugacy\[store\]'" <<<"$out" \
    || { echo "[cli] install: expected one line naming the store extra, got rc=$rc: $out"; exit 1; }
echo "extras smoke test: core and [cli] installs behave as documented"
