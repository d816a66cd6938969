"""Shard discovery shared by the sensor and the `elong register` command."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from lakehouse.corpora import (
    ShardRef,
    corpus_fingerprints,
    discover_shards,
    file_sha256,
    fingerprint_changed,
)
from lakehouse.storage import is_url
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
    seen: dict[str, dict]  # key -> fingerprint {"size", "mtime", "etag"[, "sha256"]}


def fingerprint_id(fp: dict) -> str:
    """A short stable id of a fingerprint (the sensor's run key)."""
    blob = json.dumps(fp, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _changed(old: dict, new: dict) -> bool:
    if "sha256" in old and "sha256" in new:
        return old["sha256"] != new["sha256"]
    return fingerprint_changed(old, new)


def diff_shards(config: PipelineConfig, seen: dict[str, dict], known: set[str]
                ) -> tuple[list[ShardRef], ShardChanges]:
    """Compare the shard files now listed with the fingerprints in ``seen``.

    A shard is new when it is not a partition yet (``known``), changed when its fingerprint
    moved, removed when a recorded or known shard has no file any more. Fingerprints come
    from one listing per corpus (size, mtime, ETag): a shard is never read on an object
    store. A local file whose mtime moved but not its size is hashed to tell a touch from an
    edit (reading a local file is what the listing costs anyway on a small folder; an
    object store's ETag says the same without a read). A partition that exists but was
    never fingerprinted (registered by hand) is recorded without a re-run.
    """
    refs: list[ShardRef] = []
    now: dict[str, dict] = {}
    for spec in config.corpus_specs():
        for key, (ref, fp) in corpus_fingerprints(spec).items():
            refs.append(ref)
            old = seen.get(key)
            if not fp["etag"] and not is_url(ref.uri):  # local: the hash tells touch from edit
                moved = old is None or "sha256" not in old or fingerprint_changed(old, fp)
                fp = {**fp, "sha256": file_sha256(ref.uri)[0] if moved else old["sha256"]}
            now[key] = fp
    new = [k for k in now if k not in known]
    changed = [k for k in now if k in known and k in seen and _changed(seen[k], now[k])]
    removed = sorted((set(seen) | known) - set(now))
    return refs, ShardChanges(new, changed, removed, now)
