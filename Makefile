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
# cdk deploy asks before a change that broadens access; CI passes never (its approval is the prod environment's).
CDK_APPROVAL ?= broadening
# Stages synthesized with --strict: a warning fails them (prod's alarms must reach a real address).
STRICT_STAGES ?= prod
CDK_STRICT = $(if $(filter $(STAGE),$(STRICT_STAGES)),--strict)
# ASSEMBLY=cdk.out: diff and deploy a cloud assembly already synthesized (CI promotes prod's), not a new synth.
CDK_APP = $(if $(ASSEMBLY),--app "$(ASSEMBLY)")
EVENT ?= events/hello.json
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)
export PYTHONPATH := $(CURDIR):$(CURDIR)/functions/consumer
# The tools, the tests and the local runs start hundreds of Python processes: each module is compiled the
# first time one imports it, into __pycache__ (ignored by git, by the asset's packaging, removed by make
# clean), whatever the shell's PYTHONDONTWRITEBYTECODE says; setup compiles nothing ahead, most of what it
# installs is never imported (docs/decisions/074-suite-speed.md). The function's asset carries its own.
export PYTHONDONTWRITEBYTECODE :=
# jsii prints a banner on Node 20 unless its major version is listed here.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

LOCAL_STAGE ?= local
LOCAL_TEMPLATE := cdk.out/SqsConsumer-$(LOCAL_STAGE).template.json
SOURCES := app.py cdk.json requirements.txt $(wildcard infra/*.py) $(shell find functions -name '*.py')

.PHONY: help setup clean event new-event test runtime-tests lint typecheck unit synth diff deploy deploy-role destroy lint-workflows local invoke schema schema-check schema-release bench bench-docs chaos stateful-record upgrade-check rehearse release smoke

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: ## Create .venv and node_modules with the pinned versions (idempotent; its parts beside each other)
	@$(MAKE) --no-print-directory --jobs=4 --output-sync=target $(STAMP) $(NODE_STAMP)

# uv installs the pinned set in seconds (pip takes minutes, mostly compiling aws-cdk-lib).
UV_VERSION := $(shell sed -n 's/^uv==//p' requirements-dev.txt)
UV_STAMP := $(VENV)/.uv
DEV_STAMP := $(VENV)/.dev
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
RUNTIME_STAMP := .cache/.runtime-installed

# Setup's parts: .venv with uv first, then the dev environment, checkov's and the runtime's Python, each
# on its own (make setup builds them beside each other).
$(STAMP): $(DEV_STAMP) $(CHECKOV_STAMP) $(RUNTIME_STAMP)
	touch $@

$(UV_STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt pyproject.toml | $(UV_STAMP)
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/uv pip install --quiet -r requirements-dev.txt
	# The project itself, editable: the sqs-publish and sqs-dlq commands.
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/uv pip install --quiet --no-deps -e .
	# The Lambda emulator, taken once from the pinned aws-sam-cli wheel into .cache/rie/.
	$(BIN)/python -c "from local.emulator import rie_binary; rie_binary()"
	touch $@

# checkov in its own environment: its pins conflict with cfn-lint's (requirements-checkov.txt).
$(CHECKOV_STAMP): requirements-checkov.txt | $(UV_STAMP)
	test -x $(CHECKOV_VENV)/bin/python || $(BIN)/uv venv --quiet --python $(PYTHON) $(CHECKOV_VENV)
	VIRTUAL_ENV=$(CURDIR)/$(CHECKOV_VENV) $(BIN)/uv pip install --quiet -r requirements-checkov.txt
	touch $@

$(RUNTIME_STAMP): requirements-rehearse.txt | $(UV_STAMP)
	# CPython 3.14, the runtime's Python, into .cache/python3.14/ when none is found (infra/runtime_python.py).
	$(BIN)/python -m infra.runtime_python install > /dev/null
	# LocalStack, the second CloudFormation engine of make rehearse, into .cache/localstack under that 3.14.
	$(BIN)/python -m infra.localstack install
	mkdir -p $(@D) && touch $@

# What setup, synth, the tests and the local runs make, wherever they make it (.gitignore lists the same).
CLEANED := $(VENV) node_modules cdk.out dist .cache .mypy_cache .ruff_cache .pytest_cache .hypothesis __pycache__ *.egg-info

clean: ## Remove all that setup, synth, tests and local runs made: the tree is as a fresh clone's
	find . -path ./.git -prune -o -type d \( $(foreach name,$(CLEANED),-name '$(name)' -o) -false \) \
		-prune -exec rm -rf {} +
	find . -path ./.git -prune -o -type f -name '*.pyc' -exec rm -f {} +

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# make test runs the static checks at a lower priority (CHECKS_NICE): they time nothing, and the tests'
# CPUs go to the tests first (docs/decisions/074-suite-speed.md).
lint: $(STAMP) ## ruff lint and format check
	$(CHECKS_NICE) $(BIN)/ruff check .
	$(CHECKS_NICE) $(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy (strict, pydantic plugin)
	$(CHECKS_NICE) $(BIN)/mypy .

lint-workflows: $(STAMP) ## actionlint on .github/workflows, zizmor (its strictest persona) on them and dependabot.yml: 0 findings
	$(CHECKS_NICE) $(BIN)/actionlint
	$(CHECKS_NICE) $(BIN)/zizmor --offline --persona=auditor --quiet .github

# The suite runs as two pytest runs beside each other: the end-to-end tests, which mostly wait (on the emulator's
# runtimes, moto_server, a visibility timeout, a killed process's redelivery), with one worker more than CPUs,
# handed out a file at a time, longest first (tests/e2e/conftest.py); and the others, which mostly compute
# (synths, scans, builds), with one worker a CPU (worksteal keeps them busy when a few long tests land on
# one). So no more than one worker a CPU computes at once: more starve the tests that time a crash or a
# deadline (docs/decisions/074-suite-speed.md).
SUITE_WORKERS ?= $(shell nproc 2>/dev/null || echo 1)
E2E_WORKERS ?= $(shell echo $$(( $(SUITE_WORKERS) + 1 )))
PYTEST_PARALLEL := -n $(SUITE_WORKERS) --dist worksteal
UNIT_PARALLEL := -n auto --dist worksteal

# The end-to-end tests print as they go; beside them, the other tests, the checks and the function's tests on
# 3.14 each print their output whole when they end (--output-sync). Any failure fails make test, once all have
# run (--keep-going).
test: setup ## The whole suite: lint, types, unit, infra, integration, e2e; the function's tests on 3.14, beside each other (about 5 min on 2 CPUs from a fresh clone, 4 once set up)
	@$(MAKE) --no-print-directory --keep-going --jobs=7 suite-e2e checks

.PHONY: suite-e2e suite-others checks
suite-e2e: $(STAMP)
	$(BIN)/python -m pytest -n $(E2E_WORKERS) --dist loadfile --no-loadscope-reorder tests/e2e

suite-others: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) tests --ignore=tests/e2e

checks: $(STAMP)
	@$(MAKE) --no-print-directory --keep-going --output-sync=target suite-others lint lint-workflows typecheck runtime-tests \
		CHECKS_NICE="nice -n 10"

runtime-tests: $(STAMP)
	$(BIN)/python -m tests.runtime

unit: $(STAMP) ## Unit tests only, on every CPU (about 14 s on 2 CPUs)
	$(BIN)/python -m pytest $(UNIT_PARALLEL) tests/unit

local: setup $(LOCAL_TEMPLATE) ## Run the whole system locally: publish a demo mix, account for it (ARGS=--serve keeps it running, CONSUMER=orders the FIFO one)
	$(BIN)/python -m local --template $(LOCAL_TEMPLATE) $(if $(CONSUMER),--consumer $(CONSUMER)) demo $(ARGS)

COUNT ?= 1000

BREAKER ?= on

chaos: setup $(LOCAL_TEMPLATE) ## Fault run: COUNT (1,000) messages of every fault, then the accounting (COUNT=200 is quicker); OUTAGE=120: the orders API down 120 s instead (BREAKER=off to compare)
ifdef OUTAGE
	$(BIN)/python -m local.outage_run --template $(LOCAL_TEMPLATE) --outage $(OUTAGE) --breaker $(BREAKER)
else
	$(BIN)/python -m local.fault_run --template $(LOCAL_TEMPLATE) --messages $(COUNT) --crashes 3
endif

invoke: setup $(LOCAL_TEMPLATE) ## Invoke the function once under the Lambda emulator: make invoke EVENT=events/hello.json
	$(BIN)/python -m local --template $(LOCAL_TEMPLATE) invoke $(EVENT)

$(LOCAL_TEMPLATE): $(SOURCES) | setup
	@$(CHECK_SETTINGS) $(LOCAL_STAGE)
	$(CDK_SYNTH) --quiet -c stage=$(LOCAL_STAGE) > /dev/null

bench: $(STAMP) $(LOCAL_TEMPLATE) ## Benchmarks beside their references, each target met or missed (exit 1 on a miss); tables in .cache/bench/ (minutes)
	$(BIN)/python -m benchmarks

bench-docs: $(STAMP) ## make bench, writing its tables to docs/performance.md and docs/cost.md
	$(BIN)/python -m benchmarks --docs

event: $(STAMP) ## Write a sample event and its expected outcome: make event TYPE=hello PAYLOAD='{"name": "x"}' [NAME=...] [EXPECT=quarantine] [SHAPE=sns|eventbridge|eventbridge-plain|offloaded]
	$(BIN)/python -m local.sample_event --type "$(TYPE)" --payload '$(PAYLOAD)' $(if $(NAME),--name "$(NAME)") $(if $(FORCE),--force) $(if $(EXPECT),--expect "$(EXPECT)") $(if $(SHAPE),--shape "$(SHAPE)")

new-event: $(STAMP) ## Scaffold an event type (model, handler and its test, route, sample, schema): make new-event TYPE=invoice.paid [FIELD=invoice_id], or its next version: VERSION=2
	$(BIN)/python -m local.new_event --type "$(TYPE)" $(if $(FIELD),--field "$(FIELD)") $(if $(VERSION),--version "$(VERSION)")

.PHONY: logs
logs: $(STAMP) ## The deployed function's log lines: make logs STAGE=dev [SINCE=15m] [EVENT_ID=... | TRACE_ID=...] [FOLLOW=1]
	$(BIN)/sqs-logs --stage $(STAGE) --since "$(or $(SINCE),15m)" $(if $(EVENT_ID),--event-id "$(EVENT_ID)") \
		$(if $(TRACE_ID),--trace-id "$(TRACE_ID)") $(if $(FOLLOW),--follow)

.PHONY: plan
PLAN_USAGE = usage: make plan STAGE=prod RATE=400 HANDLER_MS=120 [ARGS="--max-age 60s --outage 10m --simulate"] (RATE in messages a second, or ARGS="--per-day N" or "--csv FILE"; exit 1 when a check fails)
plan: $(STAMP) ## Capacity plan of STAGE for a workload: make plan STAGE=prod RATE=400 HANDLER_MS=120 [ARGS="--max-age 60s --outage 10m --simulate"]
	@if [ -z "$(RATE)$(findstring --per-day,$(ARGS))$(findstring --csv,$(ARGS))" ]; then echo '$(PLAN_USAGE)' >&2; exit 2; fi
	$(BIN)/sqs-plan --stage $(STAGE) $(if $(RATE),--rate "$(RATE)") $(if $(HANDLER_MS),--handler-ms "$(HANDLER_MS)") $(ARGS)

schema: $(STAMP) ## Regenerate schema/events.schema.json (every version of every event type) from the models and releases
	$(BIN)/python -m publisher.schema > schema/events.schema.json

schema-check: $(STAMP) ## Fail when a model breaks its released schema (schema/<type>/v<N>.json) either way; make test runs it too
	$(BIN)/python -m publisher.schema --check

schema-release: $(STAMP) ## Record the models' schemas as released (schema/<type>/v<N>.json), once schema-check passes
	$(BIN)/python -m publisher.schema --release
	$(BIN)/python -m publisher.schema > schema/events.schema.json

# A bad setting is one line from infra.check_settings, not the CDK CLI's report of a failed app.
CHECK_SETTINGS = $(BIN)/python -m infra.check_settings
# cdk synth in a process group of its own: Ctrl-C or SIGTERM to make stops the CLI and the app it runs,
# and leaves no synth.lock behind (infra/cdk_run.py). Not for deploy: its approval prompt needs the terminal.
CDK_SYNTH = $(BIN)/python -m infra.cdk_run synth

synth: setup ## Synthesize the stack of STAGE (default dev) into cdk.out/
	@$(CHECK_SETTINGS) $(STAGE)
	$(CDK_SYNTH) --quiet -c stage=$(STAGE) $(CDK_STRICT)

stateful-record: setup ## Write infra/stateful-resources.json, every stage's stateful resources (review its diff: a changed one needs an upgrade note)
	$(BIN)/python -m infra.identity write

upgrade-check: setup ## What an upgrade from a release replaces or orphans: make upgrade-check FROM=<tag or commit> [STAGES="prod"] (exit 1 on a stateful one)
	$(BIN)/python -m infra.upgrade_check --from "$(FROM)" $(foreach stage,$(STAGES),--stage $(stage))

# LocalStack installs once into .cache/localstack (requirements-rehearse.txt) under the runtime's CPython 3.14.
rehearse: setup ## Upgrade rehearsal on LocalStack with messages in the queue and DLQ: make rehearse [FROM=<tag or commit>] [STAGE=dev] (exit 1 on a lost one)
	$(BIN)/python -m infra.rehearse $(if $(FROM),--from "$(FROM)") --stage "$(STAGE)"

release: setup ## The wheel and the asset zip of this version into dist/, the same bytes wherever built (TAG=v<version> also tags the commit)
	$(BIN)/python -m infra.release $(if $(TAG),--tag "$(TAG)")

diff: setup ## Compare STAGE with what is deployed
	@$(CHECK_SETTINGS) $(STAGE)
	cdk diff $(CDK_APP) -c stage=$(STAGE) $(CDK_STRICT) $(CDK_DIFF_ARGS)

deploy: setup ## Deploy STAGE to the current AWS account and region
	@$(CHECK_SETTINGS) $(STAGE)
	cdk deploy $(CDK_APP) -c stage=$(STAGE) $(CDK_STRICT) --require-approval $(CDK_APPROVAL) --outputs-file cdk.out/outputs-$(STAGE).json

deploy-role: setup ## The roles GitHub Actions deploys with, by OIDC, one per environment: make deploy-role GITHUB_REPOSITORY=owner/name [DEPLOY_ENVIRONMENTS="dev prod"] [OIDC_PROVIDER_ARN=...]
	cdk deploy --app "$(BIN)/python -m infra.deploy_role" -c github_repository=$(GITHUB_REPOSITORY) \
		$(if $(DEPLOY_ENVIRONMENTS),-c deploy_environments="$(DEPLOY_ENVIRONMENTS)") \
		$(if $(OIDC_PROVIDER_ARN),-c oidc_provider_arn=$(OIDC_PROVIDER_ARN)) \
		--require-approval $(CDK_APPROVAL) --outputs-file cdk.out/outputs-deploy-role.json

smoke: setup ## After make deploy: a canary hello through STAGE, waited for until it succeeds (exit 1 otherwise)
	$(BIN)/python -m operations.smoke --stage "$(STAGE)"

destroy: setup ## Delete the stack of STAGE (its queues, table, logs and payloads too, unless the stage sets retain_data, as prod does)
	@$(CHECK_SETTINGS) $(STAGE)
	@$(BIN)/python -m infra.empty_payload_bucket $(STAGE)
	cdk destroy -c stage=$(STAGE) --force
