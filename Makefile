# taskmesh — `make run` starts the whole suite, `make test` runs every test.
# Both do their own set-up: a pinned uv in .tools/, the locked virtualenv in .venv/,
# and the generated gRPC stubs in protos/gen/.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
PY := .venv/bin/python
SERVICES := auth users tasks notifications analytics
PROTO_SOURCES := $(shell find protos/taskmesh -name '*.proto' 2>/dev/null)
PROJECT_FILES := uv.lock pyproject.toml $(wildcard */pyproject.toml services/*/pyproject.toml libs/*/pyproject.toml tools/*/pyproject.toml)

export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON_BOOT)

.PHONY: help setup proto admin events-dlq run $(addprefix run-,$(SERVICES) gateway) test test-unit test-e2e lint format lock clean
.PHONY: k8s-render k8s-apply
.PHONY: compose-secrets compose-up compose-down images

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_%-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

$(UV):
	$(PYTHON_BOOT) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check 'uv==$(UV_VERSION)'

.venv/.synced: $(UV) $(PROJECT_FILES)
	$(UV) sync --frozen --quiet
	touch $@

protos/gen/.stamp: .venv/.synced protos/generate.py $(PROTO_SOURCES)
	$(PY) protos/generate.py
	touch $@

setup: protos/gen/.stamp ## create .venv from uv.lock and generate the gRPC stubs

proto: .venv/.synced ## regenerate the gRPC stubs from protos/
	$(PY) protos/generate.py
	touch protos/gen/.stamp

admin: setup ## EMAIL=address: create that admin, or promote the account (password from TASKMESH_ADMIN_PASSWORD or a prompt)
	@test -n "$(EMAIL)" || { echo "usage: make admin EMAIL=you@example.com" >&2; exit 2; }
	$(PY) -m taskmesh_auth.admin --email '$(EMAIL)'

events-dlq: setup ## SERVICE=name lists its dead-lettered events; ARGS="replay --service name ID" replays
	$(PY) -m taskmesh_chassis.events.dlq $(or $(ARGS),list --service $(SERVICE))

run: setup ## run the whole suite at http://127.0.0.1:$${PUBLIC_PORT:-8000}
	$(PY) -m taskmesh_localrun

$(addprefix run-,$(SERVICES) gateway): run-%: setup ## run-<service>: run one service alone
	$(PY) -m taskmesh_localrun --only $*

test: setup ## unit, integration and end-to-end tests
	$(PY) -m pytest

test-unit: setup ## only the tests that need no server
	$(PY) -m pytest -m "not integration and not e2e"

lint: setup ## ruff and mypy
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy libs/chassis/src gateway/src services/*/src tools/localrun/src

format: setup ## apply ruff's formatting and safe fixes
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

lock: $(UV) ## re-resolve uv.lock after changing a pyproject.toml
	$(UV) lock

OVERLAY ?= dev
KUBECTL ?= kubectl

k8s-render: ## OVERLAY=dev|prod: print the Kubernetes manifests kustomize builds (default dev)
	@$(KUBECTL) kustomize k8s/overlays/$(OVERLAY)

k8s-apply: ## OVERLAY=dev|prod: kubectl apply -k that overlay to the current kubectl context (default dev)
	$(KUBECTL) apply -k k8s/overlays/$(OVERLAY)

COMPOSE ?= docker compose -f compose/compose.yaml

compose-secrets: ## create the compose deployment's missing secret files in compose/secrets/
	$(PYTHON_BOOT) compose/make_secrets.py

compose-up: compose-secrets ## build the images and run the suite with docker compose, until all are healthy
	$(COMPOSE) up --detach --build --wait --wait-timeout 600

compose-down: ## stop and remove the compose deployment's containers (its volumes stay)
	$(COMPOSE) down

images: ## build every image (REGISTRY/<component>:TAG, see compose/.env.example)
	$(COMPOSE) build gateway auth users tasks notifications analytics

clean: ## remove the virtualenv, generated code and local data
	rm -rf .venv .tools protos/gen .data
