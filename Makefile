# taskmesh — `make run` starts the whole suite, `make test` runs every test.
# Both do their own set-up: a pinned uv in .tools/, the locked virtualenv in .venv/,
# the generated gRPC stubs in protos/gen/, and the web app (web/): its node_modules from
# web/package-lock.json and its build in web/dist/ (Node.js >= 20.19, docs/web.md).

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
.PHONY: node web web-api chromium nginx screenshots
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

# --- The web app (docs/web.md) ---------------------------------------------------------------

NPM := npm --prefix web
WEB_DEPS := web/node_modules/.package-lock.json
# What the build reads: a change to any of these rebuilds web/dist.
WEB_SOURCES := $(shell find web/src web/public -type f 2>/dev/null) web/index.html \
	web/vite.config.ts $(wildcard web/tsconfig*.json) web/package.json web/package-lock.json

# Vite 7 runs on Node.js 20.19+ or 22.12+ (it loads its ES-module config with require()).
NODE_VERSION_CHECK := const [major, minor] = process.versions.node.split(".").map(Number); \
	process.exit((major === 20 && minor >= 19) || (major === 22 && minor >= 12) || major > 22 ? 0 : 1)

node:
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { \
		echo "Node.js and npm are needed for the web app (>= 20.19): https://nodejs.org or your package manager" >&2; \
		exit 1; }
	@node -e '$(NODE_VERSION_CHECK)' || { \
		echo "Node.js $$(node --version) cannot build the web app: it needs 20.19 or later (on 22.x: 22.12 or later)" >&2; \
		exit 1; }

# npm ci installs exactly the committed lock, and only when the lock changed: with
# node_modules current, nothing here touches the network.
$(WEB_DEPS): web/package-lock.json | node
	$(NPM) ci --no-audit --no-fund
	touch $@

web/dist/index.html: $(WEB_DEPS) $(WEB_SOURCES) | node
	$(NPM) run build
	touch $@

web: web/dist/index.html ## build the web app into web/dist (only when its sources changed)

web-api: setup $(WEB_DEPS) ## regenerate the web app's typed API client from the gateway's OpenAPI document
	$(PY) -m taskmesh_gateway.openapi_document > web/src/api/generated/openapi.json.partial
	mv web/src/api/generated/openapi.json.partial web/src/api/generated/openapi.json
	$(NPM) run api

# The browser tests drive a Chromium: CHROMIUM_PATH, else `chromium` (or `chromium-browser`)
# on PATH; as root on Debian it is installed when missing.
chromium:
	@if [ -n "$${CHROMIUM_PATH:-}" ]; then \
		test -x "$$CHROMIUM_PATH" || { echo "CHROMIUM_PATH=$$CHROMIUM_PATH is not an executable" >&2; exit 1; }; \
	elif ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update && apt-get install -y --no-install-recommends chromium fonts-liberation; \
		else \
			echo "The browser tests need Chromium: install it (sudo apt-get install chromium fonts-liberation) or set CHROMIUM_PATH to a Chromium or Chrome executable" >&2; \
			exit 1; \
		fi; \
	fi

# tests/deploy/test_web_serving.py runs the web image's nginx.conf with a local nginx; as root
# on Debian it is installed when missing (nginx-light where the release still has it).
nginx:
	@if ! command -v nginx >/dev/null 2>&1 && ! test -x /usr/sbin/nginx; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update && { apt-get install -y --no-install-recommends nginx-light \
				|| apt-get install -y --no-install-recommends nginx; }; \
		else \
			echo "The web image's nginx.conf is tested with a local nginx: install it (sudo apt-get install nginx-light)" >&2; \
			exit 1; \
		fi; \
	fi

screenshots: setup web chromium ## run the browser tests, saving the screenshots to docs/screenshots/
	SCREENSHOT_DIR=$(CURDIR)/docs/screenshots $(PY) -m pytest tests/web/test_browser.py

# --- The suite ---------------------------------------------------------------------------------

admin: setup ## EMAIL=address: create that admin, or promote the account (password from TASKMESH_ADMIN_PASSWORD or a prompt)
	@test -n "$(EMAIL)" || { echo "usage: make admin EMAIL=you@example.com" >&2; exit 2; }
	$(PY) -m taskmesh_auth.admin --email '$(EMAIL)'

events-dlq: setup ## SERVICE=name lists its dead-lettered events; ARGS="replay --service name ID" replays
	$(PY) -m taskmesh_chassis.events.dlq $(or $(ARGS),list --service $(SERVICE))

run: setup web ## run the whole suite, the web app at http://127.0.0.1:$${PUBLIC_PORT:-8000}/
	$(PY) -m taskmesh_localrun

$(addprefix run-,$(SERVICES) gateway): run-%: setup ## run-<service>: run one service alone
	$(PY) -m taskmesh_localrun --only $*

# pytest runs last: its closing line is the verdict CI reads.
test: setup web chromium nginx ## unit, integration, end-to-end and browser tests (the web app's too)
	$(NPM) test
	$(PY) -m pytest

test-unit: setup $(WEB_DEPS) ## only the tests that need no server (the web app's unit tests too)
	$(NPM) test
	$(PY) -m pytest -m "not integration and not e2e"

lint: setup $(WEB_DEPS) ## ruff and mypy; tsc and eslint for the web app
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy libs/chassis/src gateway/src services/*/src tools/localrun/src
	$(NPM) run lint

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
	$(COMPOSE) build gateway auth users tasks notifications analytics web

clean: ## remove the virtualenv, generated code, the web app's node_modules and build, local data
	rm -rf .venv .tools protos/gen .data web/node_modules web/dist
