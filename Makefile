# Two commands on a fresh machine with Python 3.11+ and make:
#   make run    install everything (ffmpeg included, no root) and run the main job end to end
#   make test   install everything and run the whole suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

TOOLS  := .venv-tools
ENV    ?= dev

.PHONY: install tools browser run up test lint bench bench-copyright bench-e2e bench-clients chaos plan deploy infra-docs clean

$(STAMP): pyproject.toml devstack/pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11 or newer is needed") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]' -e ./devstack
	@touch $@

install: $(STAMP)

# checkov pins its own boto3: it lives in a venv of its own
$(TOOLS)/.installed:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet checkov==3.3.30
	@touch $@

tools: $(TOOLS)/.installed

# Debian's Chromium for the web client's tests: apt as root, else unpacked into .venv without root
browser:
	@sh tests/support/install_chromium.sh $(VENV)/chromium

run: install
	$(BIN)/trackflow demo

up: install
	$(BIN)/trackflow up

test: install tools browser
	$(BIN)/python -m pytest

chaos: install
	TRACKFLOW_CHAOS_SCALE=full $(BIN)/python -m pytest tests/chaos -s

bench: install
	$(BIN)/python -m bench.media

bench-copyright: install
	$(BIN)/python -m bench.copyright

bench-e2e: install
	$(BIN)/python -m bench.e2e

bench-clients: install
	$(BIN)/python -m bench.clients

plan:
	infra/deploy.sh plan $(ENV)

deploy:
	infra/deploy.sh apply $(ENV)

infra-docs: install
	$(BIN)/python infra/readmes.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/python -m trackflow_devstack.typecheck

clean:
	rm -rf $(VENV) $(TOOLS) .trackflow .pytest_cache
