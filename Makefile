# ambient-mesh developer commands. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STACK ?= dev
# Pulumi state: a file backend of this checkout (.pulumi-state/, git-ignored), unless PULUMI_BACKEND_URL is set in
# your environment. Never `pulumi login`: that would switch the backend of every other project of yours too.
STATE_DIR ?= $(CURDIR)/.pulumi-state
ifeq ($(origin PULUMI_BACKEND_URL),undefined)
PULUMI_BACKEND_URL := file://$(STATE_DIR)
endif
export PULUMI_BACKEND_URL

.PHONY: help venv doctor state up preview diff destroy diagnose dashboard test test-schema test-tools check lint typecheck lint-workflows test-policy render verify test-e2e kind-tier test-kind engine engine-diff test-engine graph report bench

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/python:
	$(PYTHON) -m tools.doctor --python-only
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

venv: $(BIN)/python ## create .venv, install runtime + dev requirements and the pinned schema modules
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/python -m tools.testkit.schemas fetch

doctor: $(BIN)/python ## preflight: tools and versions, Docker's CPUs/memory, node image, host port, inotify, leftover cluster
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/python -m tools.doctor --stack $(STACK)

state:
ifeq ($(PULUMI_BACKEND_URL),file://$(STATE_DIR))
	@mkdir -p "$(STATE_DIR)"
endif

# tools/repair.py first: what became of the stack's kind cluster since the last update (gone, stopped, a node removed)
# and its repair; it prints the arguments Pulumi then needs (--replace=<the cluster's command> when it is gone).
up: doctor state ## preflight, repair a vanished or stopped cluster, then the kind cluster and the whole mesh; on failure, what is not ready and why
	pulumi stack select $(STACK) --create
	@repair=$$($(BIN)/python -m tools.repair up --stack $(STACK)) || exit 1; \
	echo "pulumi up --yes --stack $(STACK) $$repair"; \
	pulumi up --yes --stack $(STACK) $$repair || { $(BIN)/python -m tools.diagnose --stack $(STACK); exit 1; }
	$(BIN)/python -m tools.repair answers --stack $(STACK)

preview: doctor state ## preflight, then show what `pulumi up` would change (a vanished cluster included)
	pulumi stack select $(STACK) --create
	@repair=$$($(BIN)/python -m tools.repair preview --stack $(STACK)) || exit 1; \
	if [ -n "$$repair" ]; then export PULUMI_K8S_DELETE_UNREACHABLE=true; fi; \
	echo "pulumi preview --diff --stack $(STACK) $$repair"; \
	pulumi preview --diff --stack $(STACK) $$repair

diff: ## what this working tree changes in every stack, field by field, offline: BASE=<git ref> (default: merge base with main)
	$(BIN)/python -m tools.diff $(if $(BASE),--base $(BASE)) $(DIFF_ARGS)

destroy: state $(BIN)/python ## delete everything the stack created, the kind cluster included (also when it is already gone)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/python -m tools.repair destroy --stack $(STACK)
	pulumi destroy --yes --stack $(STACK)

diagnose: $(BIN)/python ## the pods that are not ready and why: events, image pulls, ztunnel/istio-cni logs
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/python -m tools.diagnose --stack $(STACK)

test: venv ## unit tier: the model, each component and the whole graph under mocks; no cluster, no network
	$(BIN)/python -m pytest -q -n auto

test-schema: venv ## schema tier: every rendered object of every stack and switch against the published schemas
	$(BIN)/python -m pytest -q -n auto -m schema

test-tools: venv ## tools tier: render, diff (on git clones), doctor and the workflows' steps run end to end
	$(BIN)/python -m pytest -q -n auto -m tools

check: lint typecheck test test-schema test-tools ## everything CI runs before the engine tier

lint: venv ## ruff (lint + import order) and the layer contracts of components/ (import-linter)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: venv ## mypy
	$(BIN)/mypy components tools tests bench policy

lint-workflows: ## actionlint on .github/workflows (built from its Go module on first use, ~40 s; Go >= 1.25)
	tools/testkit/lint-workflows.sh

test-policy: venv ## the policy pack's and the workflows' unit tests
	$(BIN)/python -m pytest -q tests/unit/test_policy.py tests/unit/test_workflows.py

dashboard: ## open one of Istio's add-ons the stack runs: make dashboard ADDON=kiali|grafana|prometheus (127.0.0.1 only; Ctrl-C stops)
	$(PYTHON) -m tools.dashboard $(or $(ADDON),kiali) --stack $(STACK)

verify: ## prove the deployed mesh works: pods, label, curls, loop, ingress, ztunnel HBONE (standard library: no venv needed)
	$(PYTHON) -m tools.verify --stack $(STACK) $(VERIFY_ARGS)

test-e2e: venv ## e2e on a fresh kind cluster: up, verify, preview, destroy (Docker, kind, kubectl, pulumi)
	$(BIN)/python -m pytest tests/e2e -m e2e -v -rs

kind-tier: engine ## build the kind tier (Docker engine, kind, node image, every image the dev stack runs) offline
	tools/testkit/bootstrap-kind.sh

test-kind: venv kind-tier ## the dev stack through make up/verify/diagnose/destroy on a real kind cluster (the kind tier)
	$(BIN)/python -m pytest -m kind tests/kind -v -rs -s

engine: ## build the engine tier (Pulumi CLI, providers, kwok control plane) into ~/.cache/ambient-mesh-engine
	tools/testkit/bootstrap-engine.sh

engine-diff: venv engine ## the real plan: up of BASE, preview --diff of this tree, each stack on kwok with the real istiod (BASE=<git ref>)
	$(BIN)/python -m tests.engine.diff $(if $(BASE),--base $(BASE))

test-engine: venv engine ## real Pulumi engine + kubernetes provider against a local kwok cluster, offline
	$(BIN)/python -m pytest -m engine tests/engine -v -rs

render: venv ## write every object the stack creates to render/ (offline) and validate it against the schemas
	$(BIN)/python -m tools.render --validate

graph: venv ## rewrite README's dependency graph from the program
	$(BIN)/python -m tools.graph --write

report: venv ## resource requests per profile; registry pulls per up, before and after images are pulled once
	$(BIN)/python -m bench.resource_report
	$(BIN)/python -m bench.image_pulls

bench: venv ## time the default test suite
	$(BIN)/python -m bench.suite_time --runs 3
