# One command each: `make demo` runs the pipeline end to end on the embedded default,
# `make test` runs the tests. Both set themselves up (venv, install, model fetch) idempotently.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
ELONG  := $(VENV)/bin/elong
STAMP  := $(VENV)/.installed
MODELS := .cache/models/smollm2-135m/model.safetensors
export DAGSTER_HOME := $(CURDIR)/.dagster
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup models realtext-data demo demo-train ui check test test-fast bench lint clean-lake

setup: $(STAMP) $(DAGSTER_HOME)/dagster.yaml

# torch is installed first and pinned, so that nothing pulls a CUDA build onto a CPU machine.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

models: $(MODELS)

$(MODELS): | $(STAMP)
	$(PY) -m models.registry

# The data jobs of orchestration/jobs.py, in one process (elong demo), then what was found.
demo: setup models realtext-data
	$(ELONG) demo

# The same, then frozen token scores, the configured training runs and their evaluation.
demo-train: setup models realtext-data
	$(ELONG) demo --train

# The Dagster UI on the same instance the demo wrote to (lineage, partitions, automation).
ui: setup
	$(VENV)/bin/dg dev

# Load the code location the way the UI and the daemon do.
check: setup
	$(VENV)/bin/dg check defs

test: setup models realtext-data
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

bench: setup models
	$(PY) -m bench

lint: setup
	$(VENV)/bin/ruff check .

# The gensim 4.4.0 wheel from the package registry: it holds the Wikipedia sample that
# lakehouse/realtext.py reads (the demo's real-text slice, bench/realtext, tests).
realtext-data: | $(STAMP)
	ls .cache/wheels/gensim-4.4.0-*.whl >/dev/null 2>&1 || \
		$(PY) -m pip download --quiet --no-deps gensim==4.4.0 -d .cache/wheels

clean-lake:
	rm -rf lake data .dagster
