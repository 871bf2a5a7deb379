# The two commands of the quick start: `make up` and `make test`. Both work from a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# A CPU build of torch 2.13.0 installs from a local wheel on our dev and CI machines; pinning it keeps pip
# from pulling GBs of CUDA packages there. Override on a GPU host: make up TORCH="torch==2.13.0 --index-url ..."
TORCH  ?= torch==2.13.0

.PHONY: install up test test-asan lint format services clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel cffi

$(VENV)/.installed: $(BIN)/python pyproject.toml setup.py $(wildcard envs_c/*.h) envs_c/build.py envs_c/registry.py
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q --no-build-isolation -e '.[dev]'
	touch $@

install: $(VENV)/.installed

up: install
	$(BIN)/shoal up --demo

services: install
	$(BIN)/python tests/ensure_services.py

test: install services
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .shoal build *.egg-info envs_c/*.so
