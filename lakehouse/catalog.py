"""The DuckDB statistics catalog: views over the lake's Parquet files, rebuilt in one go.

The views live in ``sql/views/*.sql`` and name their inputs with placeholders such as
``{docs}`` (every relation has a ``filename`` column: ``<lake>/<asset>/<corpus>/<shard>``);
each placeholder becomes a ``read_parquet`` over that table's files, or an empty
relation with the right columns while the table has no files yet, so the catalog can always
be built and queried. The file is built under a temporary name and renamed into place, so a
reader never sees half a catalog.
"""

from __future__ import annotations

import glob as globlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from lakehouse import tables
from lakehouse.storage import Lake, is_url, staged

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"


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
        if not is_url(files_or_glob) and not globlib.glob(files_or_glob):
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
    """Create the catalog file with every view; returns the view names."""
    if is_url(out_path):
        raise ValueError(f"catalog path {out_path} must be local; DuckDB reads the lake "
                         "from object storage through httpfs, but its own file is local")
    with staged(Path(out_path)) as tmp:
        con = duckdb.connect(str(tmp))
        try:
            if is_url(lake.root):
                con.execute("INSTALL httpfs; LOAD httpfs;")
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


def query(catalog_path: str, sql: str) -> tuple[list[str], list[tuple]]:
    """Run one query on the catalog, read-only; returns (column names, rows)."""
    con = duckdb.connect(catalog_path, read_only=True)
    try:
        cur = con.execute(sql)
        return [d[0] for d in cur.description], cur.fetchall()
    finally:
        con.close()
