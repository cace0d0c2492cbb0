# Two commands for a fresh clone: `make dev` (serve locally) and `make test` (whole suite).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install service-deps test-deps dev cluster test lint proto clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

## What the service needs: the Python env, PostgreSQL and Redis (make dev, cluster, bench).
service-deps: $(STAMP)
	@bash scripts/install-system-deps.sh service

## Everything the test suite needs on top: promtool, openssl, curl, and for the clients Node
## (a supported one), npm packages, Chromium, fonts, PHP and protoc.
test-deps: $(STAMP)
	@bash scripts/install-system-deps.sh test
	@bash clients/web/scripts/ensure-deps.sh

install: test-deps

## Generate the protobuf/gRPC stubs from every proto/*.proto (committed; a test fails when they
## are stale).
proto: $(STAMP)
	PATH="$(VENV)/bin:$$PATH" $(PY) -m grpc_tools.protoc -Ichat_service/gen=proto --python_out=service \
	  --grpc_python_out=service --mypy_out=service --mypy_grpc_out=service proto/*.proto

## PostgreSQL + Redis on throwaway dirs, migrations, the service on 127.0.0.1:$${GRPC_PORT:-50051}.
dev: service-deps
	$(PY) -m chat_devstack dev

## PostgreSQL, Redis, three service processes and Envoy on loopback.
cluster: service-deps
	$(PY) -m chat_devstack cluster

## The web demo (clients/web/dist, served by `make cluster`): a supported Node, npm ci, vite build.
.PHONY: web
web:
	@ENSURE_DEPS=web bash clients/web/scripts/ensure-deps.sh
	cd clients/web && npm run build

lint: $(STAMP)
	$(VENV)/bin/ruff check service tests scripts loadtest deploy
	$(VENV)/bin/mypy

## Lint, type-check and run the whole test suite.
test: test-deps lint
	$(PY) -m pytest $(PYTEST_ARGS)

## Unit and contract tests only (seconds; the contract suites start their own redis-server).
.PHONY: test-fast
test-fast: service-deps
	$(PY) -m pytest tests/unit tests/contract $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

.PHONY: image-test
## Build the image with podman on a debootstrap base (cached) and run the chart's workloads with
## `podman kube play` (slow, needs root; not part of `make test`). Output: scripts/podman/last-run.txt.
image-test: install
	PY=$(abspath $(PY)) bash scripts/podman/run.sh

## Benchmark a local cluster (3 pods, Envoy, PostgreSQL, Redis) under load: ~8 min, results in
## loadtest/results/local/ (ignored by git; see BENCHMARKS.md). BENCH_ARGS="--quick" for a 30 s
## smoke run.
.PHONY: bench
bench: service-deps
	$(PY) -m loadtest.bench $(BENCH_ARGS)

## Build the service image from the Dockerfile with docker or podman, whichever exists:
## `make image IMAGE=ghcr.io/you/chat-service:0.1.0` (default chat-service:dev).
.PHONY: image
image:
	IMAGE="$(IMAGE)" bash scripts/build-image.sh
