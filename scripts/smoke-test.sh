#!/usr/bin/env bash
# Operators' smoke test after a deploy.
#   scripts/smoke-test.sh URL   check a running gateway (e.g. http://10.0.0.5:8080)
#   scripts/smoke-test.sh       start gateway + 1 worker under supervisord on spare ports, check, stop
# Checks /health, /ready, /embed and /metrics; exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

if [ $# -ge 1 ]; then
  exec "$PY" scripts/smoke_check.py "$1" "${SMOKE_WAIT_S:-30}"
fi

run=$(mktemp -d)
trap 'kill "$sup" 2>/dev/null; wait "$sup" 2>/dev/null; rm -rf "$run"' EXIT
port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
http=$(port); zmq=$(port); grpc=$(port)
export AKIDB_SERVER__PORT=$http AKIDB_SERVER__GRPC_PORT=$grpc AKIDB_SERVER__HOST=127.0.0.1
export AKIDB_ZMQ__BIND=tcp://127.0.0.1:$zmq AKIDB_ZMQ__CONNECT=tcp://127.0.0.1:$zmq
export AKIDB_STORAGE__DATA_DIR=$run/data AKIDB_WORKERS=1 HF_HUB_OFFLINE=1
bin=$(cd "$(dirname "$PY")" && pwd)
# The real supervisord.conf, with its paths pointed at this venv and a throwaway var/.
sed -e "s#%(here)s/.venv/bin#$bin#g" -e "s#%(here)s/var#$run#g" -e "s#%(here)s#$PWD#g" supervisord.conf > "$run/supervisord.conf"
mkdir -p "$run/log" "$run/run"
"$bin/supervisord" -n -c "$run/supervisord.conf" &
sup=$!
sleep 1
kill -0 "$sup" 2>/dev/null || { echo "FAIL supervisord did not start"; exit 1; }
if ! "$PY" scripts/smoke_check.py "http://127.0.0.1:$http" "${SMOKE_WAIT_S:-120}"; then
  echo "--- gateway log"; tail -20 "$run/log/gateway.log" || true
  echo "--- worker log"; tail -20 "$run/log/worker-0.log" || true
  exit 1
fi
