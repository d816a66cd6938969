"""Packed sequences as bounded Parquet part files: split by rows, bounded row groups, same
bytes on a re-run, stale parts removed, on a local lake and on S3 (moto's server)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse import storage, tables
from lakehouse.packed_files import (
    LEGACY_FILE,
    part_name,
    read_sequences,
    row_bytes,
    sequence_files,
    split_rows,
    write_sequences,
)

pytest_plugins = ("tests.object_store",)  # the s3_server and s3_bucket fixtures

TARGET = 4096  # 16 KiB of int32 ids a row


def _sequences(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 49152, (rows, TARGET), dtype=np.int32)
    spans = [[[0, 1000], [1000, 4000]] for _ in range(rows)]
    return pa.Table.from_pydict({"seq_id": list(range(rows)), "input_ids": list(ids),
                                 "indices": spans, "n_pad": [96] * rows},
                                schema=tables.PACKED_SEQUENCES)


def test_row_bytes_count_the_uncompressed_columns():
    sizes = row_bytes(_sequences(3))
    # seq_id 8 + ids 4 * 4096 + offset 8 + two spans of 2 int64 + offset 8 + n_pad 8
    assert sizes.tolist() == [8 + 4 * TARGET + 8 + 32 + 8 + 8] * 3


def test_split_is_greedy_by_rows_and_a_large_row_stands_alone():
    assert split_rows(np.array([3, 3, 3, 3, 3]), 7) == [(0, 2), (2, 4), (4, 5)]
    assert split_rows(np.array([2, 10, 2]), 5) == [(0, 1), (1, 2), (2, 3)]
    assert split_rows(np.array([], dtype=np.int64), 5) == [(0, 0)]


def _check_round_trip(folder: str, table: pa.Table, max_mb: float) -> list[str]:
    parts = write_sequences(table, folder, max_mb, row_group_rows=4)
    assert parts == sequence_files(folder) and len(parts) > 2
    assert [p.rsplit("/", 1)[-1] for p in parts] == [part_name(i) for i in range(len(parts))]
    assert read_sequences(folder).equals(table)
    for p in parts:
        with storage.open_input(p) as fh:
            meta = pq.ParquetFile(fh).metadata
        assert meta.num_rows * row_bytes(table)[0] <= max_mb * (1 << 20)
        assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= 4
    return parts


def test_parts_round_trip_are_bounded_and_rerun_gives_the_same_bytes(tmp_path):
    table = _sequences(40)
    folder = str(tmp_path / "packed_dataset")
    max_mb = 10 * row_bytes(table)[0] / (1 << 20)  # ten rows a file
    parts = _check_round_trip(folder, table, max_mb)
    assert len(parts) == 4
    first = [storage.read_bytes(p) for p in parts]
    assert [storage.read_bytes(p) for p in write_sequences(table, folder, max_mb, 4)] == first


def test_a_smaller_rerun_removes_stale_parts_and_the_legacy_file(tmp_path):
    folder = tmp_path / "packed_dataset"
    folder.mkdir()
    storage.write_parquet(_sequences(2), str(folder / LEGACY_FILE))
    assert read_sequences(str(folder)).num_rows == 2  # a lake from before the folder
    big, small = _sequences(40), _sequences(12, seed=1)
    max_mb = 10 * row_bytes(big)[0] / (1 << 20)
    write_sequences(big, str(folder), max_mb, 4)
    assert not (folder / LEGACY_FILE).exists()
    parts = write_sequences(small, str(folder), max_mb, 4)
    assert len(parts) == 2 and sequence_files(str(folder)) == parts
    assert read_sequences(str(folder)).equals(small)
    assert not list(folder.rglob(f"*{storage.TMP_MARK}*"))


def test_parts_on_an_object_store(s3_bucket, tmp_path):
    table = _sequences(30)
    max_mb = 8 * row_bytes(table)[0] / (1 << 20)
    remote = _check_round_trip(f"{s3_bucket.url}/lake/packed_dataset", table, max_mb)
    local = write_sequences(table, str(tmp_path / "packed_dataset"), max_mb, 4)
    assert [storage.read_bytes(p) for p in remote] == [storage.read_bytes(p) for p in local]
    small = _sequences(9, seed=2)
    write_sequences(small, f"{s3_bucket.url}/lake/packed_dataset", max_mb, 4)
    assert len(sequence_files(f"{s3_bucket.url}/lake/packed_dataset")) == 2
    assert read_sequences(f"{s3_bucket.url}/lake/packed_dataset").equals(small)
