# Techbridge: `make run` starts everything, `make test` tests everything.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
PY := .venv/bin/python
PYTEST_ARGS ?=
SEED ?= 1
ONLY ?=
QUICK ?=

.PHONY: help install kafka-jars run up down status seed test bench eval-matching clean

help: ## show the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(TOOLS)/bin/uv:
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

.venv/.synced: pyproject.toml uv.lock shared/pyproject.toml services/*/pyproject.toml gateway/pyproject.toml | $(UV)
	$(UV) sync --frozen --all-packages
	@touch $@

install: .venv/.synced kafka-jars ## install Python packages and the Kafka broker jars

kafka-jars: ## fetch Apache Kafka from Maven Central into .cache/kafka
	@deploy/kafka/kafka.sh fetch

run: install ## start the whole platform in the foreground (Ctrl-C stops it); an empty platform is seeded unless SEED=0
	@if [ "$(SEED)" != "0" ]; then $(PY) deploy/local/seed.py --if-empty --wait 300 & fi; \
	  $(PY) deploy/local/stack.py run

seed: install ## load the demo world into the running platform (make up first); running it again changes nothing
	@$(PY) deploy/local/seed.py

up: install ## start the platform in the background; returns when all is ready
	@$(PY) deploy/local/stack.py up

down: ## stop what `make up` started
	@$(PY) deploy/local/stack.py down

status: ## show what runs and whether it is ready
	@$(PY) deploy/local/stack.py status

test: install ## run every test on a real Kafka broker and a real PostgreSQL server
	@pg_url=$$(deploy/postgres/pg.sh start) && \
	  TECHBRIDGE_TEST_PG_URL=$$pg_url $(PY) -m pytest $(PYTEST_ARGS)

bench: install ## every benchmark against stacks it starts; figures vs goals in tests/bench/results/SUMMARY.md [ONLY=a,b QUICK=1]
	@pg_url=$$(deploy/postgres/pg.sh start) && \
	  TECHBRIDGE_TEST_PG_URL=$$pg_url $(PY) tests/bench/run_all.py \
	    $(if $(ONLY),--only $(ONLY)) $(if $(filter-out 0,$(QUICK)),--quick)

eval-matching: install ## matching quality on BEIR files: CORPUS= QUERIES= RUN= [QRELS=]
	@$(PY) -m techbridge_matching.evaluation --corpus $(CORPUS) --queries $(QUERIES) --run $(RUN) $(if $(QRELS),--qrels $(QRELS))

clean: ## remove local data, caches and environments
	rm -rf .data .cache .venv $(TOOLS)
