# Two commands on a fresh machine with Python 3.11+ and make:
#   make run    install everything (ffmpeg included, no root) and run the main job end to end
#   make test   install everything and run the whole suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run up test lint bench bench-copyright bench-e2e chaos plan deploy clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11 or newer is needed") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

install: $(STAMP)

run: install
	$(BIN)/trackflow demo

up: install
	$(BIN)/trackflow up

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .trackflow .pytest_cache
