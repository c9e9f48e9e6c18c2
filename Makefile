# Two commands on a fresh machine: `make run` and `make test` (both set up .venv first).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= out
SHEET ?= campaigns/spring-launch.csv

# No outside calls from Prefect; a project-local Prefect home unless one is given.
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90
export PREFECT_HOME ?= $(CURDIR)/.cache/prefect
export HF_HUB_OFFLINE := 1

.PHONY: venv run test bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --editable '.[test]'
	touch $@

run: venv
	$(VENV)/bin/brandbatch run $(SHEET) --out $(OUT)

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

bench: venv
	$(PY) bench/run_all.py

clean:
	rm -rf $(OUT) .cache .pytest_cache
