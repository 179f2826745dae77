"""What bounds a GPU call: how many kernels one call launches and how long they run on the GPU.

Kernel time far below the measured latency means launches or host work bound it (a CUDA graph
removes the launch gaps); kernel time close to it means the kernels do. Read with torch.profiler
(CUPTI), which also reports the kernels inside a CUDA graph replay.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["gpu_kernels"]


def gpu_kernels(fn: Callable[[], object]) -> dict:
    """One profiled call of fn(): {'kernels': N, 'kernel_ms': GPU time of the kernels, 'copies': M}."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    fn()  # not the first call: nothing compiles or allocates inside the profile
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    kernels = copies = 0
    kernel_us = 0.0
    for e in prof.events():
        if e.device_type != DeviceType.CUDA:
            continue
        if e.name.startswith(("Memcpy", "Memset")):
            copies += 1
        else:
            kernels += 1
            kernel_us += e.time_range.elapsed_us()  # a device event's own span
    return {"kernels": kernels, "kernel_ms": round(kernel_us / 1e3, 6), "copies": copies}
