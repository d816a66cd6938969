"""Corpus specifications and shard discovery (local folders or any fsspec URL)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Literal

import fsspec

from lakehouse.storage import filesystem

Format = Literal["parquet", "jsonl"]
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")

# Compression suffixes a JSONL shard may carry (decompressed on read, by name).
COMPRESSION_SUFFIXES = (".gz", ".zst", ".bz2", ".xz")
FORMAT_SUFFIXES = (".parquet", ".jsonl", ".ndjson", ".json")
DEFAULT_GLOBS: dict[str, tuple[str, ...]] = {
    "parquet": ("*.parquet",),
    "jsonl": ("*.jsonl", *(f"*.jsonl{suffix}" for suffix in COMPRESSION_SUFFIXES)),
}


@dataclass(frozen=True)
class CorpusSpec:
    """Where a corpus lives and how to read its rows (FineWeb-Edu / Cosmopedia layout)."""

    name: str
    uri: str
    format: Format = "parquet"
    text_column: str = "text"
    id_column: str | None = "id"
    glob: str | None = None  # default: the format's files directly under uri (DEFAULT_GLOBS)
    demo: dict = field(default_factory=dict)  # settings of a generated demo corpus, if any

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"corpus name {self.name!r} must be non-empty and contain no '/'")
        if self.format not in ("parquet", "jsonl"):
            raise ValueError(f"corpus {self.name}: format must be parquet or jsonl, "
                             f"got {self.format!r}")

    @property
    def patterns(self) -> tuple[str, ...]:
        """Glob patterns, relative to ``uri``, that select the shard files."""
        return (self.glob,) if self.glob else DEFAULT_GLOBS[self.format]

    @property
    def pattern(self) -> str:
        """The patterns as one line, for messages."""
        return ", ".join(self.patterns)


@dataclass(frozen=True)
class ShardRef:
    """One shard file of a corpus; ``key`` is the Dagster partition key ``corpus/shard``."""

    corpus: str
    shard: str
    uri: str

    @property
    def key(self) -> str:
        return f"{self.corpus}/{self.shard}"


def _strip_suffix(name: str, suffixes: tuple[str, ...]) -> tuple[str, bool]:
    for suffix in suffixes:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], True
    return name, False


def shard_name(relative_path: str) -> str:
    """Partition-safe shard name from a file path relative to the corpus root.

    The format and compression suffixes are dropped (``part-0.jsonl.gz`` -> ``part-0``), so
    recompressing a shard keeps its partition; a name with neither loses its last suffix.
    """
    stem, compressed = _strip_suffix(relative_path, COMPRESSION_SUFFIXES)
    stem, formatted = _strip_suffix(stem, FORMAT_SUFFIXES)
    if not (compressed or formatted) and "." in stem.rsplit("/", 1)[-1]:
        stem = stem.rsplit(".", 1)[0]
    stem = stem.replace("/", "__")
    return _SAFE.sub("_", stem) or _SAFE.sub("_", relative_path.replace("/", "__"))


def _listing(spec: CorpusSpec) -> list[tuple[ShardRef, dict]]:
    """The corpus's shard files with the metadata the listing returned (one LIST request per
    1,000 objects on S3; nothing is opened)."""
    fs, root = filesystem(spec.uri)
    fs.invalidate_cache()  # a listing cached by this process would hide new shards
    if not fs.exists(root):
        return []
    root = root.rstrip("/")
    found: dict[str, dict] = {}
    for pattern in spec.patterns:
        found.update(fs.glob(f"{root}/{pattern}", detail=True))
    refs: dict[str, tuple[ShardRef, dict]] = {}
    protocol = spec.uri.split("://", 1)[0] + "://" if "://" in spec.uri else ""
    for path in sorted(found):
        if found[path].get("type") == "directory":
            continue
        rel = path[len(root) + 1:]
        ref = ShardRef(spec.name, shard_name(rel), f"{protocol}{path}")
        if ref.key in refs:
            raise ValueError(f"corpus {spec.name}: {refs[ref.key][0].uri} and {ref.uri} both "
                             f"map to partition {ref.key}; keep one of them")
        refs[ref.key] = (ref, found[path])
    return sorted(refs.values(), key=lambda item: item[0].uri)


def discover_shards(spec: CorpusSpec) -> list[ShardRef]:
    """List the shard files of a corpus, sorted, as partition references.

    Two files that would share a partition key (``a.jsonl`` beside ``a.jsonl.gz``) are an
    error naming both, not a silent pick of one.
    """
    return [ref for ref, _ in _listing(spec)]


# --- change detection from object metadata -------------------------------------------------

# Fields of a listing that identify an object's content without reading it: S3's ETag
# (the MD5 of the bytes for a single-part upload), GCS's md5Hash, the Hub's blob id.
_CONTENT_TAGS = ("ETag", "etag", "md5Hash", "blob_id")


def _fingerprint(info: dict) -> dict:
    """Size, modification time and content tag of one listed file (JSON-able)."""
    tag = next((str(info[name]).strip('"') for name in _CONTENT_TAGS if info.get(name)), None)
    if tag is None and isinstance(info.get("lfs"), dict) and info["lfs"].get("sha256"):
        tag = str(info["lfs"]["sha256"])
    mtime = next((info[name] for name in ("mtime", "LastModified", "updated", "last_modified")
                  if info.get(name) is not None), None)
    if hasattr(mtime, "isoformat"):
        mtime = mtime.isoformat()
    return {"size": int(info.get("size") or 0), "mtime": None if mtime is None else str(mtime),
            "etag": tag}


def shard_fingerprint(uri: str) -> dict:
    """Fingerprint of one shard file from its metadata (one HEAD/stat, never a read):
    ``{"size", "mtime", "etag"}``; ``etag`` is None on a local disk. Raises
    FileNotFoundError when the file is gone."""
    fs, path = filesystem(uri)
    fs.invalidate_cache(path)
    return _fingerprint(fs.info(path))


def corpus_fingerprints(spec: CorpusSpec) -> dict[str, tuple[ShardRef, dict]]:
    """Partition key -> (shard, fingerprint) for every shard of a corpus, from one listing."""
    return {ref.key: (ref, _fingerprint(info)) for ref, info in _listing(spec)}


def fingerprint_changed(old: dict, new: dict) -> bool:
    """Whether a shard's content may have changed between two fingerprints.

    With a content tag on both sides (object stores) the tag and size decide: the same bytes
    uploaded again (a newer modification time, the same single-part ETag) are unchanged; other
    bytes of the same size are changed. A multipart ETag depends on the part size too, so the
    same bytes re-uploaded in other parts count as changed (a needless re-run, never a missed
    change). Without a tag (a local disk) any change of size or modification time counts.
    """
    if old.get("size") != new.get("size"):
        return True
    if old.get("etag") and new.get("etag"):
        return old["etag"] != new["etag"]
    return old.get("mtime") != new.get("mtime")


@dataclass(frozen=True)
class FingerprintDiff:
    """Shards new since, changed since, unchanged since, and gone since the last look."""

    new: list[str]
    changed: list[str]
    unchanged: list[str]
    removed: list[str]


def diff_fingerprints(seen: dict[str, dict], now: dict[str, dict]) -> FingerprintDiff:
    """Compare fingerprints by partition key (``seen``: the last cursor; ``now``: a listing)."""
    new = sorted(k for k in now if k not in seen)
    common = sorted(k for k in now if k in seen)
    changed = [k for k in common if fingerprint_changed(seen[k], now[k])]
    unchanged = sorted(set(common) - set(changed))
    return FingerprintDiff(new, changed, unchanged, sorted(k for k in seen if k not in now))


def split_key(key: str) -> tuple[str, str]:
    """``"corpus/shard"`` -> ``("corpus", "shard")``."""
    corpus, sep, shard = key.partition("/")
    if not sep or not corpus or not shard:
        raise ValueError(f"partition key {key!r} is not of the form 'corpus/shard'")
    return corpus, shard


def file_sha256(uri: str) -> tuple[str, int]:
    """Content hash and size of a shard file: what a re-run compares to spot a changed shard."""
    h = hashlib.sha256()
    size = 0
    with fsspec.open(uri, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size
