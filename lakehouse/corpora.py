"""Corpus specifications and shard discovery (local folders or any fsspec URL)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Literal

import fsspec

Format = Literal["parquet", "jsonl"]
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class CorpusSpec:
    """Where a corpus lives and how to read its rows (FineWeb-Edu / Cosmopedia layout)."""

    name: str
    uri: str
    format: Format = "parquet"
    text_column: str = "text"
    id_column: str | None = "id"
    glob: str | None = None  # default: "*.parquet" or "*.jsonl" directly under uri
    demo: dict = field(default_factory=dict)  # settings of a generated demo corpus, if any

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"corpus name {self.name!r} must be non-empty and contain no '/'")
        if self.format not in ("parquet", "jsonl"):
            raise ValueError(f"corpus {self.name}: format must be parquet or jsonl, "
                             f"got {self.format!r}")

    @property
    def pattern(self) -> str:
        return self.glob or ("*.parquet" if self.format == "parquet" else "*.jsonl")


@dataclass(frozen=True)
class ShardRef:
    """One shard file of a corpus; ``key`` is the Dagster partition key ``corpus/shard``."""

    corpus: str
    shard: str
    uri: str

    @property
    def key(self) -> str:
        return f"{self.corpus}/{self.shard}"


def shard_name(relative_path: str) -> str:
    """Partition-safe shard name from a file path relative to the corpus root."""
    stem = relative_path.rsplit(".", 1)[0] if "." in relative_path else relative_path
    stem = stem.replace("/", "__")
    return _SAFE.sub("_", stem)


def discover_shards(spec: CorpusSpec) -> list[ShardRef]:
    """List the shard files of a corpus, sorted, as partition references."""
    fs, root = fsspec.core.url_to_fs(spec.uri)
    if not fs.exists(root):
        return []
    root = root.rstrip("/")
    matches = sorted(fs.glob(f"{root}/{spec.pattern}"))
    refs = []
    protocol = spec.uri.split("://", 1)[0] + "://" if "://" in spec.uri else ""
    for path in matches:
        rel = path[len(root) + 1:]
        refs.append(ShardRef(spec.name, shard_name(rel), f"{protocol}{path}"))
    return refs


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
