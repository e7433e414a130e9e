# Every target bootstraps .venv/ first (idempotent: reinstalls only when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast test-adopter lint fmt bench migrate demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	mkdir -p $(VENV)/src && ln -sfn ../.. $(VENV)/src/keyscope  # mypy reads the package through it
	touch $(STAMP)

run: $(STAMP)  ## serve on 127.0.0.1:8000 (SQLite in the state dir unless KEYSCOPE_DATABASE_URL says otherwise)
	$(BIN)/keyscope serve

# Below this share of keyscope's lines covered, `make test` fails. CLI tests run the CLI in
# child processes, which coverage does not follow, so app/cli.py counts low.
COVERAGE_FLOOR := 90

test: lint  ## lint, then the whole suite on every core with coverage (PostgreSQL too when reachable; CI requires it)
	$(BIN)/pytest -n auto --cov --cov-report=term --cov-fail-under=$(COVERAGE_FLOOR)
	$(MAKE) test-adopter

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
	rm -rf $(VENV) var *.egg-info build $(ADOPTER)/.venv $(ADOPTER)/dist

# examples/adopter: a separate project that installs keyscope as a wheel (never editable) into
# its own venv and runs its own suite. Rebuilt and reinstalled whenever keyscope's sources change.
ADOPTER := examples/adopter
ADOPTER_BIN := $(ADOPTER)/.venv/bin
ADOPTER_STAMP := $(ADOPTER)/.venv/.installed
KEYSCOPE_SOURCES := pyproject.toml containers.py py.typed \
	$(shell find app providers migrations -name '*.py' -o -name '*.mako' -o -name '*.typed')

$(ADOPTER_STAMP): $(KEYSCOPE_SOURCES) $(ADOPTER)/pyproject.toml | $(STAMP)
	rm -rf $(ADOPTER)/dist build
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir $(ADOPTER)/dist .
	test -x $(ADOPTER_BIN)/python || $(PYTHON) -m venv $(ADOPTER)/.venv
	$(ADOPTER_BIN)/python -m pip install --quiet --upgrade pip
	$(ADOPTER_BIN)/python -m pip install --quiet --find-links $(ADOPTER)/dist -e '$(ADOPTER)[test]'
	$(ADOPTER_BIN)/python -m pip install --quiet --no-deps --force-reinstall $(ADOPTER)/dist/keyscope-*.whl
	touch $(ADOPTER_STAMP)

test-adopter: $(ADOPTER_STAMP)  ## the example adopter project's suite, on keyscope's wheel
	cd $(ADOPTER) && .venv/bin/python -m pytest -q
