# Thin wrappers: the work is in pipeline/, service/ and tox.ini. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
RAW_DATA ?= data/Admission_Predict_Ver1.1.csv
ARTEFACTS ?= artefacts
SCHEDULER ?= local
WORKERS ?= 2
LUIGID_HOST ?= 127.0.0.1
LUIGID_PORT ?= 8082
PORT ?= 3000

BOOTSTRAP := .venv-tox
TOX := $(BOOTSTRAP)/bin/tox
ENV := .tox/dev
PY := $(ENV)/bin/python
ENV_STAMP := $(ENV)/.locked-from-requirements

ifeq ($(SCHEDULER),central)
SCHEDULER_ARGS := --scheduler-host $(LUIGID_HOST) --scheduler-port $(LUIGID_PORT)
else ifeq ($(SCHEDULER),local)
SCHEDULER_ARGS := --local-scheduler
else
$(error SCHEDULER must be 'local' or 'central', not '$(SCHEDULER)')
endif
PIPELINE := $(PY) -m pipeline run
# Paths go through the environment, quoted: a space (or any other character) in them stays in them.
export RAW_DATA ARTEFACTS
PIPELINE_ARGS = --raw-data "$$RAW_DATA" --artefacts-dir "$$ARTEFACTS" $(SCHEDULER_ARGS) --workers $(WORKERS)
# FORCE_PROMOTE="reason": promote the run's model even if the promotion gate refuses it (the reason is recorded).
export FORCE_PROMOTE
GATE_ARGS = $(if $(FORCE_PROMOTE),--force-promote "$$FORCE_PROMOTE")

.PHONY: help env-create pipeline register build-bento build-docker run-docker stop-docker test-docker test bench-tests audit lint format clean lock visualiser stop-visualiser

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(TOX):
	@echo "Creating $(BOOTSTRAP)/ with tox from requirements/bootstrap.txt (about 10 s)"
	$(PYTHON) -m venv $(BOOTSTRAP)
	$(BOOTSTRAP)/bin/pip install --quiet --disable-pip-version-check -r requirements/bootstrap.txt

# pip prints nothing through tox for the 1-2 minutes it installs: count the installed packages meanwhile.
# Only the lock's packages count (the venv's own pip and setuptools are not in it: "137 of 135"), each
# name normalised as pip does (MarkupSafe-3.0.4.dist-info and markupsafe==3.0.4 are one package).
PROGRESS_EVERY ?= 10
normalise = tr 'A-Z_.' 'a-z--'
$(ENV_STAMP): $(TOX) requirements/dev.txt tox.ini
	@locked=$$(sed -n 's/==.*//p' requirements/dev.txt | $(normalise)); total=$$(echo "$$locked" | wc -l); \
	echo "Creating $(ENV)/ from requirements/dev.txt with tox: $$total packages, about 2 minutes"; \
	count() { ls -d $(ENV)/lib/python*/site-packages/*.dist-info 2>/dev/null | sed 's|.*/||; s|-[^-]*\.dist-info$$||' \
	  | $(normalise) | grep -cxF "$$locked"; }; \
	( while sleep $(PROGRESS_EVERY); do echo "  ... $$(count) of $$total packages installed"; done ) & ticker=$$!; \
	$(TOX) run -e dev --recreate; status=$$?; kill $$ticker 2>/dev/null; \
	echo "$(ENV)/: $$(count) of $$total packages installed (tox exit $$status)"; exit $$status
	touch $@

env-create: $(ENV_STAMP) ## create the locked environment (.tox/dev) with tox

pipeline: $(ENV_STAMP) ## run the pipeline through BuildBento (RAW_DATA=..., ARTEFACTS=artefacts, SCHEDULER=local|central, WORKERS=2, FORCE_PROMOTE=reason)
	$(PIPELINE) BuildBento $(PIPELINE_ARGS) $(GATE_ARGS)

register: $(ENV_STAMP) ## run the pipeline only up to the registered model (RegisterModel)
	$(PIPELINE) RegisterModel $(PIPELINE_ARGS)

build-bento: $(ENV_STAMP) ## the pipeline through the promotion gate and BuildBento; MODEL_VERSION=<tag>: a Bento of that model
	$(PIPELINE) BuildBento $(PIPELINE_ARGS) $(MODEL_ARGS) $(GATE_ARGS)

.PHONY: bench-pipeline-scale
SCALE_ROWS ?= 500 100000 1000000
SCALE_SHAPES ?= synthetic jittered
bench-pipeline-scale: $(ENV_STAMP) ## the whole pipeline at SCALE_ROWS rows per data shape (SCALE_SHAPES): time per task, peak memory, PASS/FAIL at 1M rows (120 s, 1500 MB)
	$(PY) bench/pipeline_scale.py --rows $(SCALE_ROWS) --shapes $(SCALE_SHAPES)

# --- Aliases: which registered model is served (docs/model-card.md, "Aliases and a way back") ----------
.PHONY: aliases promote rollback

aliases: $(ENV_STAMP) ## the champion and challenger, and every move of them, newest first
	@$(PY) -m pipeline aliases

promote: $(ENV_STAMP) ## make a registered model champion by hand: TAG=admissions:<version> REASON="why"
	@$(PY) -m pipeline promote "$$TAG" --reason "$$REASON"

rollback: $(ENV_STAMP) ## champion back to the one it replaced (or TAG=...): REASON="why"
	@$(PY) -m pipeline rollback --reason "$$REASON" $(if $(TAG),--to "$$TAG")

export TAG REASON

# --- Container image and compose stack (docs/docker.md) -------------------------------------------------
# MODEL_VERSION=<tag>: that registered model instead of the pipeline's; BENTO_TAG=<tag>: that Bento.
MODEL_ARGS = $(if $(MODEL_VERSION),--model-version $(MODEL_VERSION))
STACK = DOCKER_IMAGE="$(DOCKER_IMAGE)" MODEL_VERSION="$(MODEL_VERSION)" PORT="$(PORT)" MONITORING="$(MONITORING)" POSTGRES="$(POSTGRES)" SCALE="$(SCALE)" bash deploy/stack.sh
DOCKER_TESTS ?= tests/docker

build-docker: $(ENV_STAMP) ## build the image (pipeline through Containerize); BENTO_TAG=<tag>, MODEL_VERSION=<tag>
	$(PIPELINE) Containerize $(PIPELINE_ARGS) $(MODEL_ARGS) $(if $(BENTO_TAG),--bento $(BENTO_TAG))

run-docker: ## start the compose stack, wait until healthy (DOCKER_IMAGE, MODEL_VERSION, PORT, MONITORING=1, POSTGRES=1, SCALE)
	@$(STACK) up

stop-docker: ## stop this checkout's compose stack, every profile (COMPOSE_PROJECT_NAME; volumes are kept)
	@$(STACK) down

# The container suite waits on the engine more than it computes: its files run side by side on
# DOCKER_TEST_WORKERS workers, each with compose stacks of its own (0: one process).
DOCKER_TEST_WORKERS ?= 2
test-docker: $(ENV_STAMP) ## container tests with the real engine (DOCKER_TEST_WORKERS=2 side by side): image, stack, faults
	$(ENV)/bin/pytest -m docker $(if $(filter-out 0,$(DOCKER_TEST_WORKERS)),-n $(DOCKER_TEST_WORKERS) --dist loadfile) $(DOCKER_TESTS)

# The suite on TEST_WORKERS pytest-xdist workers (docs/testing.md): tests go one by one to whichever
# worker is free, except an xdist_group (tests that share an expensive module fixture) that stays on one.
TEST_WORKERS ?= 3
test: $(ENV_STAMP) ## run the test suite on TEST_WORKERS (3) workers; TEST_WORKERS=0: one process; PYTEST_ADDOPTS passes options
	$(ENV)/bin/pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadgroup)

# The test loop's speed target as a benchmark (docs/testing.md): wall clock, the tree's CPU and the
# machine's busy core-seconds per run, and a verdict against TEST_TARGET_S.
BENCH_TEST_RUNS ?= 1
TEST_TARGET_S ?= 240
bench-tests: $(ENV_STAMP) ## time `make test` BENCH_TEST_RUNS (1) times: wall, CPU, how busy the machine was, PASS/MISS at TEST_TARGET_S (240)
	$(PY) bench/test_loop.py --runs $(BENCH_TEST_RUNS) --target-s $(TEST_TARGET_S) --command "$(MAKE) test TEST_WORKERS=$(TEST_WORKERS)"

# Known vulnerabilities in both locks: service.txt (what the image installs) and dev.txt. The script's
# exit 3 (make reports it as 2): the vulnerability service did not answer, said in one sentence (never
# a pass). docs/testing.md#audit
AUDIT_LOCKS ?= requirements/service.txt requirements/dev.txt
audit: $(ENV_STAMP) ## pip-audit both locks against requirements/audit-ignore.toml (reviewed exceptions, each with a reason)
	$(PY) -m scripts.audit $(AUDIT_LOCKS)

lint: $(ENV_STAMP) ## ruff (lint and format check) and mypy
	$(ENV)/bin/ruff check .
	$(ENV)/bin/ruff format --check .
	$(ENV)/bin/mypy core pipeline service scripts

format: $(ENV_STAMP) ## apply ruff's fixes and formatting
	$(ENV)/bin/ruff check --fix .
	$(ENV)/bin/ruff format .

clean: ## remove generated artefacts (not the environment, not the BentoML store)
	rm -rf artefacts build .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -not -path './.tox/*' -not -path './$(BOOTSTRAP)/*' -prune -exec rm -rf {} +

lock: $(TOX) ## re-lock requirements/*.txt from requirements/*.in in clean venvs (LOCKS="dev": only those)
	bash .ci/lock $(LOCKS)

# Luigi's central scheduler and its web visualiser (scripts/luigid.py; state, history and logs in var/luigid/)
visualiser: $(ENV_STAMP) ## start luigid and its visualiser in the background on 127.0.0.1:LUIGID_PORT (8082)
	@$(PY) -m scripts.luigid start --port $(LUIGID_PORT)

stop-visualiser: $(ENV_STAMP) ## stop luigid (SIGTERM: it saves its state first)
	@$(PY) -m scripts.luigid stop

# --- Prediction service (issue 3): serve, users, benchmarks --------------------------------------------
SERVE_HOST ?= 127.0.0.1
.PHONY: serve users-add bench-service bench-compose openapi export-predictions

serve: $(ENV_STAMP) ## serve the API on PORT (default 3000) with the promoted model (ADMISSIONS_MODEL_TAG= another); prints the docs URL
	@echo "Admissions API on http://$(SERVE_HOST):$(PORT)  docs (Swagger UI): http://$(SERVE_HOST):$(PORT)/  OpenAPI: http://$(SERVE_HOST):$(PORT)/docs.json"
	$(PY) -m bentoml serve service.api:AdmissionsAPI --host $(SERVE_HOST) --port $(PORT)

openapi: $(ENV_STAMP) ## regenerate docs/openapi.yaml (what /docs.json serves with the default settings)
	$(PY) scripts/write_openapi.py docs/openapi.yaml

export-predictions: $(ENV_STAMP) ## the prediction log as CSV: OUT=file.csv [SINCE=2026-12-01] [UNTIL=...] [MODEL=admissions:<v>]
	@test -n "$(OUT)" || { echo "usage: make export-predictions OUT=predictions.csv [SINCE=...] [UNTIL=...] [MODEL=...]" >&2; exit 2; }
	$(PY) -m service.log_export --out "$(OUT)" $(if $(SINCE),--since "$(SINCE)") $(if $(UNTIL),--until "$(UNTIL)") $(if $(MODEL),--model "$(MODEL)")

users-add: $(ENV_STAMP) ## add a service user: make users-add NAME=alice (password from stdin)
	@test -n "$(NAME)" || { echo "usage: make users-add NAME=alice" >&2; exit 2; }
	$(PY) -m service.users add $(NAME)

bench-service: $(ENV_STAMP) ## load-test the service (needs wrk and hey: apt-get install -y wrk hey; /predict, /predict_batch, jobs)
	PY=$(PY) bash bench/service.sh

bench-compose: $(ENV_STAMP) ## the split topology's cost: /predict on the compose stack vs in-process, same run (needs wrk and an image; DOCKER_IMAGE=)
	PY=$(PY) bash bench/compose.sh
