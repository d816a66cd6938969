"""Dagster at the partition counts users reach (issue 25, item 4): registration, the corpus
sensor's tick, the automation sensor's evaluation and the catalog refresh over a simulated
lake of N tiny shards.

Every shard is a ``<corpus>/<shard>`` dynamic partition of ``shards`` (and of
``root_shards`` for a root corpus), so what the orchestration does per tick grows with the
number of shard files, not with their size. This measures that growth on a real sqlite
``DagsterInstance`` (the default storage of a ``DAGSTER_HOME``, made from the project's
dagster.yaml) and the project's own code: a pipeline config with one root corpus
(``roots``, a ``--root-share`` of the shards) and one pool corpus (``pool``), each shard a
one-line JSONL file.

* **registration**: ``elong register`` (:func:`orchestration.cli.register`: list the
  corpora, read the known partitions, add the new ones to ``shards`` and ``root_shards``)
  against the raw ``instance.add_dynamic_partitions`` of the same keys into fresh
  partition sets (the listing excluded): the least Dagster itself needs;
* **corpus sensor tick** (``corpus_shard_sensor``, called with
  ``dg.build_sensor_context(instance=..., cursor=...)``): the first look after a register
  (every shard fingerprinted, local files hashed, no run requested); the steady state
  (nothing new); one new shard (exactly one run request); and the first look at a lake no
  one registered (N new shards: N run requests). Baseline: the raw listing of the shard
  files (``os.scandir`` and ``stat`` of both corpus folders), the least any discovery
  does;
* **automation evaluation** (``dg.evaluate_automation_conditions`` over the project's
  Definitions, as the ``default_automation_condition_sensor`` evaluates them): with every
  shard's stages materialized (ingest, unit counts, tokens, chunks, embeddings; the root
  shards' entropy, anchors, candidates, verification; the lake-wide assets), the first
  evaluation (no cursor), the steady state (nothing new), one new root shard ingested (its
  next stages requested, nothing else) and the index's fan-out (``vector_index``
  re-materialized: every root shard's retrieval requested). Baseline: the same evaluation
  at ``BASE_SHARDS`` (100) shards in the same run: the ratio is how it scales. The daemon
  also stores each evaluation and its cursor, which this does not time (the cursor's size
  is reported);
* **catalog refresh** (``stats_catalog``: :func:`lakehouse.catalog.build_catalog`, then
  its ``corpus_summary`` query) over a lake holding one (empty; ``shard_stats``: one row)
  Parquet file per shard of each per-shard table the views read (docs, quarantine,
  duplicates, shard stats, tokens, chunks; the root shards' entropy, anchors, candidates,
  verified rows). Baseline: one ``CREATE VIEW`` per lake table over the same
  ``read_parquet`` relations (each table's files bound once), the least a catalog of
  these tables does.

The materialized state is written straight into the instance's event log (one transaction
for all events, the rows ``report_runless_asset_event`` writes one by one at ~10 ms each),
so that seeding 100K materializations takes seconds, not a quarter of an hour; that step
is not timed.

``python -m bench dagster_scale [--shards 10000] [--points 1000,10000]`` prints the table
and writes bench/results/dagster_scale.json. Target: the sensor tick and the automation
evaluation at 10,000 shards each under 30 s on this machine (2 shared cores).

Measured on this project's 2 shared cores at 10,000 shards (2,000 roots; 98K
materializations): register 1.1 s (raw inserts 0.15 s), sensor tick 1.1 s steady or with
one new shard (the raw listing 0.04 s: most of the rest is ``lakehouse.corpora._listing``
globbing a JSONL corpus once per pattern, five listings where one would do), automation
tick 1.4 s steady, 3.9 s for a new shard, 1.9 s for the index's fan-out (4,000 partitions
in one backfill); all under the 30 s target, growing sublinearly from 100 shards (0.5-1.0
s). ``dg.evaluate_automation_conditions`` on the same state takes 38 s (it serializes its
cursor with the instance as the partition store, one query of every partition key per
condition node), so it is the wrong tool to time automation at this size. The catalog
refresh takes 22 s over 68K files (one view per table: 10 s): ``union_by_name`` makes
DuckDB read every file's footer at each bind, and views over views bind again; without it
the same views build in under 2 s.

Dagster's guidance is about 100K partitions per asset; the project keeps its partition
count at the number of shard files and grows a lake by making shards larger (a 100K-document
shard is one partition), never by more partitions: 10K shards of 100K documents are 1B
documents.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import yaml

from bench.common import Record, best_of, device_name, report

PROJECT = Path(__file__).resolve().parents[1]
BASE_SHARDS = 100  # the automation evaluation's baseline: the same evaluation at this size
TARGET_S = 30.0  # the sensor tick and the automation evaluation at 10,000 shards
ROOT_CORPUS, POOL_CORPUS = "roots", "pool"
# Assets launched by hand (training, evaluation) are never materialized in the state.
BY_HAND = {"token_weights", "trained_model", "evaluation", "distance_check"}


# -- the simulated lake --------------------------------------------------------------------

@dataclass
class SimLake:
    """A pipeline config over two corpus folders of tiny JSONL shards."""

    folder: Path
    config: Path
    keys: list[str] = field(default_factory=list)  # every shard, config then file order
    root_keys: list[str] = field(default_factory=list)

    def corpus_dir(self, corpus: str) -> Path:
        return self.folder / "corpora" / corpus


def _write_shard(path: Path, name: str) -> None:
    path.write_text(json.dumps({"id": f"{name}-0", "text": f"Shard {name}: one line."}) + "\n")


def simulate_lake(folder: Path, n: int, root_share: float = 0.2) -> SimLake:
    """Write ``n`` one-line shards (a ``root_share`` of them in the root corpus) and a
    pipeline.yaml naming the two corpora; the lake and catalog go under ``folder``."""
    n_roots = max(1, round(n * root_share))
    lake = SimLake(folder, folder / "pipeline.yaml")
    for corpus, count in ((ROOT_CORPUS, n_roots), (POOL_CORPUS, n - n_roots)):
        d = lake.corpus_dir(corpus)
        d.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            _write_shard(d / f"part-{i:06d}.jsonl", f"{corpus}-{i}")
    lake.root_keys = [f"{ROOT_CORPUS}/part-{i:06d}" for i in range(n_roots)]
    lake.keys = lake.root_keys + [f"{POOL_CORPUS}/part-{i:06d}" for i in range(n - n_roots)]
    config = {"lake": "lake", "corpora": [
        {"name": ROOT_CORPUS, "uri": f"corpora/{ROOT_CORPUS}", "format": "jsonl",
         "roles": ["root"]},
        {"name": POOL_CORPUS, "uri": f"corpora/{POOL_CORPUS}", "format": "jsonl",
         "roles": ["pool"]}]}
    lake.config.write_text(yaml.safe_dump(config, sort_keys=False))
    return lake


def add_shard(lake: SimLake, corpus: str = ROOT_CORPUS) -> str:
    """Drop one more shard file into a corpus folder; returns its partition key."""
    name = f"part-new-{len(lake.keys):06d}"
    _write_shard(lake.corpus_dir(corpus) / f"{name}.jsonl", name)
    key = f"{corpus}/{name}"
    lake.keys.append(key)
    if corpus == ROOT_CORPUS:
        lake.root_keys.append(key)
    return key


def instance_at(home: Path) -> dg.DagsterInstance:
    """A sqlite DagsterInstance in ``home`` with the project's dagster.yaml."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT / "dagster.yaml", home / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(home))


@contextlib.contextmanager
def config_env(config: Path) -> Iterator[None]:
    """``$ELONG_CONFIG`` at ``config`` meanwhile (the corpus sensor reads it)."""
    before = os.environ.get("ELONG_CONFIG")
    os.environ["ELONG_CONFIG"] = str(config)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("ELONG_CONFIG", None)
        else:
            os.environ["ELONG_CONFIG"] = before


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


# -- materialized state --------------------------------------------------------------------

def seed_materializations(instance: dg.DagsterInstance, events: list[tuple[str, str | None]],
                          data_versions: dict[str, str] | None = None) -> None:
    """Record a materialization of each (asset, partition), upstream first; the assets in
    ``data_versions`` carry that data version (what a stage following data changes reads).

    The rows ``instance.report_runless_asset_event`` writes (the event in the runless run's
    shard and in the index shard, its indexed tags, each asset's latest materialization in
    the asset table), written in one statement per table (sqlite event log storage)
    instead of two transactions per event; any other storage: one call per event."""
    from dagster._core.definitions.data_version import DATA_VERSION_TAG
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    from dagster._core.events.log import EventLogEntry
    from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID
    from dagster._core.storage.event_log.schema import SqlEventLogStorageTable

    versions = data_versions or {}
    materializations = [dg.AssetMaterialization(
        asset, partition=partition,
        tags={DATA_VERSION_TAG: versions[asset]} if asset in versions else None)
        for asset, partition in events]
    storage = instance.event_log_storage
    if not all(hasattr(storage, a) for a in ("run_connection", "index_transaction",
                                             "_event_to_row", "_store_asset_event",
                                             "_store_asset_event_tags",
                                             "_tags_for_asset_event")):
        for m in materializations:
            instance.report_runless_asset_event(m)
        return
    now = time.time()
    entries = [EventLogEntry(
        user_message="", level=logging.INFO, job_name=RUNLESS_JOB_NAME, run_id=RUNLESS_RUN_ID,
        error_info=None, timestamp=now, step_key=None,
        dagster_event=DagsterEvent(
            event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
            event_specific_data=StepMaterializationData(m), job_name=RUNLESS_JOB_NAME))
        for m in materializations]
    rows = [storage._event_to_row(e) for e in entries]
    last = {}  # asset -> index of its latest event (the asset table's row points at it)
    for i, (asset, _) in enumerate(events):
        last[asset] = i
    # inserted one by one (their ids are needed): each asset's latest, events with tags
    latest = set(last.values())
    single = latest | {i for i, e in enumerate(entries) if storage._tags_for_asset_event(e)}
    with storage.run_connection(RUNLESS_RUN_ID) as conn:
        conn.execute(SqlEventLogStorageTable.insert(), rows)
    with storage.index_transaction() as conn:
        rest = [r for i, r in enumerate(rows) if i not in single]
        if rest:
            conn.execute(SqlEventLogStorageTable.insert(), rest)
        for i in sorted(single):
            event_id = conn.execute(SqlEventLogStorageTable.insert().values(**rows[i])
                                    ).inserted_primary_key[0]
            storage._store_asset_event_tags(conn, [entries[i]], [event_id])
            if i in latest:
                storage._store_asset_event(conn, entries[i], event_id)


def lake_state(defs: dg.Definitions, keys: list[str], root_keys: list[str],
               only: set[str] | None = None) -> list[tuple[str, str | None]]:
    """(asset, partition) of every asset the pipeline materializes by itself, upstream
    first: each per-shard asset for every shard (root stages for every root shard), each
    lake-wide asset once. ``only``: those assets alone."""
    graph = defs.resolve_asset_graph()
    parts = {"shards": keys, "root_shards": root_keys}
    out: list[tuple[str, str | None]] = []
    for key in graph.toposorted_asset_keys:
        node = graph.get(key)
        name = key.to_user_string()
        if name in BY_HAND or not node.is_materializable or (only and name not in only):
            continue
        pdef = node.partitions_def
        if pdef is None:
            out.append((name, None))
        elif pdef.name in parts:
            out.extend((name, p) for p in parts[pdef.name])
    return out


@dataclass
class Tick:
    """What one automation tick computed: its run requests (a backfill for a request of
    many partitions, as the sensor emits them), the partitions they request, the cursor it
    stores and how many condition evaluations it recorded."""

    run_requests: list
    requested: dict[str, list[str | None]]  # asset -> partitions (None: unpartitioned)
    cursor: str  # as the daemon stores it (compressed, base64)
    evaluations: int

    @property
    def total(self) -> int:
        return sum(len(p) for p in self.requested.values())

    @property
    def backfills(self) -> int:
        return sum(1 for r in self.run_requests if r.requires_backfill_daemon())


def automation_tick(defs: dg.Definitions, instance: dg.DagsterInstance,
                    cursor: str | None) -> Tick:
    """One tick of the project's automation sensor as the asset daemon computes it: the
    stored cursor read, every condition evaluated (``AutomationTickEvaluationContext``,
    which the daemon calls), the run requests built, the evaluations written to the
    instance and the new cursor serialized. Not done: submitting the runs and the tick's
    own record (which need the daemon's workspace)."""
    from dagster._core.definitions.asset_daemon_cursor import AssetDaemonCursor
    from dagster._core.definitions.automation_tick_evaluation_context import (
        AutomationTickEvaluationContext,
    )
    from dagster._core.instance.types import CachingDynamicPartitionsLoader
    from dagster._daemon.asset_daemon import (
        asset_daemon_cursor_from_instigator_serialized_cursor,
        asset_daemon_cursor_to_instigator_serialized_cursor,
    )

    from orchestration.automation import automation_sensor

    graph = defs.resolve_asset_graph()
    # the daemon's workspace context: dynamic partitions read once per tick, then cached
    with dg.partition_loading_context(
            dynamic_partitions_store=CachingDynamicPartitionsLoader(instance)):
        previous = asset_daemon_cursor_from_instigator_serialized_cursor(cursor, graph) \
            if cursor else AssetDaemonCursor.empty()
        evaluation_id = previous.evaluation_id + 1
        run_requests, new_cursor, evaluations = AutomationTickEvaluationContext(
            evaluation_id=evaluation_id, instance=instance, asset_graph=graph,
            cursor=previous, materialize_run_tags={}, observe_run_tags={},
            auto_observe_asset_keys=set(), asset_selection=automation_sensor.asset_selection,
            emit_backfills=automation_sensor.emit_backfills,
            logger=logging.getLogger("dagster.bench.dagster_scale")).evaluate()
        instance.schedule_storage.add_auto_materialize_asset_evaluations(
            evaluation_id, [e.with_run_ids(set()) for e in evaluations])
        stored = asset_daemon_cursor_to_instigator_serialized_cursor(new_cursor)
        wanted: dict[str, set] = {}
        for req in run_requests:
            if req.requires_backfill_daemon():
                for ap in req.asset_graph_subset.iterate_asset_partitions():
                    wanted.setdefault(ap.asset_key.to_user_string(), set()).add(
                        ap.partition_key)
            else:
                for key in req.asset_selection or []:
                    wanted.setdefault(key.to_user_string(), set()).add(req.partition_key)
    return Tick(list(run_requests), {a: sorted(p, key=str) for a, p in wanted.items()}, stored,
                len(evaluations))


# -- the catalog's lake --------------------------------------------------------------------

# lake tables the catalog reads per shard (its folder: the asset), and per root shard
SHARD_TABLES = ("corpus_shards", "quarantine", "duplicates", "shard_stats", "tokenized_docs",
                "chunks")
ROOT_TABLES = ("entropy_profiles", "anchors", "retrieval_candidates", "verified_dependencies")


def write_catalog_lake(lake: SimLake) -> int:
    """One Parquet file per (table, shard) under the lake, as the stages leave them (empty
    tables with the table's schema; shard_stats one row, so corpus_summary counts shards);
    returns the number of files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lakehouse.catalog import SOURCES

    schema = {s.folder: s.schema for s in SOURCES.values()}

    def blob(table: pa.Table) -> bytes:
        buf = io.BytesIO()
        pq.write_table(table, buf)
        return buf.getvalue()

    empty = {t: blob(schema[t].empty_table()) for t in SHARD_TABLES + ROOT_TABLES}
    stats = {c: blob(pa.Table.from_pylist([{
        "corpus": c, "shard": "part", "source_uri": "", "source_sha256": "", "source_bytes": 1,
        "rows_in": 1, "docs_out": 1, "duplicates": 0, "quarantined": 0, "chars_out": 20,
        "max_chars": 1_000_000}], schema["shard_stats"])) for c in (ROOT_CORPUS, POOL_CORPUS)}
    roots = set(lake.root_keys)
    files = 0
    for key in lake.keys:
        corpus, shard = key.split("/", 1)
        for table in SHARD_TABLES + (ROOT_TABLES if key in roots else ()):
            path = lake.folder / "lake" / table / corpus / f"{shard}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(stats[corpus] if table == "shard_stats" else empty[table])
            files += 1
    return files


def catalog_refresh(lake_root: Path, out: Path) -> tuple[float, float, int, list]:
    """What ``stats_catalog`` does: build the catalog (every view bound over the lake's
    files), then query ``corpus_summary``; returns both times, the views and the rows."""
    from lakehouse.catalog import GROUND_TRUTH, build_catalog, parquet_relation, query
    from lakehouse.storage import Lake

    t_build, views = timed(lambda: build_catalog(
        Lake(lake_root), str(out), extra={"ground_truth": parquet_relation([], GROUND_TRUTH)}))
    t_query, (_, rows) = timed(lambda: query(str(out), "SELECT * FROM corpus_summary",
                                             str(lake_root)))
    return t_build, t_query, len(views), rows


def plain_views(lake_root: Path) -> int:
    """The baseline: one view per lake table over its ``read_parquet`` relation."""
    import duckdb

    from lakehouse.catalog import relations
    from lakehouse.storage import Lake

    con = duckdb.connect()
    try:
        rel = relations(Lake(lake_root))
        for name, sql in rel.items():
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM {sql}")
        return len(rel)
    finally:
        con.close()


# -- one point -----------------------------------------------------------------------------

def raw_listing(lake: SimLake) -> int:
    """The sensor's baseline: list both corpus folders and stat every file."""
    n = 0
    for corpus in (ROOT_CORPUS, POOL_CORPUS):
        with os.scandir(lake.corpus_dir(corpus)) as it:
            for entry in it:
                entry.stat()
                n += 1
    return n


def measure(n: int, folder: Path, root_share: float = 0.2, repeats: int = 3,
            catalog: bool = True, helper: bool = False, log: Callable[[str], None] = print) -> dict:
    """Every timing of one point (``n`` shards) in ``folder``; counts beside them."""
    from orchestration.cli import register
    from orchestration.definitions import build_definitions
    from orchestration.partitions import ROOT_SHARDS_PARTITION_NAME, SHARDS_PARTITION_NAME
    from orchestration.sensors import INGEST_ASSETS, corpus_shard_sensor

    out: dict = {"shards": n}
    t0 = time.perf_counter()
    lake = simulate_lake(folder, n, root_share)
    out["root_shards"] = len(lake.root_keys)
    log(f"[{n}] lake of {n} shards written in {time.perf_counter() - t0:.1f} s")

    def tick(instance, cursor):
        # the sensor's log has its own console handler: kept off the benchmark's output
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            return corpus_shard_sensor(dg.build_sensor_context(instance=instance,
                                                               cursor=cursor))

    with config_env(lake.config):
        # registration: raw partition inserts of the same keys (fresh sets) vs `register`
        with instance_at(folder / "home-raw") as raw:
            out["raw_add_s"], _ = timed(lambda: (
                raw.add_dynamic_partitions("bench_shards", lake.keys),
                raw.add_dynamic_partitions("bench_root_shards", lake.root_keys)))
            # the sensor's first look at a lake no one registered: every shard new
            out["sensor_all_new_s"], first = timed(lambda: tick(raw, None))
            out["sensor_all_new_requests"] = len(first.run_requests)
        home = folder / "home"
        instance = instance_at(home)
        quiet = io.StringIO()
        with contextlib.redirect_stdout(quiet):
            out["register_s"], added = timed(lambda: register(lake.config, instance))
            out["register_again_s"], again = timed(lambda: register(lake.config, instance))
        out["registered"] = added
        out["registered_again"] = again
        out["partitions"] = len(instance.get_dynamic_partitions(SHARDS_PARTITION_NAME))
        out["root_partitions"] = len(instance.get_dynamic_partitions(
            ROOT_SHARDS_PARTITION_NAME))
        log(f"[{n}] register {out['register_s']:.2f} s (raw {out['raw_add_s']:.2f} s)")

        # the corpus sensor: first look after register, steady state, one new shard
        out["sensor_first_s"], first = timed(lambda: tick(instance, None))
        out["sensor_first_requests"] = len(first.run_requests)
        out["sensor_cursor_bytes"] = len(first.cursor)
        out["listing_s"] = best_of(lambda: raw_listing(lake), repeats)
        steady_holder = {}
        out["sensor_steady_s"] = best_of(
            lambda: steady_holder.update(r=tick(instance, first.cursor)), repeats)
        out["sensor_steady_requests"] = len(steady_holder["r"].run_requests)
        new_key = add_shard(lake, ROOT_CORPUS)
        new_holder = {}
        out["sensor_new_s"] = best_of(
            lambda: new_holder.update(r=tick(instance, first.cursor)), repeats)
        new_tick = new_holder["r"]
        out["new_shard"] = new_key
        out["sensor_new_requested"] = [r.partition_key for r in new_tick.run_requests]
        out["sensor_new_partition_requests"] = {
            r.partitions_def_name: list(r.partition_keys)
            for r in new_tick.dynamic_partitions_requests}
        log(f"[{n}] sensor: first {out['sensor_first_s']:.2f} s, steady "
            f"{out['sensor_steady_s']:.2f} s, new shard {out['sensor_new_s']:.2f} s "
            f"(listing {out['listing_s']:.3f} s)")

        # automation: every stage materialized, then evaluations
        defs = build_definitions(str(lake.config))
        old_keys = [k for k in lake.keys if k != new_key]
        old_roots = [k for k in lake.root_keys if k != new_key]
        t0 = time.perf_counter()
        state = lake_state(defs, old_keys, old_roots)
        seed_materializations(instance, state, {"vector_index": "index-1"})
        out["materializations"] = len(state)
        log(f"[{n}] {len(state)} materializations seeded in {time.perf_counter() - t0:.1f} s")

        def evaluate(cursor):
            return automation_tick(defs, instance, cursor)

        out["auto_first_s"], first_eval = timed(lambda: evaluate(None))
        out["auto_first_requested"] = first_eval.total
        steady_eval = {}
        out["auto_steady_s"] = best_of(
            lambda: steady_eval.update(r=evaluate(first_eval.cursor)), repeats)
        steady = steady_eval["r"]
        out["auto_steady_requested"] = steady.total
        out["auto_cursor_bytes"] = len(steady.cursor)
        if helper:  # the test helper on the same state: it loads partitions per node
            out["auto_helper_s"], _ = timed(lambda: dg.evaluate_automation_conditions(
                defs=defs, instance=instance))
        log(f"[{n}] automation: first {out['auto_first_s']:.2f} s "
            f"({first_eval.total} requested), steady {out['auto_steady_s']:.2f} s")

        # one new root shard: the sensor's partition requests applied, its ingest done
        for req in new_tick.dynamic_partitions_requests:
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        seed_materializations(instance, [(a, new_key) for a in INGEST_ASSETS])
        out["auto_new_s"], new_eval = timed(lambda: evaluate(steady.cursor))
        out["auto_new_requested"] = new_eval.requested
        out["auto_new_runs"] = len(new_eval.run_requests)

        # the index's fan-out: vector_index re-materialized with a new data version (its
        # shards' versions moved), every root shard's retrieval follows
        seed_materializations(instance, [("vector_index", None)], {"vector_index": "index-2"})
        out["auto_fanout_s"], fan = timed(lambda: evaluate(new_eval.cursor))
        out["auto_fanout_total"] = fan.total
        out["auto_fanout_assets"] = {a: len(p) for a, p in fan.requested.items()}
        out["auto_fanout_runs"] = len(fan.run_requests)
        out["auto_fanout_backfills"] = fan.backfills
        out["auto_fanout_retrieval"] = fan.requested.get("retrieval_candidates", [])
        log(f"[{n}] automation: new shard {out['auto_new_s']:.2f} s "
            f"({new_eval.total} requested), index fan-out "
            f"{out['auto_fanout_s']:.2f} s ({fan.total} requested in "
            f"{len(fan.run_requests)} request(s), {fan.backfills} backfill(s))")
        instance.dispose()

    if catalog:
        t0 = time.perf_counter()
        out["catalog_files"] = write_catalog_lake(lake)
        log(f"[{n}] {out['catalog_files']} lake files written in "
            f"{time.perf_counter() - t0:.1f} s")
        lake_root = folder / "lake"
        out["catalog_plain_s"] = best_of(lambda: plain_views(lake_root), 1)
        build, query, views, rows = catalog_refresh(lake_root, folder / "catalog.duckdb")
        out["catalog_build_s"], out["catalog_query_s"] = build, query
        out["catalog_s"] = build + query
        out["catalog_views"] = views
        out["catalog_summary"] = {r[0]: r[1] for r in rows}  # corpus -> shards
        log(f"[{n}] catalog {out['catalog_s']:.2f} s (build {build:.2f} s, corpus_summary "
            f"{query:.2f} s; plain views {out['catalog_plain_s']:.2f} s)")
    return out


# -- the records ---------------------------------------------------------------------------

def records(points: list[dict], base: dict) -> list[Record]:
    dev = device_name()
    recs: list[Record] = []

    def add(metric, value, baseline, target, met, params):
        ratio = value / baseline if baseline else float("nan")
        recs.append(Record(metric=metric, value=value, baseline=baseline, ratio=ratio,
                           unit="s", target=target, met=met, device=dev, params=params))

    for p in points:
        n = p["shards"]
        big = n >= 10_000
        tgt = f"< {TARGET_S:.0f} s at 10K shards" if big else "(scaling point)"
        common = {"shards": n, "root_shards": p["root_shards"]}
        add(f"[{n}] register / raw add_dynamic_partitions", p["register_s"], p["raw_add_s"],
            "reported", True, {**common, "registered": p["registered"],
                               "registered_again": p["registered_again"],
                               "register_again_s": p["register_again_s"]})
        add(f"[{n}] sensor tick, steady / listing", p["sensor_steady_s"],
            p["listing_s"], tgt, p["sensor_steady_s"] < TARGET_S,
            {**common, "requests": p["sensor_steady_requests"],
             "cursor_bytes": p["sensor_cursor_bytes"]})
        add(f"[{n}] sensor tick, 1 new shard / listing", p["sensor_new_s"],
            p["listing_s"], tgt, p["sensor_new_s"] < TARGET_S and
            p["sensor_new_requested"] == [p["new_shard"]],
            {**common, "requested": p["sensor_new_requested"]})
        add(f"[{n}] sensor tick, 1st after register", p["sensor_first_s"], p["listing_s"],
            "reported (hashes every local file once)", True,
            {**common, "requests": p["sensor_first_requests"]})
        add(f"[{n}] sensor tick, all new / listing", p["sensor_all_new_s"],
            p["listing_s"], "reported", True,
            {**common, "requests": p["sensor_all_new_requests"]})
        b = base
        add(f"[{n}] automation, steady / {b['shards']} shards", p["auto_steady_s"],
            b["auto_steady_s"], tgt, p["auto_steady_s"] < TARGET_S and
            p["auto_steady_requested"] == 0,
            {**common, "requested": p["auto_steady_requested"],
             "materializations": p["materializations"],
             "cursor_bytes": p["auto_cursor_bytes"]})
        add(f"[{n}] automation, 1 new shard / {b['shards']}", p["auto_new_s"],
            b["auto_new_s"], tgt, p["auto_new_s"] < TARGET_S,
            {**common, "requested": p["auto_new_requested"], "runs": p["auto_new_runs"]})
        add(f"[{n}] automation, no cursor / {b['shards']}", p["auto_first_s"],
            b["auto_first_s"], "reported", True,
            {**common, "requested": p["auto_first_requested"]})
        add(f"[{n}] automation, index fan-out / {b['shards']}", p["auto_fanout_s"],
            b["auto_fanout_s"], "reported", True,
            {**common, "total": p["auto_fanout_total"], "assets": p["auto_fanout_assets"],
             "run_requests": p["auto_fanout_runs"], "backfills": p["auto_fanout_backfills"]})
        if "auto_helper_s" in p:
            add(f"[{n}] test helper evaluation / tick", p["auto_helper_s"],
                p["auto_first_s"], "reported (the test helper, first evaluation)", True, common)
        if "catalog_s" in p:
            add(f"[{n}] catalog refresh / view per table", p["catalog_s"],
                p["catalog_plain_s"], "reported", True,
                {**common, "files": p["catalog_files"], "views": p["catalog_views"],
                 "build_s": p["catalog_build_s"], "corpus_summary_s": p["catalog_query_s"],
                 "corpus_summary": p["catalog_summary"]})
    return recs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=10_000, help="the largest point")
    ap.add_argument("--points", default=None,
                    help="comma-separated shard counts (default: 1000 and --shards)")
    ap.add_argument("--root-share", type=float, default=0.2,
                    help="share of the shards in the root corpus")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-catalog", action="store_true", help="skip the catalog refresh")
    ap.add_argument("--helper", action="store_true",
                    help="also time dg.evaluate_automation_conditions (the test helper) once")
    args = ap.parse_args(argv)
    sizes = sorted({int(s) for s in args.points.split(",")}) if args.points else \
        sorted({1000, args.shards})
    logging.getLogger("dagster").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    points = []
    with tempfile.TemporaryDirectory(prefix="dagster_scale-") as tmp:
        # untimed warm-up: the first evaluation in a process pays Dagster's lazy imports
        measure(20, Path(tmp) / "warm-up", args.root_share, 1, catalog=False,
                log=lambda _: None)
        base = measure(BASE_SHARDS, Path(tmp) / f"n{BASE_SHARDS}", args.root_share,
                       args.repeats, catalog=not args.no_catalog, helper=args.helper)
        for n in sizes:
            points.append(base if n == BASE_SHARDS else measure(
                n, Path(tmp) / f"n{n}", args.root_share, args.repeats,
                catalog=not args.no_catalog, helper=args.helper))
    report("dagster_scale", records(points, base))


if __name__ == "__main__":
    main()
