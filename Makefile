# The two commands a new machine needs: `make run` and `make test`. Both set everything up.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORKERS ?= 1
export AKIDB_WORKERS := $(WORKERS)
export HF_HUB_OFFLINE ?= 1

.PHONY: cuda-setup setup run test lint typecheck unit integration e2e security proto smoke docs clean client-setup client-test soak soak-short run-ha

$(STAMP): pyproject.toml scripts/setup.sh
	VENV=$(VENV) ./scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

## run: gateway + $(WORKERS) worker(s) on the default model, under supervisord (Ctrl-C stops all)
run: setup
	mkdir -p var/log var/run
	$(BIN)/supervisord -n -c supervisord.conf

## run-ha: PostgreSQL (pgvector, data in var/pg), two gateways (:8081, :8082) on it and one worker serving
## both, under supervisord (deploy/supervisord-ha.conf; Ctrl-C stops all). docs/scale-out.md says how it fits.
run-ha: setup
	mkdir -p var/log var/run
	$(BIN)/python -m scripts.pg_dev keys --config deploy/akidb-ha-a.yaml
	$(BIN)/supervisord -n -c deploy/supervisord-ha.conf

## test: lint, type-check, then the whole suite with coverage of gateway/, worker/, shared/
## (fails below fail_under in pyproject.toml's [tool.coverage.report]: pytest-cov reads it)
test: setup lint typecheck
	$(BIN)/python -m pytest --cov --cov-report=term $(PYTEST_ARGS)
	$(MAKE) client-test

## cuda-setup: MLX on an NVIDIA GPU (Linux, CUDA 12): the [cuda] extra in place of MLX's CPU build. Workers
## then pick MLX on their own (embedding.backend auto prefers MLX wherever it has a GPU); /models says "cuda"
MLX_VERSION = $$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("mlx"))')
cuda-setup: setup
	$(BIN)/python -m pip install -q -e ".[test,cuda]"
	$(BIN)/python -m pip uninstall -y -q mlx-cpu
	$(BIN)/python -m pip install -q --force-reinstall --no-deps "mlx-cuda-12==$(MLX_VERSION)"
	$(BIN)/python -c "import mlx.core as mx; assert mx.cuda.is_available(), 'MLX sees no CUDA device'; print(mx.default_device())"

## client-setup: the client's own venv (client/.venv) with its extras, none of the server's dependencies
CLIENT_STAMP := client/.venv/.installed
$(CLIENT_STAMP): client/pyproject.toml client/scripts/setup.sh
	./client/scripts/setup.sh
	touch $(CLIENT_STAMP)

client-setup: $(CLIENT_STAMP)

## client-test: the client, CLI and LangChain tests, against a gateway and worker run by this venv's python
client-test: setup client-setup
	cd client && .venv/bin/mypy
	cd client && AKIDB_SERVER_PYTHON=$(abspath $(BIN))/python .venv/bin/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

integration: setup
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

e2e: setup
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

## security: the attacker's suite (every route x no key, unknown key, wrong scope, another team's collection)
security: setup
	$(BIN)/python -m pytest tests/security $(PYTEST_ARGS)

## soak: an hour of mixed open-loop load with faults against `make run`'s shape (one gateway, one worker, 100k
## documents), then its audit; JSON + plot in bench/results/soak-<time>/ (docs/reliability.md). Root mounts the
## data dir's tmpfs for the disk fault. soak-short: five minutes on 2,000 documents.
SOAK_MINUTES ?= 60
SOAK_DOCS ?= 100000
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install -q -e ".[test,bench]"
	touch $(BENCH_STAMP)

soak: $(BENCH_STAMP)
	$(BIN)/python -m bench.soak --minutes $(SOAK_MINUTES) --docs $(SOAK_DOCS)

soak-short: $(BENCH_STAMP)
	$(BIN)/python -m bench.soak --minutes 5 --docs 2000

## proto: regenerate the committed gRPC stubs in shared/proto from embedding.proto (commit the result)
proto: setup
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. shared/proto/embedding.proto

smoke: setup
	./scripts/smoke-test.sh

## docs: regenerate the README's configuration reference from shared/config.py, and docs/security.md's
## open routes and scope table from gateway/api/auth.py (as modules: the checkout's code, not an installed copy)
docs: setup
	$(BIN)/python -m scripts.config_reference --write README.md
	$(BIN)/python -m scripts.security_reference --write docs/security.md

clean:
	rm -rf var .pytest_cache .coverage .coverage.* htmlcov
