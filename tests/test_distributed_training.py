"""Two training processes over gloo (real DeepSpeed engines, ZeRO-3 across them) follow the same
loss curve as one process given the same global batch as accumulation steps, in the uniform
and the frozen sparse mode; each rank reads its share of every step from the streamed lake
reader; rank 0 alone writes the model."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from models.distributed import TrainJob, launch, resolve_processes
from models.settings import TrainSettings, pod_gpus
from models.streamed_data import StreamedPackedData
from tests.conftest import make_tiny_llama
from tests.test_streamed_data import packed_rows, write_parts, write_weights

STEPS = 3
RTOL = 1e-6  # float32 sums in another order (gradients reduced over ranks): 6e-8 seen


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lake")
    rows = packed_rows(11, seed=4, vocab=6)  # a skewed unigram: learnt in a few steps
    files = write_parts(rows, folder / "sequences", per_file=6, per_group=2)
    write_weights(rows, folder / "weights.parquet", per_group=4)
    return files, str(folder / "weights.parquet")


def _job(lake, mode: str, processes: int, tmp_path) -> TrainJob:
    files, weights = lake
    frozen = mode != "uniform"
    settings = TrainSettings(mode=mode, frozen=True, n=8, steps=STEPS, micro_batch=1,
                             grad_accum=2 // processes, lr=2e-2, warmup_steps=0, zero_stage=3,
                             kappa=0.4, seed=3, processes=processes, checkpoint_every=0)
    data = StreamedPackedData(files, weights if frozen else None, heldout=1)
    return TrainJob(settings, data, partial(make_tiny_llama, seed=1),
                    str(tmp_path / f"ckpt-{processes}"), str(tmp_path / f"model-{processes}"))


def _curves(lake, mode: str, processes: int, tmp_path) -> list[tuple[float, float]]:
    job = _job(lake, mode, processes, tmp_path)
    seen = []
    result = launch(job, processes, seen.append)
    assert result.processes == processes
    assert [m.step for m in seen] == [m.step for m in result.history] == list(range(STEPS))
    assert (tmp_path / f"model-{processes}" / "config.json").exists()
    return [(m.loss_weighted, m.loss_unweighted) for m in result.history]


@pytest.mark.parametrize("mode", ["uniform", "sparse"])
def test_two_gloo_processes_train_as_one_with_the_same_global_batch(lake, mode, tmp_path):
    one = _curves(lake, mode, 1, tmp_path)
    two = _curves(lake, mode, 2, tmp_path)
    np.testing.assert_allclose(two, one, rtol=RTOL)
    assert one[-1][1] < one[0][1]  # it learns
    if mode == "uniform":  # the 2-process checkpoint does not resume on 1 process
        job = _job(lake, mode, 1, tmp_path)
        job = TrainJob(job.settings, job.data, job.make_model, str(tmp_path / "ckpt-2"))
        with pytest.raises(ValueError, match="written by 2 training processes"):
            launch(job, 1)


def test_the_pod_asks_for_one_gpu_per_process():
    assert pod_gpus(4) == 4
    assert pod_gpus(None, configured=8) == 8
    assert resolve_processes(3) == 3
    assert resolve_processes(None) >= 1
    with pytest.raises(ValueError):
        pod_gpus(0)
