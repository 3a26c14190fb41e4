# The project's vocabulary. Every target bootstraps what it needs from PyPI:
# a pinned uv in .tools/, then the locked workspace in .venv/; the TypeScript
# SDK's targets install clients/typescript/node_modules from its package-lock.json.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/uv/bin/uv
RUN := $(UV) run --locked --no-sync
TS := clients/typescript
# npm writes this hidden lockfile on every install: newer than package-lock.json
# and package.json means node_modules is current.
TS_DEPS_STAMP := $(TS)/node_modules/.package-lock.json

export UV_PYTHON := 3.11
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy
# The system's certificate store, not uv's bundled roots: machines behind a TLS-inspecting
# proxy trust its CA there (a fresh `env -i` shell otherwise fails to reach PyPI).
export UV_SYSTEM_CERTS := true

.PHONY: help setup sync ts-deps ts-build lint gen gen-check test test-py test-ts test-k8s run clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	@echo "setup: installing uv $(UV_VERSION) into $(TOOLS)/uv" >&2
	python3 -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

setup: sync ## Install uv and the locked workspace (idempotent)

sync: $(UV)
	$(UV) sync --locked --all-packages

ts-deps: $(TS_DEPS_STAMP) ## Install the TypeScript SDK's locked npm dependencies (npm ci, when stale)

$(TS_DEPS_STAMP): $(TS)/package-lock.json $(TS)/package.json
	cd $(TS) && npm ci --no-audit --no-fund
	touch $@

ts-build: ts-deps ## Build the TypeScript SDK (dist/) and its browser console
	npm --prefix $(TS) run build

lint: sync ts-deps ## ruff, mypy (strict on edgecore), buf lint, tsc on the TypeScript SDK
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy libs/edgecore/src/edgecore
	$(RUN) mypy services/public-rest/src services/edge-grpc/src services/push-hub/src \
		services/mock-backend/src services/edge-operator/src libs/edgeclient/src
	$(RUN) buf lint
	npm --prefix $(TS) run typecheck

gen: sync ts-deps ## Regenerate protobuf stubs, FlatBuffers bindings, signing vectors, TypeScript SDK code
	$(RUN) scripts/gen.sh

gen-check: sync ts-deps ## Fail if generated code differs from its sources
	$(RUN) scripts/gen.sh --check

test-py: sync ts-build ## Run the pytest suites (unit, integration, e2e; browser tests use chromium)
	scripts/chromium.sh >/dev/null
	EDGE_REQUIRE_BROWSER=1 $(RUN) scripts/run-tests.sh --ignore=tests/k8s

test-ts: ts-build ## Run the TypeScript SDK's tests (vitest)
	npm --prefix $(TS) test

test-k8s: sync ## Helm chart, images built with podman, tests/k8s incl. the operator against a local API server
	$(RUN) scripts/k8s-chart-test.sh
	scripts/images-build.sh >/dev/null
	scripts/k8s-control-plane.sh build
	EDGE_K8S_REQUIRE_API=1 $(RUN) scripts/run-tests.sh tests/k8s

.PHONY: test-cluster
test-cluster: sync ## Only the operator against a real kube-apiserver + etcd built from the Go proxy
	scripts/k8s-control-plane.sh build
	EDGE_K8S_REQUIRE_API=1 $(RUN) scripts/run-tests.sh tests/k8s/test_operator_cluster.py

test: lint gen-check test-ts test-py test-k8s ## Everything CI runs

run: sync ts-build ## Run the whole system locally (Ctrl-C stops it)
	$(RUN) python scripts/run_system.py

clean: ## Remove caches (keeps .tools and .venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache
