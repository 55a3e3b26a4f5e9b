# payalloc — every entry point people and CI use. Needs only python3 (>= 3.11).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := build/demo
PA     := $(BIN)/payalloc --db $(DEMO)/demo.db

.DEFAULT_GOAL := help
.PHONY: help setup run test lint fmt bench soak clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-6s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("payalloc needs Python >= 3.11") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(BIN)/python -m compileall -q payalloc
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install payalloc with its dev tools

run: $(STAMP) ## build a throwaway demo ledger from sample_data/, run the nightly job, show the result
	@rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(PA) init
	$(PA) import clients  sample_data/clients.csv
	$(PA) import events   sample_data/events.csv
	$(PA) import charges  sample_data/charges.csv
	$(PA) import payments sample_data/payments.csv
	$(PA) gl map unapplied_default 2150-unapplied-client-payments
	$(PA) gl map self_pay_ar 1210-self-pay-receivable
	$(PA) run-job
	$(PA) unallocated
	$(PA) client show C-1003
	$(PA) check

test: $(STAMP) ## lint with ruff, then run the whole test suite
	$(BIN)/ruff check .
	@# One worker per core; whole files per worker, so that module fixtures (generated ledgers) are built once.
	$(BIN)/python -m pytest -q -n auto --dist loadfile

lint: $(STAMP) ## ruff and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/mypy

fmt: $(STAMP) ## fix what ruff can fix
	$(BIN)/ruff check --fix .

bench: $(STAMP) ## time import and run-job against plain stdlib baselines (writes BENCHMARKS.md)
	@# Bytecode as a regular (non-editable) install has it: each process would otherwise compile
	@# payalloc again (~25 ms) wherever PYTHONDONTWRITEBYTECODE is set.
	$(BIN)/python -m compileall -q payalloc
	$(BIN)/python benchmarks/run.py

SOAK ?= --seconds 120
soak: $(STAMP) ## randomized soak, ~2 min: processes at once, killed at random, ledger audited (SOAK="--seconds N --seed S")
	$(BIN)/python benchmarks/soak.py $(SOAK)

clean: ## remove the virtualenv, the demo ledger and caches
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
