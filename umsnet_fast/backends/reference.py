"""The `reference` backend: the op sequence of umsnet_fast.forward with every op in plain PyTorch."""
from __future__ import annotations

import torch

from ..forward import REFERENCE_OPS, OpSet
from .base import Backend


class ReferenceBackend(Backend):
    name = "reference"
    summary = "PyTorch ops (the *_ref functions); runs everywhere"
    device_types = ("cpu", "cuda", "mps", "xpu")
    dtypes = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
    auto_device_types = device_types

    def ops(self) -> OpSet:
        return REFERENCE_OPS


BACKEND = ReferenceBackend()
