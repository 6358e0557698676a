# Thin wrappers: the work is in pipeline/, service/ and tox.ini. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
RAW_DATA ?= data/Admission_Predict_Ver1.1.csv
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
PIPELINE_ARGS := --raw-data $(RAW_DATA) $(SCHEDULER_ARGS) --workers $(WORKERS)

.PHONY: help env-create pipeline test lint format clean lock visualiser stop-visualiser

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(TOX):
	$(PYTHON) -m venv $(BOOTSTRAP)
	$(BOOTSTRAP)/bin/pip install --quiet --disable-pip-version-check -r requirements/bootstrap.txt

$(ENV_STAMP): $(TOX) requirements/dev.txt tox.ini
	$(TOX) run -e dev --recreate
	touch $@

env-create: $(ENV_STAMP) ## create the locked environment (.tox/dev) with tox

pipeline: $(ENV_STAMP) ## run the pipeline (RAW_DATA=..., SCHEDULER=local|central, WORKERS=2)
	$(PIPELINE) RegisterModel $(PIPELINE_ARGS)

test: $(ENV_STAMP) ## run the test suite (pytest; PYTEST_ADDOPTS passes options)
	$(TOX) run -e test

lint: $(ENV_STAMP) ## ruff (lint and format check) and mypy
	$(TOX) run -e lint

format: $(ENV_STAMP) ## apply ruff's fixes and formatting
	$(ENV)/bin/ruff check --fix .
	$(ENV)/bin/ruff format .

clean: ## remove generated artefacts (not the environment, not the BentoML store)
	rm -rf artefacts build .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -not -path './.tox/*' -not -path './$(BOOTSTRAP)/*' -prune -exec rm -rf {} +

lock: $(TOX) ## re-lock requirements/*.txt from requirements/*.in in clean venvs
	bash .ci/lock

# Luigi's central scheduler and its web visualiser (scripts/luigid.py; state, history and logs in var/luigid/)
visualiser: $(ENV_STAMP) ## start luigid and its visualiser in the background on 127.0.0.1:LUIGID_PORT (8082)
	@$(PY) -m scripts.luigid start --port $(LUIGID_PORT)

stop-visualiser: $(ENV_STAMP) ## stop luigid (SIGTERM: it saves its state first)
	@$(PY) -m scripts.luigid stop
