# Every target bootstraps .venv/ first (idempotent: reinstalls only when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint fmt bench migrate demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	mkdir -p $(VENV)/src && ln -sfn ../.. $(VENV)/src/keyscope  # mypy reads the package through it
	touch $(STAMP)

run: $(STAMP)  ## serve on 127.0.0.1:8000 (SQLite under ./var unless KEYSCOPE_DATABASE_URL says otherwise)
	$(BIN)/keyscope serve

# Below this share of keyscope's lines covered, `make test` fails. CLI tests run the CLI in
# child processes, which coverage does not follow, so app/cli.py counts low.
COVERAGE_FLOOR := 90

test: lint  ## lint, then the whole suite on every core with coverage (PostgreSQL too when reachable; CI requires it)
	$(BIN)/pytest -n auto --cov --cov-report=term --cov-fail-under=$(COVERAGE_FLOOR)

test-fast: $(STAMP)  ## the suite without the slow (load) tests, on every core, no lint
	$(BIN)/pytest -n auto -m "not slow" -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(STAMP)
	$(BIN)/keyscope migrate

demo: $(STAMP)
	$(BIN)/keyscope demo

bench: $(STAMP)  ## side-by-side benchmark; writes bench/results/, docs/performance.{md,svg}; prints the table
	$(BIN)/python -m bench --docs docs

clean:
	rm -rf $(VENV) var *.egg-info
