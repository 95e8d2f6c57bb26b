# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/var/dagster_home

.PHONY: demo test check lint typecheck pytest dev bench clean

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

## Set up, then run the flight_delays flow on the NYC flights 2013 data.
demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/hive run flight_delays --quiet

## Set up, then run every check: lint, format, types, and the whole test suite.
test: $(STAMP)
	$(MAKE) check

check: lint typecheck pytest

lint:
	$(BIN)/ruff check hive_pipelines hive_pipelines_tests benchmarks
	$(BIN)/ruff format --check hive_pipelines hive_pipelines_tests benchmarks

typecheck:
	$(BIN)/mypy

pytest:
	$(BIN)/pytest

## The Dagster UI and daemon on http://127.0.0.1:3000 with the local DAGSTER_HOME.
dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000

## Ratios of flight_delays run times to plain pandas (see docs/benchmarks.md).
bench: $(STAMP)
	$(BIN)/python -m benchmarks.flight_delays

clean:
	rm -rf $(VENV) var
