#!/usr/bin/env bash
# The client's own venv (client/.venv): the client with its extras and test tools, and none of the
# server's dependencies, which proves it installs on its own. langchain-tests brings pytest plugins
# (pytest-socket, syrupy) that must not reach the server's venv.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[langchain,parquet,test]"
