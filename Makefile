# Two commands set everything up on a fresh machine with Python 3.11+ and make:
#   make demo   - a demo cluster on embedded defaults (examples/demo_cluster.py)
#   make test   - ruff, mypy --strict and the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test lint typecheck pytest bench tools clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP) $@

demo: $(STAMP)
	$(BIN)/trioactors demo

# Outside programs some tests use (Erlang/OTP as the reference peer, tmux as
# a real terminal, iproute2 for network namespaces); installed when possible,
# otherwise those tests skip and say why.
tools:
	@bash scripts/install-test-tools.sh

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(TEST_STAMP)
	$(BIN)/mypy --strict trioactors tests examples benchmarks

pytest: $(TEST_STAMP)
	$(BIN)/pytest -q -p no:cacheprovider

test: tools lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/local.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
