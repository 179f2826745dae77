"""The shared timing helper: warm-up, then many timed calls; median, p90, p99 of the per-call times.

CPU: `time.perf_counter` around each call. CUDA: a pair of CUDA events around each call, read after
one synchronisation at the end. In latency mode (`sync_each=True`) the stream is drained before each
call, so a call's time runs from the host issuing it to the GPU finishing it, launch overhead
included; in throughput mode calls are queued back to back, as a server under load would issue them.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Budget", "Timing", "time_cpu", "time_cuda", "time_call"]


@dataclass(frozen=True)
class Budget:
    """How long to time one call: warm-up calls, then calls until `target_s` (within min/max counts)."""

    warmup: int = 3
    min_iters: int = 5
    max_iters: int = 2000
    target_s: float = 2.0


@dataclass(frozen=True)
class Timing:
    samples_s: tuple[float, ...]  # one per timed call, in call order

    def _q(self, q: float) -> float:
        return float(np.percentile(self.samples_s, q))

    @property
    def median_s(self) -> float:
        return self._q(50)

    @property
    def p90_s(self) -> float:
        return self._q(90)

    @property
    def p99_s(self) -> float:
        return self._q(99)

    @property
    def mean_s(self) -> float:
        return float(np.mean(self.samples_s))

    @property
    def n(self) -> int:
        return len(self.samples_s)

    def summary_ms(self) -> dict:
        return {"median_ms": 1e3 * self.median_s, "p90_ms": 1e3 * self.p90_s, "p99_ms": 1e3 * self.p99_s,
                "mean_ms": 1e3 * self.mean_s, "min_ms": 1e3 * min(self.samples_s), "iters": self.n}


def _iters_for(per_call_s: float, budget: Budget) -> int:
    return int(min(budget.max_iters, max(budget.min_iters, budget.target_s / max(per_call_s, 1e-9))))


def time_cpu(fn: Callable[[], object], budget: Budget = Budget()) -> Timing:
    """Per-call wall times of fn() after `budget.warmup` untimed calls."""
    start = time.perf_counter()
    for _ in range(budget.warmup):
        fn()
    per_call = (time.perf_counter() - start) / budget.warmup if budget.warmup else budget.target_s
    samples = []
    deadline = time.perf_counter() + budget.target_s
    for i in range(_iters_for(per_call, budget)):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
        if i + 1 >= budget.min_iters and time.perf_counter() > deadline:
            break
    return Timing(tuple(samples))


def time_cuda(fn: Callable[[], object], budget: Budget = Budget(), *, sync_each: bool = True) -> Timing:
    """Per-call times of fn() from CUDA events on the current stream (see the module docstring)."""
    for _ in range(budget.warmup):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    probe = max(1, min(budget.min_iters, 5))
    for _ in range(probe):
        fn()
    torch.cuda.synchronize()
    n = _iters_for((time.perf_counter() - t0) / probe, budget)
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
    for start, end in events:
        if sync_each:
            torch.cuda.current_stream().synchronize()
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return Timing(tuple(start.elapsed_time(end) / 1e3 for start, end in events))


def time_call(fn: Callable[[], object], device: torch.device, budget: Budget = Budget(), *,
              latency: bool = True) -> Timing:
    """time_cuda on a CUDA device (sync_each = latency), else time_cpu."""
    if device.type == "cuda":
        return time_cuda(fn, budget, sync_each=latency)
    return time_cpu(fn, budget)
