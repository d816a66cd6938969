"""The entropy/NLL head's reductions over one block of logits, fused by ``torch.compile``.

For a block of logits ``z`` [rows x vocab] (any dtype; fp32 math) the kernel needs, per row,
the max ``m``, ``S = sum exp(z - m)`` and ``sum exp(z - m) * (z - m)``: then
``H = log S - sum(e * (z - m)) / S`` and ``NLL = log S - (z[gold] - m)``. Written plainly
(``models.scoring``'s fallback) that is five passes over the block, two of them writing a
``[rows x vocab]`` temporary. ``fused_reduce`` is the same arithmetic as one expression:
Inductor turns it into one kernel per block (fused C++ on CPU, Triton on GPU) that reads
each row for its max and once more, while still in cache, for both sums; the exponentials
are never stored. The LM-head matmul stays outside (BLAS / cuBLAS either way): the logits
must exist once, and that is the floor of any exact kernel.

``reducer(device, compile)`` picks the compiled or the plain function. Compilation is tried
once per device type and process; when it is not available (no C++ compiler, no Triton)
or fails, the plain path is used and the reason logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

Reducer = Callable[[torch.Tensor, torch.Tensor, float, float], tuple[torch.Tensor, torch.Tensor]]


def _softcap(z: torch.Tensor, scale: float, cap: float) -> torch.Tensor:
    if scale:
        z = z * scale
    if cap:
        z = torch.tanh(z / cap) * cap
    return z


def plain_reduce(z: torch.Tensor, targets: torch.Tensor, scale: float = 0.0, cap: float = 0.0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(entropy, NLL) fp32 per row, eager: max, in-place shift, exp, and two reductions."""
    z = _softcap(z.float(), scale, cap)  # the head's fresh output: shifted in place
    z.sub_(z.amax(dim=-1, keepdim=True))
    e = torch.exp(z)
    total = e.sum(-1)
    log_total = torch.log(total)
    ent = log_total - torch.linalg.vecdot(e, z) / total
    nll = log_total - z.gather(1, targets[:, None]).squeeze(1)
    return ent, nll


def fused_reduce(z: torch.Tensor, targets: torch.Tensor, scale: float = 0.0, cap: float = 0.0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The same values as ``plain_reduce`` written as one expression for Inductor to fuse
    (no in-place op, no temporary it has to keep)."""
    z = _softcap(z.float(), scale, cap)
    m = z.amax(dim=-1, keepdim=True)
    zs = z - m
    e = torch.exp(zs)
    total = e.sum(-1)
    dot = (e * zs).sum(-1)
    log_total = torch.log(total)
    gold = torch.gather(zs, 1, targets[:, None]).squeeze(1)
    return log_total - dot / total, log_total - gold


class GuardedReducer:
    """``fused_reduce`` through ``compiler`` (torch.compile), falling back to ``plain_reduce``
    for good, with one logged warning, at the first compile or run failure."""

    def __init__(self, kind: str, compiler: Callable = torch.compile):
        self.kind, self.failed = kind, None
        try:
            self.fn = compiler(fused_reduce, dynamic=False, fullgraph=True)
        except Exception as exc:  # noqa: BLE001 - any failure means: use the plain path
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        self.failed = f"{type(exc).__name__}: {exc}"
        log.warning("entropy head: torch.compile failed on %s (%s); plain path from now",
                    self.kind, self.failed)

    def __call__(self, z: torch.Tensor, targets: torch.Tensor, scale: float = 0.0,
                 cap: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        if self.failed is None:
            torch._dynamo.maybe_mark_dynamic(z, 0)  # one kernel for every block height
            torch._dynamo.maybe_mark_dynamic(z, 1)  # and vocabulary
            torch._dynamo.maybe_mark_dynamic(targets, 0)
            try:
                return self.fn(z, targets, scale, cap)
            except Exception as exc:  # noqa: BLE001 - compile errors surface at the first call
                self._fail(exc)
        return plain_reduce(z, targets, scale, cap)


_COMPILED: dict[str, GuardedReducer] = {}


def compile_wanted(device: torch.device | str, mode: str) -> bool:
    """``on``: compile; ``off``: plain; ``auto``: compile on CUDA only. On CPU (SmolLM2, 2
    shared cores) the compiled reductions took 0.09 s per 4K tokens against 2.0 s plain, but
    beside a 30 s body pass that did not show reliably end to end in bench/entropy, and one
    compile costs 10-20 s per process: so auto does not pay it there (``on`` opts in)."""
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"scoring.compile must be auto, on or off, got {mode!r}")
    kind = torch.device(device).type
    return mode == "on" or (mode == "auto" and kind == "cuda")


def reducer(device: torch.device | str, mode: str = "auto") -> Reducer:
    """The reduction to run on ``device`` for ``scoring.compile`` = ``mode``: the compiled
    one (one per device type and process, falling back to the plain one if compiling fails)
    or ``plain_reduce`` itself."""
    if not compile_wanted(device, mode):
        return plain_reduce
    kind = torch.device(device).type
    if kind not in _COMPILED:
        _COMPILED[kind] = GuardedReducer(kind)
    return _COMPILED[kind]


def compile_status() -> dict[str, str]:
    """Per device type tried: ``compiled`` or the reason the plain path is used."""
    return {k: (r.failed or "compiled") for k, r in _COMPILED.items()}
