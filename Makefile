# One command each: `make demo` runs the pipeline end to end on the embedded default,
# `make test` runs the tests. Both set themselves up (venv, install, model fetch) idempotently.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
ELONG  := $(VENV)/bin/elong
DAGSTER := $(VENV)/bin/dagster
STAMP  := $(VENV)/.installed
MODELS := .cache/models/smollm2-135m/model.safetensors
export DAGSTER_HOME := $(CURDIR)/.dagster
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
DEFS   := -m orchestration.definitions

.PHONY: setup models demo test test-fast bench lint clean-lake

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

# Per-shard assets run one partition at a time (one run each, as a backfill would); the
# index and the catalog, which read every shard, run once.
SHARD_ASSETS := corpus_shards,tokenized_docs,entropy_profiles,anchors,chunks,chunk_embeddings
demo: setup models
	@set -e; start=$$(date +%s); \
	run() { echo "== materialize $$*"; \
	  $(DAGSTER) asset materialize $(DEFS) --select "$$@" > $(DAGSTER_HOME)/last_run.log 2>&1 \
	    || { tail -60 $(DAGSTER_HOME)/last_run.log; exit 1; }; }; \
	$(ELONG) demo-corpora; \
	$(ELONG) register; \
	keys=$$($(ELONG) partitions); \
	for key in $$keys; do run $(SHARD_ASSETS) --partition "$$key"; done; \
	run vector_index; \
	for key in $$keys; do run retrieval_candidates,verified_dependencies --partition "$$key"; done; \
	run packed_dataset,baseline_dataset,token_weights; \
	for name in $$($(ELONG) partitions --runs); do run trained_model,evaluation --partition "$$name"; done; \
	run stats_catalog; \
	$(ELONG) queries; \
	echo; echo "demo finished in $$(( $$(date +%s) - start )) s"; \
	echo "UI:      DAGSTER_HOME=$(DAGSTER_HOME) $(DAGSTER) dev $(DEFS)"; \
	echo "SQL:     $(PY) -c \"import duckdb; print(duckdb.connect('lake/catalog.duckdb', read_only=True).sql('SELECT * FROM corpus_summary'))\""

test: setup models
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

bench: setup models
	$(PY) -m bench

lint: setup
	$(VENV)/bin/ruff check .

clean-lake:
	rm -rf lake data .dagster
