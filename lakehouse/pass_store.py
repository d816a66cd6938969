"""The verification passes of a root shard, kept beside its verified rows for the next run.

A (root, chunk) pass is the expensive unit of the pipeline (one forward of ``[chunk; root]``
per pair), and a pass's scores depend only on what its key hashes (the two token sequences,
the scorer and the settings that shape a pass: models.verification.pass_keys). So
``verified_dependencies`` stores every pass it used, by key, and the next materialization of
the same shard forwards only the pairs whose key it does not find: after a new pool shard,
the pairs of that shard's chunks. The keep decision is then re-made over all rows, old and
new, as a from-scratch run would make it.

One Parquet file per root shard, written atomically after the verified rows; a killed run
leaves the previous file (or none), which only means more pairs are forwarded again.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lakehouse.storage import exists, read_parquet, write_parquet
from models.verification import PassScores

SCHEMA = pa.schema([
    ("doc_id", pa.string()), ("chunk_id", pa.string()),
    ("key", pa.string()),  # models.verification.pass_keys: what the scores depend on
    ("doc_key", pa.string()),  # what the baseline (the root alone) depends on
    ("positions", pa.list_(pa.int64())),
    ("h", pa.list_(pa.float32())), ("nll", pa.list_(pa.float32())),
    ("h_prime", pa.list_(pa.float32())), ("nll_prime", pa.list_(pa.float32())),
    ("context_start", pa.list_(pa.int64())),
])
ARRAYS = ("positions", "h", "nll", "h_prime", "nll_prime", "context_start")


def to_table(passes: list[PassScores]) -> pa.Table:
    """The passes as rows of ``SCHEMA``, in (doc_id, chunk_id) order (stable bytes)."""
    ps = sorted(passes, key=lambda p: (p.doc_id, p.chunk_id))
    cols: dict[str, list] = {"doc_id": [p.doc_id for p in ps], "chunk_id": [p.chunk_id for p in ps],
                             "key": [p.key for p in ps], "doc_key": [p.doc_key for p in ps]}
    for name in ARRAYS:
        cols[name] = [np.asarray(getattr(p, name)) for p in ps]
    return pa.table({f.name: pa.array(cols[f.name], f.type) for f in SCHEMA}, schema=SCHEMA)


def from_table(table: pa.Table) -> dict[str, PassScores]:
    """Stored passes by key (the float arrays as they were written: float32, bit for bit)."""
    missing = set(SCHEMA.names) - set(table.column_names)
    if missing:
        raise ValueError(f"pass store lacks columns {sorted(missing)}")
    out = {}
    cols = {n: table[n].to_pylist() for n in ("doc_id", "chunk_id", "key", "doc_key")}
    arrays = {n: table[n].combine_chunks() for n in ARRAYS}
    for i in range(table.num_rows):
        vals = {n: arrays[n][i].values.to_numpy(zero_copy_only=False) for n in ARRAYS}
        out[cols["key"][i]] = PassScores(
            cols["doc_id"][i], cols["chunk_id"][i], vals["positions"].astype(np.int64),
            vals["h"].astype(np.float32), vals["nll"].astype(np.float32),
            vals["h_prime"].astype(np.float32), vals["nll_prime"].astype(np.float32),
            vals["context_start"].astype(np.int64), cols["key"][i], cols["doc_key"][i])
    return out


def load(path: str) -> dict[str, PassScores]:
    """The passes stored at ``path`` (none if the file is missing or from an older layout:
    then every pair is forwarded, which is always correct)."""
    if not exists(path):
        return {}
    table = read_parquet(path)
    if set(SCHEMA.names) - set(table.column_names):
        return {}
    return from_table(table)


def save(passes: list[PassScores], path: str) -> str:
    """Store ``passes`` at ``path`` (atomic, local or object store)."""
    return write_parquet(to_table(passes), path)
