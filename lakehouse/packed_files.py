"""Packed sequences as a folder of bounded Parquet files, so nothing reads or writes one
file the size of the dataset.

Layout: ``<asset>/sequences/part-00000.parquet``, ``part-00001.parquet``, ... in ``seq_id``
order. A file holds consecutive rows up to ``max_file_mb`` MiB of *uncompressed* column
bytes (compressed files are smaller, so the bound holds on disk; one row larger than the
bound gets a file of its own), in row groups of ``row_group_rows`` rows: a trainer streaming
the files holds one row group at a time (a 131,072-token row is 512 KiB of int32 ids).

The split depends only on the table and the two settings, the names only on the row
order, and the writer options are fixed, so a re-run writes the same bytes under the same
names. Each file is written atomically (lakehouse.storage); parts left over from an earlier,
larger run are removed only after every new part is in place, as is a legacy
``sequences.parquet`` beside the folder. A reader that lists the folder between the two
sees the new parts and, at worst, old higher-numbered ones (their ``seq_id`` lie past the
new rows'), never half a file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakehouse import storage

SEQUENCES = "sequences"  # the folder below the asset's
LEGACY_FILE = "sequences.parquet"  # the single file written before the folder
PART_RE = re.compile(r"part-(\d{5})\.parquet$")


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def _width(t: pa.DataType) -> int:
    """Bytes of one value of a fixed-width type (fixed-size lists: all their values)."""
    if pa.types.is_fixed_size_list(t):
        return t.list_size * _width(t.value_type)
    return max(t.bit_width // 8, 1)


def row_bytes(table: pa.Table) -> np.ndarray:
    """Uncompressed bytes of each row: list values plus an offset each, fixed columns."""
    sizes = np.zeros(table.num_rows, dtype=np.int64)
    for column in table.columns:
        t = column.type
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
            sizes += np.nan_to_num(lengths).astype(np.int64) * _width(t.value_type) + 8
        else:
            sizes += _width(t)
    return sizes


def split_rows(sizes: np.ndarray, max_bytes: int) -> list[tuple[int, int]]:
    """[start, stop) row ranges of consecutive rows, each at most ``max_bytes`` (a row
    larger than that alone); greedy, so the result depends only on the sizes."""
    out, start, used = [], 0, 0
    for i, n in enumerate(sizes.tolist()):
        if i > start and used + n > max_bytes:
            out.append((start, i))
            start, used = i, 0
        used += n
    if start < len(sizes) or not out:
        out.append((start, len(sizes)))
    return out


def write_part(table: pa.Table, path: str, row_group_rows: int,
               part_bytes: int = storage.UPLOAD_PART_BYTES) -> str:
    """One part, atomically, with the lake's fixed writer options but bounded row groups."""
    options = {**storage.PARQUET_OPTIONS, "row_group_size": row_group_rows}
    return storage.atomic_write_bytes(path, lambda fh: pq.write_table(table, fh, **options),
                                      part_bytes)


def write_row_groups(path: str, schema: pa.Schema, tables: Iterable[pa.Table],
                     row_group_rows: int, part_bytes: int = storage.UPLOAD_PART_BYTES) -> str:
    """One file written atomically from ``tables`` as they come (each in row groups of at
    most ``row_group_rows``), so a stage that produces its output a row group at a time
    never holds the whole of it; the lake's fixed writer options, so a re-run of the same
    tables writes the same bytes."""
    options = {k: v for k, v in storage.PARQUET_OPTIONS.items() if k != "row_group_size"}

    def write(fh) -> None:
        with pq.ParquetWriter(fh, schema, **options) as writer:
            for table in tables:
                writer.write_table(table.cast(schema), row_group_size=row_group_rows)

    return storage.atomic_write_bytes(path, write, part_bytes)


def write_sequences(table: pa.Table, asset_folder: str, max_file_mb: float,
                    row_group_rows: int, part_bytes: int = storage.UPLOAD_PART_BYTES
                    ) -> list[str]:
    """Write ``table`` (rows in seq_id order) as ``<asset_folder>/sequences/part-*.parquet``;
    returns the part paths. Then removes stale parts and the legacy single file."""
    folder = storage.join(asset_folder, SEQUENCES)
    ranges = split_rows(row_bytes(table), int(max_file_mb * (1 << 20)))
    paths = [write_part(table.slice(a, b - a), storage.join(folder, part_name(i)),
                        row_group_rows, part_bytes)
             for i, (a, b) in enumerate(ranges)]
    for stale in sequence_files(asset_folder)[len(paths):]:
        storage.remove(stale)
    legacy = storage.join(asset_folder, LEGACY_FILE)
    if storage.exists(legacy):
        storage.remove(legacy)
    return paths


def sequence_files(asset_folder: str) -> list[str]:
    """The part files of a packed dataset, in part order ([] when there are none)."""
    parts = [p for p in storage.listdir(storage.join(asset_folder, SEQUENCES))
             if PART_RE.search(p)]
    return sorted(parts, key=lambda p: int(PART_RE.search(p).group(1)))


def dataset_files(asset_folder: str) -> list[str]:
    """The sequence files of a packed dataset: the parts of ``sequences/``, else the single
    ``sequences.parquet`` of a lake written before the folder."""
    files = sequence_files(asset_folder)
    legacy = storage.join(asset_folder, LEGACY_FILE)
    if not files and storage.exists(legacy):
        files = [legacy]
    if not files:
        raise FileNotFoundError(f"{asset_folder}: no {SEQUENCES}/part-*.parquet nor "
                                f"{LEGACY_FILE}: materialize the packed data")
    return files


def list_values(column: pa.ChunkedArray) -> list[np.ndarray]:
    """A list<...> column as one numpy array per row (no Python lists of tokens)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    offsets = arr.offsets.to_numpy()
    values = arr.values.to_numpy(zero_copy_only=False)
    return [values[offsets[i]:offsets[i + 1]] for i in range(len(arr))]


def row_groups(files: Sequence[str], columns: list[str]) -> Iterator[tuple[str, int, pa.Table]]:
    """``(file, row group index, table)`` for each row group of ``files`` in order, one at a
    time (object stores read ranges, so only that row group's columns are fetched)."""
    for f in files:
        with storage.open_input(f) as fh:
            pf = pq.ParquetFile(fh)
            for g in range(pf.num_row_groups):
                yield f, g, pf.read_row_group(g, columns=columns)


def read_sequences(asset_folder: str, columns: list[str] | None = None) -> pa.Table:
    """The whole packed dataset in seq_id order (``dataset_files``). For tests and small
    data; trainers stream the parts."""
    return pa.concat_tables([storage.read_parquet(f, columns)
                             for f in dataset_files(asset_folder)])
