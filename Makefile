# openelb: `make lab` shows the whole system; `make test` runs the quality gates and the tests.
# Both call `make setup` first, which installs everything on a fresh Debian machine (as root).

VENV    := .venv
PY      := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test lint typecheck pytest lab bench clean janitor

setup:
	@bash scripts/setup.sh

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy

lab: setup
	$(VENV)/bin/openelb lab

bench: setup
	$(VENV)/bin/openelb bench

# Remove leftovers (namespaces, processes) of earlier crashed runs of the testbed.
janitor: setup
	$(PY) -m openelb.lab.janitor

clean:
	rm -rf build openelb/dataplane/_packet*.so openelb/dataplane/_packet.c ext/*.c
	rm -f openelb/speaker/_heartbeat*.so  # speaker: native heartbeat pacer
