# ForestGate developer commands. Everything runs from .venv, which the first target builds.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODELS ?= models
HOST ?= 127.0.0.1
PORT ?= 50051
METRICS_PORT ?= 9090

.PHONY: run test lint bench proto models clean docker-smoke

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; ForestGate needs Python 3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

DATA ?= data
REPORTS ?= reports

# The demo models are trained once, from the small generator preset with the demo
# configuration (about a minute on 2 cores); delete $(MODELS)/ to rebuild them. The stamp's
# number changes when the bundles need something older ones lack (2: the decision API's
# reference data), so `make run` trains the next version.
$(MODELS)/.demo-trained-2: $(STAMP)
	$(BIN)/forestgate train --data $(DATA)/small --repository $(MODELS) --report $(REPORTS) \
		--config demo --preset small --run demo
	touch $@

# The documented build: the default preset (1M attempts) and the full configuration. Each run
# adds the next version of approval and retry to $(MODELS) and writes $(REPORTS)/<run>/.
models: $(STAMP)
	$(BIN)/forestgate train --data $(DATA)/default --repository $(MODELS) --report $(REPORTS) \
		--config full --preset default

# Serves until Ctrl-C (SIGINT drains like SIGTERM and exits 0).
run: $(STAMP) $(MODELS)/.demo-trained-2
	$(BIN)/forestgate serve --model-repository $(MODELS) --host $(HOST) --port $(PORT) \
		--metrics-port $(METRICS_PORT)

# The Redis store's tests start a real redis-server, and the Prometheus tests run promtool
# (Debian's prometheus package): installed here when missing and run as root (best effort,
# quiet); without them those tests skip and say why.
TEST_PACKAGES := redis-server prometheus
test: $(STAMP)
	@{ command -v redis-server && command -v promtool; } >/dev/null || [ "$$(id -u)" != 0 ] || \
		! command -v apt-get >/dev/null || \
		{ apt-get install -y -qq $(TEST_PACKAGES) || { apt-get update -qq && \
		apt-get install -y -qq $(TEST_PACKAGES); }; } >/dev/null 2>&1 || true
	$(BIN)/python -m pytest

# The Dockerfile built on a local Debian base (debootstrap; no registry is needed) and run, then
# checked from outside: health, a tritonclient inference, Score, /metrics, spans and a SIGTERM
# drain. As root it installs Debian's docker.io and starts dockerd when no engine answers, and
# removes every image and container it made. Also part of `make test`.
docker-smoke: $(STAMP)
	$(BIN)/python -m pytest -m docker -v -rP tests/deploy/test_docker_smoke.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	rm -rf build/typecheck && mkdir -p build/typecheck/forestgate
	ln -s $(CURDIR)/forestgate/*.py build/typecheck/forestgate/
	ln -s $(CURDIR)/engine build/typecheck/forestgate/engine
	ln -s $(CURDIR)/compiler build/typecheck/forestgate/compiler
	ln -s $(CURDIR)/server build/typecheck/forestgate/server
	ln -s $(CURDIR)/protos build/typecheck/forestgate/protos
	ln -s $(CURDIR)/clients build/typecheck/forestgate/clients
	ln -s $(CURDIR)/payments build/typecheck/forestgate/payments
	ln -s $(CURDIR)/training build/typecheck/forestgate/training
	cd build/typecheck && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p forestgate

# Engine, batcher, server and load-tool benchmarks, one after the other (about 40 minutes on
# 2 cores); each writes its tables and plots to bench/results/.
bench: $(STAMP)
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/shim_blocks.py
	$(BIN)/python bench/features.py
	$(BIN)/python bench/batcher.py
	$(BIN)/python bench/server.py
	$(BIN)/python bench/python_versions.py
	$(BIN)/python bench/overload_costs.py
	$(BIN)/python bench/tracing.py
	$(BIN)/python bench/decision.py
	$(BIN)/python bench/guardrail.py
	$(BIN)/python bench/load.py

proto: $(STAMP)
	$(BIN)/python protos/generate.py

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache
