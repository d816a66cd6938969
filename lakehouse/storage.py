"""Lake layout and atomic writes.

Every stage output lives at ``<root>/<asset>/<corpus>/<shard>.parquet``. Writes go to a
temporary name in the same folder and are renamed into place, so a killed process leaves
either the old file or the new one, never half of one. On object stores (any fsspec URL) a
single PUT is already atomic, so the bytes are uploaded in one request.
"""

from __future__ import annotations

import io
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

TMP_MARK = ".tmp-"

# Fixed writer options: same table in, same bytes out.
PARQUET_OPTIONS = dict(compression="zstd", compression_level=3, use_dictionary=True,
                       write_statistics=True, row_group_size=64 * 1024)


def is_url(location: str | os.PathLike) -> bool:
    return "://" in str(location) and not str(location).startswith("file://")


def join(root: str | os.PathLike, *parts: str) -> str:
    """Join path parts under a local folder or a URL."""
    root = str(root).rstrip("/")
    return "/".join([root, *parts])


def temp_path(target: Path) -> Path:
    """A private name beside ``target`` to write to before the rename.

    The leading dot hides it from Arrow datasets and shell globs and the suffix keeps it
    out of ``*.parquet`` patterns, so no reader ever sees a half-written file.
    """
    return target.with_name(f".{target.name}{TMP_MARK}{uuid.uuid4().hex[:12]}")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clear_stale_temps(target: Path) -> int:
    """Remove what killed writers of ``target`` left behind; returns how many.

    A SIGKILL gives the writer no chance to clean up, so the next writer of the same file
    does it. Each lake file has one writer at a time (one run per partition and asset).
    """
    stale = list(target.parent.glob(f".{target.name}{TMP_MARK}*"))
    for path in stale:
        _remove(path)
    return len(stale)


def publish(tmp: Path, target: Path) -> None:
    """Move a finished temporary file into place in one step (rename on one filesystem)."""
    os.replace(tmp, target)


@contextmanager
def staged(target: Path) -> Iterator[Path]:
    """Write a local file or folder under a temporary name; publish it if the block succeeds.

    Yields the (not yet existing) temporary path beside ``target``. On success an existing
    folder at ``target`` is removed and the temporary is renamed into place; either way the
    temporary and anything its writer derived from its name (DuckDB's ``.wal``) are gone
    afterwards. What a killed writer leaves is cleared by the next one (clear_stale_temps).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    clear_stale_temps(target)
    tmp = temp_path(target)
    try:
        yield tmp
        if target.is_dir():
            shutil.rmtree(target)
        publish(tmp, target)
    finally:
        for leftover in target.parent.glob(f"{tmp.name}*"):
            _remove(leftover)


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[io.IOBase], None]) -> str:
    """Write a file atomically: ``write`` receives a binary file object."""
    path = str(path)
    if is_url(path):
        buf = io.BytesIO()
        write(buf)
        with fsspec.open(path, "wb") as fh:
            fh.write(buf.getvalue())
        return path
    with staged(Path(path)) as tmp, open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    return path


def write_parquet(table: pa.Table, path: str | os.PathLike) -> str:
    """Write ``table`` atomically as Parquet with the lake's fixed options."""
    return atomic_write_bytes(path, lambda fh: pq.write_table(table, fh, **PARQUET_OPTIONS))


def read_parquet(path: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
    path = str(path)
    if is_url(path):
        with fsspec.open(path, "rb") as fh:
            return pq.read_table(fh, columns=columns)
    return pq.read_table(path, columns=columns)


def exists(path: str | os.PathLike) -> bool:
    path = str(path)
    if is_url(path):
        fs, p = fsspec.core.url_to_fs(path)
        return fs.exists(p)
    return os.path.exists(path)


def leftover_temp_files(root: str | os.PathLike) -> list[str]:
    """Temporary files a killed writer left behind (should always be empty)."""
    root = Path(root)
    if not root.exists():
        return []
    return sorted(str(p) for p in root.rglob(f"*{TMP_MARK}*"))


class Lake:
    """The lake's folder layout: one Parquet file per (asset, corpus, shard)."""

    def __init__(self, root: str | os.PathLike):
        self.root = str(root) if is_url(root) else str(Path(root).resolve())

    def shard_path(self, asset: str, corpus: str, shard: str) -> str:
        return join(self.root, asset, corpus, f"{shard}.parquet")

    def asset_glob(self, asset: str) -> str:
        return join(self.root, asset, "*", "*.parquet")

    def path(self, *parts: str) -> str:
        return join(self.root, *parts)
