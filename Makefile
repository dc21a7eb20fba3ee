# One interface for people and CI: README and .ci/run call these targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHECKOV_VENV := .cache/checkov
NODE_STAMP := node_modules/.installed
STAGE ?= dev
EVENT ?= events/hello.json
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)
export PYTHONPATH := $(CURDIR):$(CURDIR)/functions/consumer
# jsii prints a banner on Node 20 unless its major version is listed here.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

LOCAL_STAGE ?= local
LOCAL_TEMPLATE := cdk.out/SqsConsumer-$(LOCAL_STAGE).template.json
SOURCES := app.py cdk.json requirements.txt $(wildcard infra/*.py) $(shell find functions -name '*.py')

.PHONY: help setup clean event test lint typecheck unit synth diff deploy destroy local invoke schema bench chaos

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(STAMP) $(NODE_STAMP) ## Create .venv and node_modules with the pinned versions (idempotent)

# uv installs the pinned set in seconds (pip takes minutes, mostly compiling aws-cdk-lib).
UV_VERSION := 0.13.8

$(STAMP): requirements.txt requirements-dev.txt requirements-checkov.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/uv pip install --quiet -r requirements-dev.txt
	# The project itself, editable: the sqs-publish and sqs-dlq commands.
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/uv pip install --quiet --no-deps -e .
	# The Lambda emulator, taken once from the pinned aws-sam-cli wheel into .cache/rie/.
	$(BIN)/python -c "from local.emulator import rie_binary; rie_binary()"
	# checkov in its own environment: its pins conflict with cfn-lint's (requirements-checkov.txt).
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	VIRTUAL_ENV=$(CURDIR)/$(CHECKOV_VENV) $(BIN)/uv pip install --quiet -r requirements-checkov.txt
	# CPython 3.14, the runtime's Python, into .cache/python3.14/ when none is found (infra/runtime_python.py).
	$(BIN)/python -m infra.runtime_python install > /dev/null
	touch $@

clean: ## Remove what setup, synth and the local runs made (.venv, node_modules, cdk.out, .cache)
	rm -rf $(VENV) node_modules cdk.out .cache .mypy_cache .ruff_cache .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy (strict, pydantic plugin)
	$(BIN)/mypy .

test: setup lint typecheck ## The whole suite: lint, types, unit, infra, integration, e2e; the function's tests on 3.14
	$(BIN)/python -m pytest
	$(BIN)/python -m tests.runtime

unit: $(STAMP) ## Unit tests only (fast)
	$(BIN)/python -m pytest tests/unit

local: setup $(LOCAL_TEMPLATE) ## Run the whole system locally: publish a demo mix, account for it (ARGS=--serve keeps it running)
	$(BIN)/python -m local --template $(LOCAL_TEMPLATE) demo $(ARGS)

chaos: setup $(LOCAL_TEMPLATE) ## Fault run: 1,000 messages of every fault through the local pipeline, then the accounting
	$(BIN)/python -m local.fault_run --template $(LOCAL_TEMPLATE) --messages 1000

invoke: setup $(LOCAL_TEMPLATE) ## Invoke the function once under the Lambda emulator: make invoke EVENT=events/hello.json
	$(BIN)/python -m local --template $(LOCAL_TEMPLATE) invoke $(EVENT)

$(LOCAL_TEMPLATE): $(SOURCES) | setup
	cdk synth --quiet -c stage=$(LOCAL_STAGE) > /dev/null

bench: $(STAMP) ## Benchmarks beside their references; writes docs/performance.md and docs/cost.md (a few minutes)
	$(BIN)/python -m benchmarks

.PHONY: plan
plan: $(STAMP) ## Capacity plan of STAGE for a workload: make plan STAGE=prod RATE=400 HANDLER_MS=120 [ARGS="--max-age 60s --simulate"]
	$(BIN)/sqs-plan --stage $(STAGE) --rate "$(RATE)" --handler-ms "$(HANDLER_MS)" $(ARGS)

event: $(STAMP) ## Write a sample event and its expected outcome: make event TYPE=hello PAYLOAD='{"name": "x"}' [NAME=...]
	$(BIN)/python -m local.sample_event --type "$(TYPE)" --payload '$(PAYLOAD)' $(if $(NAME),--name "$(NAME)") $(if $(FORCE),--force)

schema: $(STAMP) ## Regenerate schema/events.schema.json from the event models
	$(BIN)/python -m publisher.schema > schema/events.schema.json

synth: setup ## Synthesize the stack of STAGE (default dev) into cdk.out/
	cdk synth --quiet -c stage=$(STAGE)

diff: setup ## Compare STAGE with what is deployed
	cdk diff -c stage=$(STAGE)

deploy: setup ## Deploy STAGE to the current AWS account and region
	cdk deploy -c stage=$(STAGE) --require-approval broadening --outputs-file cdk.out/outputs-$(STAGE).json

destroy: setup ## Delete the stack of STAGE (the DLQ is retained)
	cdk destroy -c stage=$(STAGE)
