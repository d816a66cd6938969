"""Training on every device of a machine: one process per GPU (or N CPU processes over gloo),
data parallel with ZeRO across them.

``launch`` runs one training job either in this process (one process: what a CPU run or a
one-GPU pod does) or in ``processes`` processes started with torch.multiprocessing's spawn.
Each spawned process gets the environment DeepSpeed's launcher would give it (RANK,
LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), pins its GPU, builds
the model and the DeepSpeed engine, resumes from the run's checkpoint folder, reads its share
of every global batch from the job's data source, and trains (models.training.train). Rank 0
alone reports metrics and writes the trained weights; every rank writes its checkpoint shard.
The launching process stays free of torch.distributed: it relays rank 0's step metrics to
``on_step`` (the Dagster asset logs them and uploads new checkpoints from there).
"""

from __future__ import annotations

import os
import queue as queue_module
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from models.settings import TrainSettings
from models.training import (
    INIT_FILE_ENV,
    BatchSource,
    StepMetrics,
    build_engine,
    resume,
    save_model,
    train,
)


@dataclass(frozen=True)
class TrainJob:
    """Everything a training process needs, picklable (spawned processes get a copy)."""

    settings: TrainSettings
    data: BatchSource  # e.g. models.streamed_data.StreamedPackedData
    make_model: Callable[[], torch.nn.Module]  # a module-level function or a partial of one
    checkpoint_dir: str | None = None  # DeepSpeed checkpoints (resume from the latest)
    model_dir: str | None = None  # rank 0 writes the trained weights here (save_pretrained)


@dataclass
class TrainResult:
    history: list[StepMetrics]
    start_step: int
    attention: str
    processes: int


def resolve_processes(processes: int | None) -> int:
    """Training processes: the configured number, else one per visible GPU, else 1."""
    if processes is not None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, not {processes}")
        return processes
    return torch.cuda.device_count() if torch.cuda.is_available() else 1


def first_of(load: Callable, *args, **kwargs):
    """``load(*args, **kwargs)[0]``: a picklable model factory from a loader that returns
    (model, tokenizer), as ``partial(first_of, load_training_model, spec, scorer)``."""
    return load(*args, **kwargs)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_rank(job: TrainJob, on_step: Callable[[StepMetrics], None] | None = None,
             on_checkpoint: Callable[[str], None] | None = None) -> TrainResult:
    """Train ``job`` in this process as the rank its environment names (set up first)."""
    engine = build_engine(job.make_model(), job.settings)
    ckpt = job.checkpoint_dir
    start = resume(engine, ckpt) if ckpt and Path(ckpt).exists() else 0
    history = train(engine, job.settings, job.data, ckpt, start, on_step, on_checkpoint)
    if job.model_dir:
        save_model(engine, job.model_dir)
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    return TrainResult(history, start, str(engine.module.config._attn_implementation), world)


def _spawned(local_rank: int, job: TrainJob, world: int, port: int, init_file: str,
             messages) -> None:
    """A spawned training process: the launcher's environment, then the rank's training."""
    os.environ.update(RANK=str(local_rank), LOCAL_RANK=str(local_rank),
                      WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      **{INIT_FILE_ENV: init_file})
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    first = local_rank == 0
    result = run_rank(job, (lambda m: messages.put(("step", m))) if first else None,
                      (lambda tag: messages.put(("checkpoint", tag))) if first else None)
    if local_rank == 0:
        messages.put(("done", result))
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    # End without the interpreter's teardown: a native thread still joinable there (seen
    # once in the 2-process CPU test under load) makes C++ call std::terminate, and the rank
    # would die with SIGABRT after its work is done. Everything is written by now; the
    # queue's feeder thread is flushed first so that rank 0's result is not lost.
    messages.close()
    messages.join_thread()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def launch(job: TrainJob, processes: int,
           on_step: Callable[[StepMetrics], None] | None = None,
           on_checkpoint: Callable[[str], None] | None = None) -> TrainResult:
    """Run ``job`` on ``processes`` processes (1: in this one) and return rank 0's result;
    in this process, ``on_step`` gets rank 0's metrics of each step as they come and
    ``on_checkpoint`` the tag of each checkpoint once every rank has written its part."""
    if processes == 1:
        return run_rank(job, on_step, on_checkpoint)
    import torch.multiprocessing as mp

    messages = mp.get_context("spawn").Queue()
    rendezvous = tempfile.mkdtemp(prefix="elong-dist-")
    try:
        result = _relay(mp.spawn(_spawned, args=(job, processes, free_port(),
                                                 os.path.join(rendezvous, "init"), messages),
                                 nprocs=processes, join=False),
                        messages, on_step, on_checkpoint)
    finally:
        shutil.rmtree(rendezvous, ignore_errors=True)
    if result is None:
        raise RuntimeError("the training processes ended without a result from rank 0")
    return result


def _relay(context, messages, on_step, on_checkpoint) -> TrainResult | None:
    """Pass rank 0's messages on until every process has ended (raises if one failed)."""
    result = None

    def drain(block: bool) -> None:
        nonlocal result
        while True:
            try:
                kind, value = messages.get(timeout=0.5 if block else 1.0)
            except queue_module.Empty:
                return
            if kind == "step" and on_step:
                on_step(value)
            elif kind == "checkpoint" and on_checkpoint:
                on_checkpoint(value)
            elif kind == "done":
                result = value
            if block:
                return

    while not context.join(timeout=0.2):  # raises if a process failed
        drain(block=True)
    drain(block=False)
    return result
