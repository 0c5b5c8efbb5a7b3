# PoC Dojo: the one entry point. `make run` serves the platform, `make test` runs everything.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha1sum | cut -c1-12)

.PHONY: help install services db run up down test lint typecheck cluster-tools cluster-manifests bench-api bench-tracing bench-search bench-dojo bench-dojo-cpu bench-voice bench-reports bench-video openapi clean

help:
	@echo "make run        set up everything and start the platform (foreground)"
	@echo "make test       set up everything, then ruff, mypy and the whole test suite"
	@echo "make bench-api  PoC API load benchmark: Ray Serve vs plain uvicorn"
	@echo "make bench-tracing  PoC API with tracing off / default / on (no exporter)"
	@echo "make bench-search  search at 1M PoCs / 1,000 tenants vs a naive ILIKE baseline"
	@echo "make bench-dojo    S dojos x P typists vs the reference y-websocket server"
	@echo "make bench-dojo-cpu server CPU per typing edit, gateway vs the reference server"
	@echo "make bench-voice   voice rooms of 2-16 (mixing vs forwarding) vs a direct aiortc call"
	@echo "make bench-reports dashboard from rollups vs aggregate queries; exports (POCS=1000000)"
	@echo "make bench-video   40-PoC yearly film on Ray, 1 vs 2 workers; encoding vs the ffmpeg CLI"
	@echo "make openapi    regenerate openapi.json from the code"
	@echo "make cluster-manifests  render the production Kubernetes manifests (OUTPUTS=cdk outputs JSON)"
	@echo "make cluster-tools      install promtool and checkov into cluster/.tools (make test does it)"
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
	$(BIN)/ruff check pocdojo tests migrations loadtests cluster
	$(BIN)/ruff format --check pocdojo tests migrations loadtests cluster

typecheck: install
	$(BIN)/mypy

# Offline validators of cluster/ (promtool from Debian's prometheus package, checkov in its own
# venv because its pins conflict with Ray's); installed into cluster/.tools, git-ignored.
cluster-tools:
	bash cluster/scripts/install-tools.sh

# Production Kubernetes manifests (serveConfigV2 derived from cluster/kuberay/serve-config.yaml).
cluster-manifests: install
	mkdir -p cluster/build
	$(BIN)/python -m cluster.kuberay.render $(if $(OUTPUTS),--outputs $(OUTPUTS)) > cluster/build/manifests.yaml
	@echo "wrote cluster/build/manifests.yaml"

test: install services lint typecheck cluster-tools
	bash scripts/ensure-tools.sh pdftoppm:poppler-utils node:nodejs npm:npm
	$(BIN)/pocdojo migrate
	$(BIN)/pocdojo seed demo
	$(BIN)/pytest -q -rs -p no:cacheprovider

bench-api: db
	bash scripts/ensure-tools.sh wrk:wrk
	$(BIN)/python -m loadtests.bench_api

# Tracing overhead on the PoC API (plain uvicorn): off vs default (nothing sampled) vs on.
bench-tracing: db
	bash scripts/ensure-tools.sh wrk:wrk
	$(BIN)/python -m loadtests.bench_tracing

bench-search: install services
	bash scripts/ensure-tools.sh wrk:wrk
	bash scripts/ensure-bench-postgres.sh
	$(BIN)/python -m loadtests.bench_search

bench-dojo: db
	bash scripts/ensure-tools.sh node:nodejs npm:npm
	$(BIN)/python -m loadtests.bench_dojo

# The server's CPU per edit alone (raw-socket clients, fixed rate): A/B of the edit path.
bench-dojo-cpu: db
	bash scripts/ensure-tools.sh node:nodejs npm:npm
	$(BIN)/python -m loadtests.bench_dojo_cpu

bench-reports: install services
	$(BIN)/python -m loadtests.bench_reports --pocs $(or $(POCS),1000000) $(BENCH_REPORTS_ARGS)

bench-voice: install
	$(BIN)/python -m loadtests.bench_voice $(BENCH_VOICE_ARGS)

# Installs Debian's ffmpeg (the baseline) with apt when it is missing and we are root.
bench-video: install
	command -v ffmpeg >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg; }
	$(BIN)/python -m loadtests.bench_video

openapi: install
	$(BIN)/pocdojo openapi --write

clean:
	rm -rf $(VENV) var bench-results .mypy_cache .ruff_cache
