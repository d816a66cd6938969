"""Training and evaluation with the lake on a real S3 server (moto's, started by the fixture):
checkpoints and the trained model of a two-process run land on the object store, a re-run
resumes from the uploaded DeepSpeed checkpoint, the losses equal those of one process with
the same global batch on a local lake, and evaluation reads the model back from the object
store."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from lakehouse.storage import filesystem, read_parquet
from orchestration.cli import register
from orchestration.config import load_config
from tests.conftest import materialize
from tests.object_store import s3_bucket, s3_server  # noqa: F401  (fixtures)
from tests.test_pipeline import run_pipeline

RUN = "entropylong-sparse"


def _metadata(result, asset: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events()
               if e.asset_key == dg.AssetKey(asset)]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _config(tiny_config: Path, folder: Path, lake: str, **training) -> Path:
    """The tiny config with its lake at ``lake`` and ``training`` settings changed."""
    local = load_config(tiny_config)
    raw = yaml.safe_load(tiny_config.read_text())
    raw["lake"] = lake
    raw["training"].update(training)
    for corpus in raw["corpora"]:
        corpus["uri"] = local.corpus(corpus["name"]).uri
    folder.mkdir()
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return folder / "pipeline.yaml"


@pytest.mark.slow  # the tiny pipeline (MiniLM), then three trainings and one evaluation
def test_training_on_object_storage_uploads_resumes_and_matches_a_local_lake(
        tiny_config, s3_bucket, tmp_path, monkeypatch):  # noqa: F811
    scratch = tmp_path / "scratch"
    monkeypatch.setenv("ELONG_SCRATCH", str(scratch))
    local = load_config(tiny_config)
    run_pipeline(tiny_config, dg.DagsterInstance.ephemeral())  # data graph + token weights
    fs, _ = filesystem(s3_bucket.url)
    for folder in ("packed_dataset", "baseline_dataset", "token_weights"):
        fs.put(str(Path(local.lake) / folder) + "/", f"{s3_bucket.name}/lake/{folder}",
               recursive=True)
    # on the object store the run trains on two processes (gloo), so the asset's launcher,
    # its rank-0 relay and the upload after every rank has written are what run here
    remote_config = _config(tiny_config, tmp_path / "remote", f"{s3_bucket.url}/lake",
                            processes=2)
    instance = dg.DagsterInstance.ephemeral()
    register(remote_config, instance)

    first = materialize(remote_config, ["trained_model"], RUN, instance)
    assert first.success
    base = f"{s3_bucket.name}/lake/trained_model/{RUN}"
    for name in ("model/config.json", "deepspeed/latest", "metrics.parquet"):
        assert fs.exists(f"{base}/{name}"), name
    steps = load_config(remote_config).training.steps
    assert _metadata(first, "trained_model")["resumed_from_step"] == 0
    assert _metadata(first, "trained_model")["processes"] == 2
    assert not scratch.exists() or not any(scratch.iterdir())  # the scratch copy is gone

    # a re-run (a fresh pod: no local state) resumes from the uploaded checkpoint
    again = materialize(remote_config, ["trained_model"], RUN, instance)
    assert _metadata(again, "trained_model")["resumed_from_step"] == steps

    # the same run on the local lake, on one process accumulating two micro-batches (the
    # same global batch), has the same losses
    local_config = _config(tiny_config, tmp_path / "local", str(local.lake), grad_accum=2)
    local_instance = dg.DagsterInstance.ephemeral()
    register(local_config, local_instance)
    assert materialize(local_config, ["trained_model"], RUN, local_instance).success
    here = read_parquet(f"{local.lake}/trained_model/{RUN}/metrics.parquet")
    there = read_parquet(f"{s3_bucket.url}/lake/trained_model/{RUN}/metrics.parquet")
    assert here["step"].to_pylist() == there["step"].to_pylist() == list(range(steps))
    assert there["loss_unweighted"].to_pylist() == pytest.approx(
        here["loss_unweighted"].to_pylist(), rel=1e-6)

    evaluated = materialize(remote_config, ["evaluation"], RUN, instance)
    assert evaluated.success
    results = read_parquet(f"{s3_bucket.url}/lake/evaluation/{RUN}.parquet")
    assert {"niah_single_1", "heldout_ppl"} <= set(results["task"].to_pylist())
