"""What a backend is: the ops it runs, where it runs them, and how it packs the weights."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ..forward import OpSet, Stages
from ..weights import ModelWeights


def device_guard(device: torch.device):
    """Makes a CUDA `device` current for the block (kernel launchers, Triton's among them, launch on the
    current device and its current stream); nothing for other devices."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


class Backend:
    name: str = ""
    summary: str = ""
    device_types: tuple[str, ...] = ()
    dtypes: tuple[torch.dtype, ...] = ()
    # Device types on which `auto` picks this backend (a subset of device_types).
    auto_device_types: tuple[str, ...] = ()

    def unavailable_reason(self) -> str | None:
        """Why this backend cannot run in this process (missing extension, no GPU...), or None."""
        return None

    def preferred_for(self, device: torch.device) -> bool:
        return device.type in self.auto_device_types

    def input_unsupported_reason(self, device: torch.device, dtype: torch.dtype) -> str | None:
        if device.type not in self.device_types:
            return f"tensors on {device.type} (it runs on {', '.join(self.device_types)})"
        if dtype not in self.dtypes:
            return f"dtype {dtype} (it runs {', '.join(str(d) for d in self.dtypes)})"
        return None

    def ops(self) -> OpSet:
        raise NotImplementedError

    def prepare(self, weights: ModelWeights, device: torch.device, dtype: torch.dtype) -> ModelWeights:
        """Weights in this backend's layout; called once per change of parameters, device or dtype."""
        return weights.to(device=device, dtype=dtype)

    def stages(self, prepared) -> Stages:
        """Stage 1 and stages 2-3 (umsnet_fast.forward.Stages) over `prepare`'s result, for streaming.

        Called once per change of the packed weights. The default runs this backend's OpSet steps on
        the prepared ModelWeights; a backend whose prepared form is something else overrides it.
        """
        return Stages(self.ops(), prepared)


@dataclass(frozen=True)
class BackendUnavailable:
    name: str
    reason: str
    backend: Backend | None  # its metadata, when the module imported
