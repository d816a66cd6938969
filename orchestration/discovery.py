"""Shard discovery shared by the sensor and the `elong register` command."""

from __future__ import annotations

from dataclasses import dataclass

import fsspec

from lakehouse.corpora import ShardRef, discover_shards, file_sha256
from orchestration.config import PipelineConfig


def configured_shards(config: PipelineConfig) -> list[ShardRef]:
    """Every shard file of every configured corpus, in config then file order."""
    refs: list[ShardRef] = []
    for spec in config.corpus_specs():
        refs.extend(discover_shards(spec))
    return refs


def find_shard(config: PipelineConfig, key: str) -> ShardRef:
    """The shard file behind a partition key, or a clear error if it is gone."""
    corpus, _, shard = key.partition("/")
    spec = config.corpus(corpus)
    for ref in discover_shards(spec):
        if ref.shard == shard:
            return ref
    raise FileNotFoundError(f"partition {key}: no shard file named {shard!r} under {spec.uri} "
                            f"(pattern {spec.pattern})")


@dataclass(frozen=True)
class ShardChanges:
    """What a look at the corpus locations found, against what was seen before."""

    new: list[str]
    changed: list[str]
    removed: list[str]
    seen: dict[str, dict]  # key -> {"sha256", "size", "mtime"}: the next cursor


def _stat(uri: str) -> tuple[int, str]:
    fs, path = fsspec.core.url_to_fs(uri)
    info = fs.info(path)
    mtime = info.get("mtime", info.get("LastModified", info.get("updated", "")))
    return int(info.get("size") or 0), str(mtime)


def diff_shards(refs: list[ShardRef], seen: dict[str, dict], known: set[str]) -> ShardChanges:
    """Compare the shard files now present with the fingerprints in ``seen``.

    A shard is new when it is not a partition yet (``known``), changed when its content hash
    differs from the one recorded, removed when a recorded or known shard has no file any
    more. The hash is recomputed only when size or modification time moved, so a quiet
    corpus costs one listing and one stat per file. A partition that exists but was never
    fingerprinted (registered by hand) is recorded without a re-run.
    """
    now: dict[str, dict] = {}
    new, changed = [], []
    for ref in refs:
        size, mtime = _stat(ref.uri)
        old = seen.get(ref.key)
        if old and old["size"] == size and old["mtime"] == mtime:
            now[ref.key] = old
        else:
            sha, size = file_sha256(ref.uri)
            now[ref.key] = {"sha256": sha, "size": size, "mtime": mtime}
        if ref.key not in known:
            new.append(ref.key)
        elif old and old["sha256"] != now[ref.key]["sha256"]:
            changed.append(ref.key)
    removed = sorted((set(seen) | known) - set(now))
    return ShardChanges(new, changed, removed, now)
