"""Result records and their output: bench/results/<name>.json plus a printed table."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Record:
    metric: str
    value: float
    baseline: float
    ratio: float
    unit: str
    target: str
    met: bool
    device: str
    params: dict


def device_name() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"cpu ({platform.processor() or platform.machine()})"


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """Fastest wall time of ``repeats`` calls (the least disturbed by a shared machine)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def report(name: str, records: list[Record]) -> Path:
    """Print the records as a table and write them to bench/results/<name>.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps([asdict(r) for r in records], indent=2))
    print(f"\n== bench/{name}  ({records[0].device if records else ''})")
    head = f"{'metric':44} {'value':>12} {'baseline':>12} {'ratio':>8}  {'unit':12} target"
    print(head)
    print("-" * len(head))
    for r in records:
        mark = "met" if r.met else "NOT MET"
        print(f"{r.metric:44} {r.value:12.4g} {r.baseline:12.4g} {r.ratio:8.3f}  "
              f"{r.unit:12} {r.target} [{mark}]")
    return out
