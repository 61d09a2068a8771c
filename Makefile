# The two commands the README opens with: `make run` and `make test`.
# Everything they need comes from PyPI: uv is bootstrapped into .tools/ when it is not on PATH,
# and the environment is built from uv.lock (Python 3.11 or later already on the machine).
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config.yaml
BOOTSTRAP ?= localhost:9092

.PHONY: run detector test unit integration lint typecheck bench env clean

# A venv without pip of its own, filled by the interpreter's pip (~4 s instead of ~11 s); where
# that pip is missing or too old for --python, the venv's own pip does it.
.tools/bin/uv:
	$(PYTHON) -m venv --without-pip .tools
	$(PYTHON) -m pip --python .tools/bin/python install --quiet --disable-pip-version-check \
	  'uv==0.13.9' 2>/dev/null || { .tools/bin/python -m ensurepip --default-pip >/dev/null \
	  && .tools/bin/python -m pip install --quiet --disable-pip-version-check 'uv==0.13.9'; }

# Two environments in one .venv: `make run` installs the runtime dependencies only (no pytest,
# mypy, moto...: a fresh clone streams in seconds), `--inexact` so that it never removes what
# `make test` installed; `make test` (and `make env`) install the dev group as well.
# `make run` leaves bytecode to the first start, which compiles only the modules it imports (about
# half of the ~1,000 files compiling everything at install would take); `make test` compiles it all
# at install, so that the many processes the tests start each start in ~0.7 s, not ~3 s.
$(VENV)/.runtime: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --no-dev --inexact
	@touch $@

$(VENV)/.dev: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --compile-bytecode
	@touch $@ $(VENV)/.runtime

env: $(VENV)/.dev

run: $(VENV)/.runtime
	$(BIN)/streaming-producer run --config $(CONFIG)

# The example detector under test (docs/evaluation.md): `make detector` next to
# `make run CONFIG=examples/evaluation.yaml`.
detector: env
	$(BIN)/python examples/card_testing_detector.py --bootstrap-servers $(BOOTSTRAP) \
		--topic transactions --alerts-topic fraud-alerts

test: env lint typecheck
	$(BIN)/pytest

unit: env
	$(BIN)/pytest tests/unit

integration: env
	$(BIN)/pytest tests/integration

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: env
	$(BIN)/mypy

bench: env
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
