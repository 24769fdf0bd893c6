# Everything installs itself: uv is bootstrapped with pip when missing, then `uv sync --frozen` against uv.lock
# (--compile-bytecode: the packages are byte-compiled once at install, not at the first import of each run, nor at
# every run where PYTHONDONTWRITEBYTECODE is set).
SHELL := /bin/bash
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
RUN := $(UV) run --frozen

.PHONY: install test test-deploy postgres up down status demo backtest-demo ui emulator reliability lint bench bench-emulator \
	bench-throttle bench-sync bench-warehouse bench-freshness clean

# A venv when python3 has one; else (Debian without python3-venv) pip's --target with a link to its uv binary.
$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools && .tools/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) \
	  || (rm -rf .tools && python3 -m pip install --quiet --disable-pip-version-check --target .tools/pkgs \
	      uv==$(UV_VERSION) && mkdir -p .tools/bin && ln -sf $(CURDIR)/.tools/pkgs/bin/uv .tools/bin/uv)

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode
	touch $@

install: .venv/.synced

test: install
	$(RUN) ruff check .
	$(RUN) pytest -m "not slow"

# The production-like stack needs PostgreSQL's server binaries: Debian's package, installed when missing.
postgres:
	@command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || \
	  { $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq && \
	    $$( [ "$$(id -u)" = 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

# Postgres on 127.0.0.1 + the instance of deploy/dagster.yaml + a live dagster-daemon (a few minutes).
test-deploy: install postgres
	$(RUN) pytest -m slow tests/deploy

up: install postgres
	$(RUN) python -m deploy.stack up

down: install
	$(RUN) python -m deploy.stack down

status: install
	$(RUN) python -m deploy.stack status

demo: install
	$(RUN) python -m pipelines.demo

# After `make demo`: a seeded simulated day of offers, then price_backtest of channel us from the CLI.
backtest-demo: install
	DAGSTER_HOME=$(CURDIR)/.demo/dagster_home $(RUN) python -m pipelines.backtest_demo --channel us --run

ui: install
	DAGSTER_HOME=$(CURDIR)/.demo/dagster_home SALES_CHANNEL_DATA=$(CURDIR)/.demo/data \
	  $(RUN) dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

lint: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .

reliability: install
	$(RUN) python -m reliability

emulator: install
	$(RUN) spapi-emulator --port 8787 --seed-from $(CURDIR)/.demo/data --channels channels.yaml

bench: install
	$(RUN) python -m bench.offline --skus 1000000

bench-emulator: install
	$(RUN) python -m bench.emulator

bench-throttle: install postgres
	$(RUN) python -m bench.throttle

bench-sync: install
	$(RUN) python -m bench.sync

bench-warehouse: install
	$(RUN) python -m bench.warehouse

# Postgres + a live dagster-daemon + the emulator at Amazon's real rates with the module caps on (about 15 minutes).
bench-freshness: install postgres
	$(RUN) python -m bench.freshness

clean:
	rm -rf .demo .deploy .venv .tools .pytest_cache
