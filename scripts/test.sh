#!/usr/bin/env bash
# The test command (README and .ci/run): lint and format check, then the whole suite, on the real model and data.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
"$PY" -m ruff check src tests bench glmtts_inference.py
"$PY" -m ruff format --check src tests bench glmtts_inference.py
"$PY" -m pytest -q -ra --durations=15 "$@"
