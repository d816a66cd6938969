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
from collections.abc import Callable
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


def clear_stale_temps(target: Path) -> int:
    """Remove what killed writers of ``target`` left behind; returns how many.

    A SIGKILL gives the writer no chance to clean up, so the next writer of the same file
    does it. Each lake file has one writer at a time (one run per partition and asset).
    """
    removed = 0
    for stale in target.parent.glob(f".{target.name}{TMP_MARK}*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
        removed += 1
    return removed


def publish(tmp: Path, target: Path) -> None:
    """Move a finished temporary file into place in one step (rename on one filesystem)."""
    os.replace(tmp, target)


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[io.IOBase], None]) -> str:
    """Write a file atomically: ``write`` receives a binary file object."""
    path = str(path)
    if is_url(path):
        buf = io.BytesIO()
        write(buf)
        with fsspec.open(path, "wb") as fh:
            fh.write(buf.getvalue())
        return path
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    clear_stale_temps(target)
    tmp = temp_path(target)
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        publish(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
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
