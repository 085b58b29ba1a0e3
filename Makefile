PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint types pytest serve bench sim clean

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
	$(BIN)/ruff format --check src tests
	$(BIN)/lint-imports

# mypy --strict over src/ and tests/ (the files are listed in pyproject.toml [tool.mypy])
types: $(STAMP)
	$(BIN)/mypy

# Two workers (pytest-xdist; a module's tests stay on one): the suite waits on processes, sockets
# and deadlines more than on CPU. On the 2-core machine: 8 m 05 s with two workers; serially it took
# 16 m 52 s half an hour earlier on a busier machine. Every test makes its own database or schema,
# so workers share nothing.
pytest: $(STAMP)
	HYPOTHESIS_PROFILE=ci $(BIN)/pytest -n 2 --dist loadfile

test: lint types pytest

serve: $(STAMP)
	$(BIN)/pingpost serve

bench: $(STAMP)
	$(BIN)/pingpost bench

# The seeded simulator (docs/simulator.md): SEEDS seeds of STEPS steps on SQLite, and on PostgreSQL too
# when PINGPOST_TEST_POSTGRES_URL is set. Replay one with: python -m tests.sim --store sqlite --seed S
SEEDS ?= 50
STEPS ?= 300
sim: $(STAMP)
	@status=0; \
	$(BIN)/python -m tests.sim --store sqlite --seeds $(SEEDS) --steps $(STEPS) || status=1; \
	if [ -n "$$PINGPOST_TEST_POSTGRES_URL" ]; then \
		$(BIN)/python -m tests.sim --store postgres --seeds $(SEEDS) --steps $(STEPS) || status=1; \
	fi; \
	exit $$status

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache pingpost.db pingpost.db-wal pingpost.db-shm
