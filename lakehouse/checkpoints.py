"""Training folders on a lake that may be an object store.

DeepSpeed and Hugging Face write checkpoints to a local folder and read them back from one.
With the lake on s3:// the trainer works in a local scratch folder: the run's folder is
pulled from the lake before training (so a re-run resumes from the last uploaded DeepSpeed
checkpoint), every new checkpoint tag is pushed as soon as it is written, and the final model
is pushed with its ``config.json`` last, so that a reader that checks for ``config.json``
(the evaluation asset) never sees a half-uploaded model. On a local lake the folder is used
in place and nothing is copied.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from lakehouse.storage import filesystem, is_url

SCRATCH_ENV = "ELONG_SCRATCH"  # where a pod keeps its local copy (default: the temp folder)


def scratch_for(location: str) -> Path:
    """The local folder to work in for ``location``: the location itself on a local lake,
    else a fresh folder under ``$ELONG_SCRATCH`` (or the system temp folder)."""
    if not is_url(location):
        return Path(location)
    base = os.environ.get(SCRATCH_ENV) or None
    if base:
        Path(base).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="elong-train-", dir=base))


def pull(location: str, local: Path, parts: tuple[str, ...]) -> list[str]:
    """Copy ``parts`` (files or folders below ``location``) that exist there into ``local``;
    returns what was copied (nothing on a local lake: ``local`` is the location)."""
    if not is_url(location):
        return []
    fs, base = filesystem(location)
    got = []
    for part in parts:
        src = f"{base.rstrip('/')}/{part}"
        if not fs.exists(src):
            continue
        dst = local / part
        if fs.isdir(src):
            dst.mkdir(parents=True, exist_ok=True)
            fs.get(src.rstrip("/") + "/", str(dst), recursive=True)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(src, str(dst))
        got.append(part)
    return got


def pull_folder(location: str, local: Path) -> Path:
    """The folder at ``location`` as a local folder: itself on a local lake, else a copy in
    ``local`` (e.g. a trained model for evaluation)."""
    if not is_url(location):
        return Path(location)
    fs, base = filesystem(location)
    local.mkdir(parents=True, exist_ok=True)
    fs.get(base.rstrip("/") + "/", str(local), recursive=True)
    return local


def push(local: Path, location: str, part: str, last: tuple[str, ...] = ()) -> None:
    """Upload ``local/part`` (a file or a folder) to ``location/part``; files named in
    ``last`` are uploaded after all others (the marker a reader checks for)."""
    if not is_url(location):
        return
    fs, base = filesystem(location)
    root = local / part
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.name in last)
    for path in files:
        fs.put_file(str(path), f"{base.rstrip('/')}/{path.relative_to(local).as_posix()}")


def push_checkpoints(local: Path, location: str, folder: str, pushed: set[str]) -> None:
    """Upload the checkpoint tags (sub-folders) of ``local/folder`` not in ``pushed`` (adding
    them), then DeepSpeed's ``latest`` file naming the newest, once something new went up."""
    root = local / folder
    if not is_url(location) or not root.is_dir():
        return
    new = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in pushed)
    for tag in new:
        push(local, location, f"{folder}/{tag}")
        pushed.add(tag)
    if new and (root / "latest").exists():
        push(local, location, f"{folder}/latest")


def release(location: str, local: Path) -> None:
    """Remove the scratch copy of a URL location (a local lake's folder stays)."""
    if is_url(location):
        shutil.rmtree(local, ignore_errors=True)
