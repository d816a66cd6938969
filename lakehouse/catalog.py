"""The DuckDB statistics catalog: views over the lake's Parquet files, rebuilt in one go.

The views live in ``sql/views/*.sql`` and name their inputs with placeholders such as
``{docs}`` (every relation has a ``filename`` column: ``<lake>/<asset>/<corpus>/<shard>``);
each placeholder becomes a ``read_parquet`` over that table's files, or an empty
relation with the right columns while the table has no files yet, so the catalog can always
be built and queried. The file is built under a temporary name and renamed into place, so a
reader never sees half a catalog.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from lakehouse import storage, tables
from lakehouse.object_store import register_duckdb_filesystem
from lakehouse.project_files import project_file
from lakehouse.storage import Lake, is_url, staged

SQL_DIR = project_file("sql")


@dataclass(frozen=True)
class Source:
    """A lake table: its folder under the lake root and its schema."""

    folder: str
    schema: pa.Schema
    pattern: str = "*/*.parquet"  # under the folder


SOURCES: dict[str, Source] = {
    "docs": Source("corpus_shards", tables.DOCS),
    "quarantine": Source("quarantine", tables.QUARANTINE),
    "duplicates": Source("duplicates", tables.DUPLICATES),
    "shard_stats": Source("shard_stats", tables.SHARD_STATS),
    "tokenized_docs": Source("tokenized_docs", tables.TOKENIZED_DOCS),
    "entropy_profiles": Source("entropy_profiles", tables.ENTROPY_PROFILES),
    "anchors": Source("anchors", tables.ANCHORS),
    "chunks": Source("chunks", tables.CHUNKS),
    "retrieval_candidates": Source("retrieval_candidates", tables.RETRIEVAL_CANDIDATES),
    "verified_dependencies": Source("verified_dependencies", tables.VERIFIED_DEPENDENCIES),
    # packed_dataset/ (EntropyLong) and baseline_dataset/, one manifest each
    "packed_manifest": Source("*_dataset", tables.PACKED_MANIFEST, "manifest.parquet"),
    # each packed verified dependency with its distance (packed_dataset/ only)
    "packed_dependencies": Source("*_dataset", tables.PACKED_DEPENDENCIES,
                                  "dependencies.parquet"),
    # dI at distance of sampled packed dependencies (distance_check/<dataset>.parquet)
    "distance_checks": Source("distance_check", tables.DISTANCE_CHECK, "*.parquet"),
    "training_metrics": Source("trained_model", tables.TRAINING_METRICS, "*/metrics.parquet"),
    "evaluation_results": Source("evaluation", tables.EVALUATION_RESULTS, "*.parquet"),
}
GROUND_TRUTH = tables.GROUND_TRUTH

_DUCK_TYPES = {pa.string(): "VARCHAR", pa.large_string(): "VARCHAR", pa.int64(): "BIGINT",
               pa.int32(): "INTEGER", pa.float32(): "FLOAT", pa.float64(): "DOUBLE",
               pa.bool_(): "BOOLEAN", pa.float16(): "FLOAT"}


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _duck_type(t.value_type) + "[]"
    return _DUCK_TYPES[t]


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def empty_relation(schema: pa.Schema) -> str:
    """A zero-row SELECT with the schema's columns and types (plus ``filename``)."""
    cols = [f"CAST(NULL AS {_duck_type(f.type)}) AS {f.name}" for f in schema]
    cols.append("CAST(NULL AS VARCHAR) AS filename")
    return f"(SELECT {', '.join(cols)} WHERE false)"


def parquet_relation(files_or_glob: str | list[str], schema: pa.Schema) -> str:
    """``read_parquet`` over files; local globs that match nothing give an empty relation."""
    if isinstance(files_or_glob, list):
        if not files_or_glob:
            return empty_relation(schema)
        arg = "[" + ", ".join(_sql_str(f) for f in files_or_glob) + "]"
    else:
        if not storage.glob(files_or_glob):  # local or object store: DuckDB binds views now
            return empty_relation(schema)
        arg = _sql_str(files_or_glob)
    return f"read_parquet({arg}, union_by_name = true, filename = true)"


def source_assets() -> set[str]:
    """The lake assets the views read (a folder pattern may cover several)."""
    names = set()
    for src in SOURCES.values():
        names |= {"packed_dataset", "baseline_dataset"} if src.folder == "*_dataset" \
            else {src.folder}
    return names


def relations(lake: Lake, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Placeholder name -> SQL relation for every lake table (plus ``extra`` ones)."""
    rel = {name: parquet_relation(lake.path(src.folder, src.pattern), src.schema)
           for name, src in SOURCES.items()}
    rel.update(extra or {})
    return rel


def view_statements(sql_dir: Path, rel: Mapping[str, str]) -> list[tuple[str, str]]:
    """(file name, statement) for every view file, in file-name order."""
    out = []
    for path in sorted((sql_dir / "views").glob("*.sql")):
        out.append((path.name, path.read_text().format_map(dict(rel))))
    return out


def build_catalog(lake: Lake, out_path: str, extra: Mapping[str, str] | None = None,
                  sql_dir: Path = SQL_DIR) -> list[str]:
    """Create the catalog file with every view; returns the view names.

    A lake on object storage is read through its fsspec filesystem registered with DuckDB
    (no httpfs download needed). The catalog file itself is a local DuckDB file; with a URL
    ``out_path`` it is built locally and uploaded in one piece (readers download it).
    """
    if is_url(out_path):
        with tempfile.TemporaryDirectory() as tmp:
            local = str(Path(tmp) / "catalog.duckdb")
            views = build_catalog(lake, local, extra, sql_dir)
            data = Path(local).read_bytes()
        storage.atomic_write_bytes(out_path, lambda f: f.write(data))
        return views
    with staged(Path(out_path)) as tmp:
        con = duckdb.connect(str(tmp))
        try:
            register_duckdb_filesystem(con, lake.root)
            for name, stmt in view_statements(sql_dir, relations(lake, extra)):
                try:
                    con.execute(stmt)
                except duckdb.Error as exc:
                    raise RuntimeError(f"sql/views/{name}: {exc}") from exc
            views = [r[0] for r in con.execute(
                "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()]
        finally:
            con.close()
    return views


@contextmanager
def connect(catalog_path: str, lake_root: str | None = None) -> Iterator:
    """A read-only connection to the catalog (downloaded first when it lives on object
    storage), able to read a lake on object storage."""
    with tempfile.TemporaryDirectory() as tmp:
        local = catalog_path
        if is_url(catalog_path):
            local = str(Path(tmp) / "catalog.duckdb")
            Path(local).write_bytes(storage.read_bytes(catalog_path))
        con = duckdb.connect(local, read_only=True)
        try:
            if lake_root:
                register_duckdb_filesystem(con, lake_root)
            yield con
        finally:
            con.close()


def query(catalog_path: str, sql: str, lake_root: str | None = None
          ) -> tuple[list[str], list[tuple]]:
    """Run one query on the catalog, read-only; returns (column names, rows)."""
    with connect(catalog_path, lake_root) as con:
        cur = con.execute(sql)
        return [d[0] for d in cur.description], cur.fetchall()
