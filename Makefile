# PoC Dojo: the one entry point. `make run` serves the platform, `make test` runs everything.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha1sum | cut -c1-12)

.PHONY: help install services db run up down test lint typecheck bench-api bench-search bench-dojo bench-voice openapi clean

help:
	@echo "make run        set up everything and start the platform (foreground)"
	@echo "make test       set up everything, then ruff, mypy and the whole test suite"
	@echo "make bench-api  PoC API load benchmark: Ray Serve vs plain uvicorn"
	@echo "make bench-search  search at 1M PoCs / 1,000 tenants vs a naive ILIKE baseline"
	@echo "make bench-dojo    S dojos x P typists vs the reference y-websocket server"
	@echo "make bench-voice   voice rooms of 2-16 (mixing vs forwarding) vs a direct aiortc call"
	@echo "make openapi    regenerate openapi.json from the code"
	@echo "make down       stop a platform started with 'pocdojo up --detach'"

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip sync -q --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

services:
	bash scripts/ensure-services.sh

db: install services
	$(BIN)/pocdojo migrate
	$(BIN)/pocdojo seed demo

run: db
	$(BIN)/pocdojo up

up: db
	$(BIN)/pocdojo up --detach

down:
	$(BIN)/pocdojo down

lint: install
	$(BIN)/ruff check pocdojo tests migrations loadtests
	$(BIN)/ruff format --check pocdojo tests migrations loadtests

typecheck: install
	$(BIN)/mypy

test: install services lint typecheck
	$(BIN)/pocdojo migrate
	$(BIN)/pocdojo seed demo
	$(BIN)/pytest -q -rs -p no:cacheprovider

bench-api: db
	bash scripts/ensure-tools.sh wrk:wrk
	$(BIN)/python -m loadtests.bench_api

bench-search: install services
	bash scripts/ensure-tools.sh wrk:wrk
	$(BIN)/python -m loadtests.bench_search

bench-dojo: db
	bash scripts/ensure-tools.sh node:nodejs npm:npm
	$(BIN)/python -m loadtests.bench_dojo

bench-voice: install
	$(BIN)/python -m loadtests.bench_voice $(BENCH_VOICE_ARGS)

openapi: install
	$(BIN)/pocdojo openapi --write

clean:
	rm -rf $(VENV) var bench-results .mypy_cache .ruff_cache
