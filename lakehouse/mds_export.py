"""Export packed sequences to MDS, the format ProLong-style trainers stream from.

mosaicml-streaming is the optional `mds` extra (ARCHITECTURE.md says why: its import pulls
torchvision, which has no CPU build that loads beside the CPU torch), so it is imported only
here, and only when an export is asked for. Columns follow ProLong: ``input_ids`` (uint32,
one sequence) and ``indices`` (int64, shape [units, 2]: the [start, end) span of each unit;
attention stays inside a span).

Bounded shards: the export is one MDS dataset (one ``index.json``, what StreamingDataset
opens) whose shards MDSWriter itself closes at ``size_limit`` bytes; the packing asset passes
``packing.max_file_mb``, the bound of the Parquet part files, rather than writing one MDS
folder per part (which a reader would have to open as several streams).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa

from lakehouse.storage import is_url, staged

MDS_COLUMNS = {"input_ids": "ndarray:uint32", "indices": "ndarray:int64"}


def streaming_import_error() -> str | None:
    """None when `import streaming` works here, else the reason it does not."""
    try:
        import streaming  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - torchvision fails with RuntimeError, not only ImportError
        return f"{type(exc).__name__}: {exc}"
    return None


def _samples(sequences: pa.Table):
    ids = sequences.column("input_ids").to_pylist()
    spans = sequences.column("indices").to_pylist()
    for x, s in zip(ids, spans, strict=True):
        yield {"input_ids": np.asarray(x, np.uint32),
               "indices": np.asarray(s, np.int64).reshape(-1, 2)}


def export_mds(sequences: pa.Table, out: str, size_limit: int = 1 << 26) -> str:
    """Write ``sequences`` (the packed Parquet table) as an MDS dataset at ``out``.

    Locally the dataset is written beside ``out`` and renamed into place, so a killed export
    leaves the previous dataset or none. For a URL, MDSWriter uploads each finished shard from
    a local staging folder; the index file goes last, so readers never see a partial set.
    """
    reason = streaming_import_error()
    if reason is not None:
        raise RuntimeError("MDS export needs mosaicml-streaming (the `mds` extra: pip install "
                           f"--no-deps mosaicml-streaming==0.13.0 on a CUDA machine); "
                           f"`import streaming` failed here with {reason}")
    from streaming import MDSWriter

    if is_url(out):
        with tempfile.TemporaryDirectory() as staging, MDSWriter(
                out=(staging, out), columns=MDS_COLUMNS, size_limit=size_limit) as writer:
            for sample in _samples(sequences):
                writer.write(sample)
        return out
    with staged(Path(out)) as tmp, MDSWriter(out=str(tmp), columns=MDS_COLUMNS,
                                             size_limit=size_limit) as writer:
        for sample in _samples(sequences):
            writer.write(sample)
    return out
