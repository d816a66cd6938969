"""Lake layout and atomic writes, on a local disk or any fsspec URL (s3://, gs://, memory://).

Every stage output lives at ``<root>/<asset>/<corpus>/<shard>.parquet``. Every lake access
(exists, listing, reading, writing) goes through the location's fsspec filesystem, so a lake on
an object store behaves as one on disk. Writes are all-or-nothing:

- local: the bytes go to a temporary name in the same folder, which is renamed into place, so
  a killed process leaves either the old file or the new one, never half of one;
- S3: the bytes stream out as a multipart upload (parts of ``upload_part_bytes``; a small file
  is one PUT) and the object appears only when the upload is completed, after the last byte.
  A failed write aborts its upload; one killed outright leaves an incomplete upload (invisible
  to readers, billed until aborted), which the next writer of the same key aborts;
- other URLs: a temporary name beside the target, moved into place when complete.
"""

from __future__ import annotations

import io
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

TMP_MARK = ".tmp-"
UPLOAD_PART_BYTES = 64 << 20  # S3 allows 5 MiB to 5 GiB a part and 10,000 parts an object

# Fixed writer options: same table in, same bytes out.
PARQUET_OPTIONS = dict(compression="zstd", compression_level=3, use_dictionary=True,
                       write_statistics=True, row_group_size=64 * 1024)


class StorageSettings(BaseModel):
    """How lake files are written to an object store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Part size of a multipart upload, in bytes: the memory a writer buffers, and the file
    # size above which an upload has parts (S3: at least 5 MiB; 10,000 parts at most).
    upload_part_bytes: int = Field(default=UPLOAD_PART_BYTES, ge=5 << 20, le=5 << 30)


def is_url(location: str | os.PathLike) -> bool:
    return "://" in str(location) and not str(location).startswith("file://")


def join(root: str | os.PathLike, *parts: str) -> str:
    """Join path parts under a local folder or a URL."""
    root = str(root).rstrip("/")
    return "/".join([root, *parts])


def filesystem(location: str | os.PathLike) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem holding ``location`` and the path within it."""
    location = str(location)
    if is_url(location):
        return fsspec.core.url_to_fs(location)
    if location.startswith("file://"):
        location = location[len("file://"):]
    return fsspec.filesystem("file"), os.path.abspath(location)


def _location(fs: fsspec.AbstractFileSystem, like: str, path: str) -> str:
    """A path returned by a filesystem, spelt as locations like ``like`` are (URL or not)."""
    return fs.unstrip_protocol(path) if is_url(like) else path


def _is_s3(fs: fsspec.AbstractFileSystem) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "s3" in protocol


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


def clear_stale_uploads(fs: fsspec.AbstractFileSystem, path: str) -> int:
    """Abort the incomplete multipart uploads of exactly this S3 key (killed writers')."""
    bucket, key, _ = fs.split_path(path)
    try:
        listing = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=key)
    except Exception:  # noqa: BLE001 - best effort: no permission to list is not an error
        return 0
    stale = [u for u in listing.get("Uploads", []) if u["Key"] == key]
    for upload in stale:
        fs.abort_mpu(bucket, key, upload["UploadId"])
    return len(stale)


@contextmanager
def _s3_writer(fs: fsspec.AbstractFileSystem, path: str, part_bytes: int) -> Iterator[IO]:
    clear_stale_uploads(fs, path)
    fh = fs.open(path, "wb", block_size=part_bytes)
    try:
        yield fh
        fh.close()  # completes the upload (or one PUT): the object appears whole
    except BaseException:
        if not fh.closed:
            fh.discard()  # aborts the multipart upload: nothing appears under the name
            fh.closed = True  # never committed, not even when garbage-collected
        elif getattr(fh, "mpu", None):  # completing failed: abort what was uploaded
            with suppress(Exception):  # else the next writer of this key aborts it
                fs.abort_mpu(*fs.split_path(path)[:2], fh.mpu["UploadId"])
        raise


@contextmanager
def open_output(path: str | os.PathLike, part_bytes: int = UPLOAD_PART_BYTES) -> Iterator[IO]:
    """A binary file to write ``path`` through; published only if the block succeeds."""
    path = str(path)
    if not is_url(path):
        with staged(Path(path)) as tmp, open(tmp, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        return
    fs, fpath = filesystem(path)
    if _is_s3(fs):
        with _s3_writer(fs, fpath, part_bytes) as fh:
            yield fh
        return
    parent, name = fpath.rsplit("/", 1) if "/" in fpath else ("", fpath)
    tmp = f"{parent}/.{name}{TMP_MARK}{uuid.uuid4().hex[:12]}"
    try:
        with fs.open(tmp, "wb") as fh:
            yield fh
        fs.mv(tmp, fpath)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[io.IOBase], None],
                       part_bytes: int = UPLOAD_PART_BYTES) -> str:
    """Write a file atomically: ``write`` receives a binary file object (streamed out)."""
    with open_output(path, part_bytes) as fh:
        write(fh)
    return str(path)


def write_parquet(table: pa.Table, path: str | os.PathLike,
                  part_bytes: int = UPLOAD_PART_BYTES) -> str:
    """Write ``table`` atomically as Parquet with the lake's fixed options."""
    return atomic_write_bytes(path, lambda fh: pq.write_table(table, fh, **PARQUET_OPTIONS),
                              part_bytes)


@contextmanager
def open_input(path: str | os.PathLike) -> Iterator[IO]:
    """A binary file to read ``path`` from (random access: object stores use range reads)."""
    fs, fpath = filesystem(path)
    with fs.open(fpath, "rb") as fh:
        yield fh


def read_bytes(path: str | os.PathLike) -> bytes:
    fs, fpath = filesystem(path)
    return fs.cat_file(fpath)


def read_parquet(path: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
    path = str(path)
    if not is_url(path):
        return pq.read_table(path, columns=columns)
    with open_input(path) as fh:
        return pq.read_table(fh, columns=columns)


def exists(path: str | os.PathLike) -> bool:
    path = str(path)
    if not is_url(path):
        return os.path.exists(path)
    fs, fpath = filesystem(path)
    fs.invalidate_cache(fpath)
    return fs.exists(fpath)


def glob(pattern: str | os.PathLike) -> list[str]:
    """Files matching a glob pattern, sorted, spelt like ``pattern`` (URL or local path).

    Listings are read fresh (fsspec caches object-store listings per process, which would
    hide what another process wrote).
    """
    pattern = str(pattern)
    fs, fpattern = filesystem(pattern)
    fs.invalidate_cache()
    return sorted(_location(fs, pattern, p) for p in fs.glob(fpattern)
                  if TMP_MARK not in p.rsplit("/", 1)[-1])


def listdir(folder: str | os.PathLike) -> list[str]:
    """Entries directly under ``folder`` (files and folders), sorted; [] if it is absent."""
    folder = str(folder).rstrip("/")
    fs, fpath = filesystem(folder)
    fs.invalidate_cache(fpath)
    try:
        entries = fs.ls(fpath, detail=False)
    except FileNotFoundError:
        return []
    return sorted(_location(fs, folder, p.rstrip("/")) for p in entries
                  if TMP_MARK not in p.rstrip("/").rsplit("/", 1)[-1]
                  and p.rstrip("/") != fpath.rstrip("/"))


def remove(path: str | os.PathLike, recursive: bool = False) -> None:
    """Delete a file (or, with ``recursive``, a folder); absent is fine."""
    fs, fpath = filesystem(path)
    if fs.exists(fpath):
        fs.rm(fpath, recursive=recursive)


def leftover_temp_files(root: str | os.PathLike) -> list[str]:
    """Temporary files a killed writer left behind (should always be empty)."""
    root = str(root)
    if not is_url(root):
        local = Path(root)
        return sorted(str(p) for p in local.rglob(f"*{TMP_MARK}*")) if local.exists() else []
    fs, froot = filesystem(root)
    fs.invalidate_cache()
    if not fs.exists(froot):
        return []
    return sorted(_location(fs, root, p) for p in fs.find(froot) if TMP_MARK in p)


class Lake:
    """The lake's folder layout: one Parquet file per (asset, corpus, shard)."""

    def __init__(self, root: str | os.PathLike, settings: StorageSettings | None = None):
        self.root = str(root) if is_url(root) else str(Path(root).resolve())
        self.settings = settings or StorageSettings()

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return filesystem(self.root)[0]

    def shard_path(self, asset: str, corpus: str, shard: str) -> str:
        return join(self.root, asset, corpus, f"{shard}.parquet")

    def asset_glob(self, asset: str) -> str:
        return join(self.root, asset, "*", "*.parquet")

    def path(self, *parts: str) -> str:
        return join(self.root, *parts)

    def glob(self, *parts: str) -> list[str]:
        """Lake files matching a pattern under the root (``glob("chunks", "*", "*.parquet")``)."""
        return glob(self.path(*parts))

    def list(self, *parts: str) -> list[str]:
        """Entries directly under a lake folder (absent folder: [])."""
        return listdir(self.path(*parts))

    def exists(self, *parts: str) -> bool:
        return exists(self.path(*parts))

    def write_parquet(self, table: pa.Table, path: str) -> str:
        return write_parquet(table, path, self.settings.upload_part_bytes)

    def read_parquet(self, path: str, columns: list[str] | None = None) -> pa.Table:
        return read_parquet(path, columns)
