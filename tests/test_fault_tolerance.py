"""SIGKILL a materialization in the middle of ingest, entropy profiling and packing, then
re-run it: the outputs are byte-identical to an uninterrupted run and no temporary file is
left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from lakehouse.storage import leftover_temp_files
from orchestration.cli import register
from orchestration.config import load_config
from orchestration.sensors import INGEST_ASSETS
from tests.conftest import materialize
from tests.test_pipeline import run_pipeline

ROOT = Path(__file__).resolve().parents[1]

# (asset, partition, lake folders it writes, which publish to die at)
CASES = [
    # ingest writes docs, quarantine, duplicates and stats: die with docs already replaced
    (",".join(INGEST_ASSETS), "planted/shard-00000",
     ("corpus_shards", "quarantine", "duplicates", "shard_stats"), 2),
    # one profile file: die with it fully written under its temporary name
    ("entropy_profiles", "planted/shard-00001", ("entropy_profiles",), 1),
    # sequences then manifest: die between the two
    ("packed_dataset", "-", ("packed_dataset",), 2),
]


def _outputs(lake: Path) -> dict[str, bytes]:
    return {str(p.relative_to(lake)): p.read_bytes() for p in sorted(lake.rglob("*"))
            if p.is_file() and p.suffix == ".parquet"}


def _materialize(config: Path, asset: str, partition: str) -> None:
    instance = dg.DagsterInstance.ephemeral()
    register(config, instance)
    res = materialize(config, asset.split(","), None if partition == "-" else partition,
                      instance)
    assert res.success


@pytest.mark.slow  # builds the whole tiny pipeline once (MiniLM)
def test_killed_materializations_rerun_to_identical_bytes(tiny_config):
    run_pipeline(tiny_config, dg.DagsterInstance.ephemeral())
    lake = Path(load_config(tiny_config).lake)
    for asset, partition, folders, kill_at in CASES:
        reference = _outputs(lake)
        for folder in folders:  # the killed run is the first: its outputs do not exist yet
            for path in list((lake / folder).rglob("*.parquet")):
                if partition == "-" or f"{path.parent.name}/{path.stem}" == partition:
                    path.unlink()
        child = subprocess.run(
            [sys.executable, str(ROOT / "tests/killed_step.py"), str(tiny_config), asset,
             partition, str(kill_at)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
            text=True, timeout=300)
        assert child.returncode == -signal.SIGKILL, (asset, child.returncode,
                                                     child.stderr[-3000:])
        left = leftover_temp_files(lake)
        assert left, f"{asset}: the kill left no temporary file; it did not hit mid-write"
        assert _outputs(lake) != reference, asset  # the killed run left the lake incomplete
        _materialize(tiny_config, asset, partition)
        assert _outputs(lake) == reference, asset
        assert leftover_temp_files(lake) == [], asset
