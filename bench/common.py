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


def run_point(module: str, point: str, options: list[str]) -> dict:
    """Run ``python -m <module> --point <point> <options>`` in a fresh process (so that its
    peak RSS is its own) and return the JSON object its last output line prints."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", module, "--point", point, *options],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{module} --point {point}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_exponent(points: list[dict], size: str) -> float:
    """Least-squares slope of log(peak) against log(points' ``size``): how peak memory grows
    with the measured size (1: linearly). NaN below two points."""
    import math

    import numpy as np

    if len(points) < 2:
        return math.nan
    x = np.log([p[size] for p in points])
    y = np.log([max(p["peak"], 1) for p in points])
    return float(np.polyfit(x, y, 1)[0])


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


class PeakRSS:
    """Peak resident memory above the level at entry, sampled every few milliseconds.

    Works for any allocator (torch's CPU allocations are invisible to tracemalloc).
    """

    def __init__(self, interval: float = 0.002):
        self.interval, self.peak = interval, 0

    def __enter__(self) -> PeakRSS:
        import threading

        import psutil

        self._proc = psutil.Process()
        self._base = self._proc.memory_info().rss
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.is_set():
                self.peak = max(self.peak, self._proc.memory_info().rss - self._base)
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss - self._base)
