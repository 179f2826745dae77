"""Times the eager reference against the fused cpu backend in one process (UMSNet-A / HHAR / K=24,
fp32, 2 threads by default): `python bench/micro/cpu_forward_timing.py [--batches 1 64 256]`.
Prints the median ms/sample of several runs for each and the ratio; --cpu-only skips eager."""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from umsnet_fast import UMSNet
from umsnet_fast.presets import HHAR


def _median_ms_per_sample(fn, batch: int, min_seconds: float, reps: int) -> float:
    fn()  # warm-up (packing, allocation)
    times = []
    for _ in range(reps):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            if time.perf_counter() - t0 >= min_seconds:
                break
        times.append((time.perf_counter() - t0) / n / batch * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64, 256])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.5, help="minimum time per rep")
    ap.add_argument("--cpu-only", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    kw = HHAR.model_kwargs(24)
    fast = UMSNet(**kw, backend="cpu").eval()
    eager = UMSNet(**kw, backend="reference").eval()
    eager.load_state_dict(fast.state_dict())
    print(f"load average {os.getloadavg()[0]:.2f}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    for b in args.batches:
        xs = HHAR.example_inputs(b, 24)
        with torch.no_grad():
            cpu = _median_ms_per_sample(lambda: fast(xs), b, args.seconds, args.reps)
            line = f"batch {b:4d}: cpu {cpu:.3f} ms/sample"
            if not args.cpu_only:
                ref = _median_ms_per_sample(lambda: eager(xs), b, args.seconds, args.reps)
                line += f", eager {ref:.3f} ms/sample, ratio {ref / cpu:.2f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
