PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint types pytest serve bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pingpost demo

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/lint-imports

# mypy --strict over src/ and tests/ (the files are listed in pyproject.toml [tool.mypy])
types: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	HYPOTHESIS_PROFILE=ci $(BIN)/pytest

test: lint types pytest

serve: $(STAMP)
	$(BIN)/pingpost serve

bench: $(STAMP)
	$(BIN)/pingpost bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache pingpost.db pingpost.db-wal pingpost.db-shm
