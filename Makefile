# Quick start: `make repro` runs the pipeline on the default parameters, `make test` the tests.
# Both create .venv (Python 3.11) and install the pinned dependencies first, once.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: setup browser repro test test-fast test-slow bench deps clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==24.3.1
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test]'
	touch $(STAMP)

repro: $(STAMP)
	dvc repro

# The browser checks of the HTML pages need Debian's chromium (tests skip, saying so, without it).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "warning: could not install chromium; the browser checks will be skipped"

test: $(STAMP) browser
	python -m pytest

# The unit tests alone (about a minute): the maths, the library, the house; no stage, DVC or Prefect.
test-fast: $(STAMP)
	python -m pytest -m "not slow and not stage"

test-slow: $(STAMP)
	python -m pytest -m slow

bench: $(STAMP)
	python benchmarks/bench_epoch.py

# Each stage's code deps in dvc.yaml, rewritten from the imports (tests/test_dvc_yaml.py fails on drift).
deps: $(STAMP)
	dividemix deps

clean:
	rm -rf data checkpoints artifacts report plots metrics/eval.json metrics/noise.json
