"""Captured inference: `umsnet_fast.compile(model, batch_size=..., dtype=...)`.

On a CUDA device the returned callable holds static input and output buffers and one CUDA graph of
the whole eval forward (the backend's `OpSet.forward` over the model's packed weights), so a call is
a copy into the static inputs, one graph replay and a copy out: no per-op launch cost.

Rules that keep a replay honest:
- Weights are cast and packed once, through `model._weights_for` (the same cache the model's own
  forward uses). On every call the weights are compared with the ones the graphs were captured with
  (umsnet_fast.weight_watch: data pointer and version of each parameter and buffer, and on the CPU a
  probe of their contents); on a change the weights are re-packed, every graph is re-captured and the
  call is run again before it returns. On a GPU the check runs on the host after the replay is
  queued, while the GPU computes (~40 us for UMSNet-A on a slow CPU). What the check cannot see (a
  write that bypasses the version counter and misses every probed element, or any such write to GPU
  tensors) needs `compiled.refresh()`.
- A batch size seen for the first time is captured on the spot (`on_new_batch="capture"`, the
  default; graphs are kept per batch size) or refused with a ValueError (`on_new_batch="raise"`).
- Inputs of another dtype or device are refused (TypeError / ValueError naming both): the graph
  computes in the dtype it was captured for, and nothing is silently cast or moved.
- The output is a fresh tensor (`copy_output=True`, default); with `copy_output=False` it is the
  static output buffer, overwritten by the next call of the same batch size.

CPU: there is no graph to capture. `compile()` of a model on the CPU (or `device="cpu"`) returns the
same callable without a graph: the same checks and packed weights, the backend's ops called directly
(`compiled.graphed` is False). Asking for `device="cuda"` where CUDA is unavailable raises a
RuntimeError saying so.

The captured forward is always the inference (eval-mode) forward, whatever mode the model is in.
"""
from __future__ import annotations

import torch

from .backends import Backend, resolve_backend
from .backends.base import device_guard
from .inputs import validate_inputs
from .model import UMSNet
from .weight_watch import WeightWatch

__all__ = ["compile", "CompiledUMSNet", "capture_graph"]


def capture_graph(fn, device: torch.device, warmup: int = 3):
    """(graph, output): eager calls of fn() on a side stream, at least one whatever `warmup` says
    (Triton JIT compilation, autotuning, library handles and first-call allocations cannot happen
    inside a capture), then one CUDA graph of fn(), all on `device` whichever is current. fn reads and
    writes static tensors only; replaying the graph recomputes `output` in place. Also used by the
    stream pool (umsnet_fast.streaming)."""
    with device_guard(device):
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(max(1, warmup)):
                fn()
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = fn()
    return graph, output

class _Entry:
    """One batch size: static inputs and output, and the graph that maps one to the other (or None on CPU)."""

    def __init__(self, batch: int, inputs: list[torch.Tensor], output: torch.Tensor, graph):
        self.batch, self.inputs, self.output, self.graph = batch, inputs, output, graph


class CompiledUMSNet:
    """A captured UMSNet forward. Call it like the model: `compiled(xs)` -> logits (batch, num_classes).

    Attributes: `backend` (name), `device`, `dtype`, `graphed` (True when CUDA graphs are used),
    `batch_sizes` (captured so far). Methods: `capture(batch_size)` ahead of time, `release()`,
    `refresh()` after weight writes the check cannot see.
    """

    def __init__(self, model: UMSNet, *, batch_size: int, slice_lengths: tuple[int, ...], dtype: torch.dtype,
                 device: torch.device, backend: Backend, on_new_batch: str, copy_output: bool, warmup: int):
        self.model = model
        self.config = model.config
        self.slice_lengths = slice_lengths
        self.dtype, self.device = dtype, device
        self._backend = backend
        self.on_new_batch = on_new_batch
        self.copy_output = copy_output
        self.warmup = warmup
        self.graphed = device.type == "cuda"
        self._ops = backend.ops()
        self._watch = WeightWatch(model)
        self._weights = model._weights_for(backend, device, dtype)
        self._entries: dict[int, _Entry] = {}
        self.capture(batch_size)

    @property
    def backend(self) -> str:
        return self._backend.name

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        return tuple(sorted(self._entries))

    def __repr__(self) -> str:
        return (f"CompiledUMSNet(backend={self.backend!r}, device={str(self.device)!r}, dtype={self.dtype}, "
                f"batch_sizes={list(self.batch_sizes)}, graphed={self.graphed})")

    # -- capture --------------------------------------------------------------------------------
    def _forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            return self._ops.forward(self._weights, xs, self.config.num_slices)

    def capture(self, batch_size: int) -> None:
        """Capture (or, on CPU, set up) the forward for `batch_size`; replaces an earlier capture of it."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self._entries.pop(batch_size, None)  # free the old graph's memory first
        if not self.graphed:
            self._entries[batch_size] = _Entry(batch_size, [], None, None)
            return
        k = self.config.num_slices
        # Static inputs; the warm-up runs on random data, not zeros.
        inputs = [torch.randn(batch_size, s.channels, k * length, device=self.device, dtype=self.dtype)
                  for s, length in zip(self.config.sensors, self.slice_lengths)]
        graph, output = capture_graph(lambda: self._forward(inputs), self.device, self.warmup)
        self._entries[batch_size] = _Entry(batch_size, inputs, output, graph)

    def _recapture_all(self) -> None:
        self._weights = self.model._weights_for(self._backend, self.device, self.dtype)
        self._watch.accept()
        for b in list(self._entries):
            self.capture(b)

    def refresh(self) -> None:
        """Re-pack the model's weights and re-capture every batch size now, whatever the check saw."""
        self.model.refresh()
        self._recapture_all()

    def release(self) -> None:
        """Drop every graph and buffer (their memory returns to torch's allocator)."""
        self._entries.clear()

    # -- call -----------------------------------------------------------------------------------
    def _check(self, tensors: list[torch.Tensor]) -> None:
        for spec, x, length in zip(self.config.sensors, tensors, self.slice_lengths):
            if x.dtype != self.dtype:
                raise TypeError(f"sensor {spec.name!r}: this compiled model computes in {self.dtype}, got an "
                                f"input of dtype {x.dtype}; compile another with dtype={x.dtype}")
            if x.device != self.device:
                raise ValueError(f"sensor {spec.name!r}: this compiled model runs on {self.device}, got an "
                                 f"input on {x.device}")
            if x.shape[2] != self.config.num_slices * length:
                raise ValueError(f"sensor {spec.name!r}: compiled for windows of shape (batch, {spec.channels}, "
                                 f"{self.config.num_slices * length}), got {tuple(x.shape)}")

    def _run(self, entry: _Entry, tensors: list[torch.Tensor]) -> torch.Tensor:
        if entry.graph is None:
            return self._forward(tensors)
        with device_guard(self.device):  # replay on the model's device's current stream
            for static, x in zip(entry.inputs, tensors):
                static.copy_(x)
            entry.graph.replay()
        return entry.output

    def __call__(self, xs) -> torch.Tensor:
        tensors = validate_inputs(self.config, xs)
        self._check(tensors)
        batch = tensors[0].shape[0]
        if batch == 0:
            return tensors[0].new_zeros(0, self.config.num_classes)
        entry = self._entries.get(batch)
        if entry is None:
            if self.on_new_batch == "raise":
                raise ValueError(f"compiled for batch sizes {list(self.batch_sizes)}, got batch {batch} "
                                 "(compile with on_new_batch='capture' to capture new sizes on demand)")
            self.capture(batch)
            entry = self._entries[batch]
        if not self.graphed:
            if self._watch.changed():  # CPU: check before computing
                self._recapture_all()
            return self._run(self._entries[batch], tensors)
        # GPU: queue the copy-in, the replay and the copy-out first, then check the weights on the
        # host while the GPU runs; if they changed, re-capture and run again before returning.
        out = self._replay(entry, tensors)
        if self._watch.changed():
            self._recapture_all()
            out = self._replay(self._entries[batch], tensors)
        return out

    def _replay(self, entry: _Entry, tensors: list[torch.Tensor]) -> torch.Tensor:
        out = self._run(entry, tensors)
        return out.clone() if self.copy_output else out


def resolve_slice_lengths(model: UMSNet, slice_length, what: str = "umsnet_fast.compile") -> tuple[int, ...]:
    """Samples per slice of each sensor from an int, a list or a dict by name; errors name `what`."""
    sensors = model.config.sensors
    if slice_length is None:
        raise TypeError(f"{what} needs slice_length: the samples per slice of each sensor "
                        "(an int for all, or one per sensor; the presets' is presets.HHAR.slice_length = 25)")
    if isinstance(slice_length, dict):
        missing = [s.name for s in sensors if s.name not in slice_length]
        if missing or len(slice_length) != len(sensors):
            raise ValueError(f"slice_length: expected one entry per sensor {[s.name for s in sensors]}, "
                             f"got keys {list(slice_length)}")
        lengths = tuple(slice_length[s.name] for s in sensors)
    elif isinstance(slice_length, int) and not isinstance(slice_length, bool):
        lengths = (slice_length,) * len(sensors)
    else:
        lengths = tuple(slice_length)
        if len(lengths) != len(sensors):
            raise ValueError(f"slice_length: expected {len(sensors)} lengths (sensors "
                             f"{[s.name for s in sensors]}), got {len(lengths)}")
    low = model.config.min_slice_length
    for s, n in zip(sensors, lengths):
        if isinstance(n, bool) or not isinstance(n, int) or n < low:
            raise ValueError(f"slice_length of sensor {s.name!r} must be an int >= {low}, got {n!r}")
    return lengths


def compile(model: UMSNet, batch_size: int = 1, dtype: torch.dtype | None = None, *, slice_length=None,
            device=None, backend: str | None = None, on_new_batch: str = "capture", copy_output: bool = True,
            warmup: int = 3) -> CompiledUMSNet:
    """Capture `model`'s inference forward for windows of `batch_size` (see the module docstring).

    model: a `umsnet_fast.UMSNet` (convert a reference model with `UMSNet.from_reference(ref)`).
    slice_length: samples per slice L_i, an int for every sensor or one per sensor (list or dict);
        inputs are then (batch, C_i, K * L_i). Required: the model's configuration does not fix it.
    dtype: the compute dtype (default: the model's parameter dtype); on CUDA fp32, fp16 and bf16, as far
        as the backend supports them. Inputs must have this dtype.
    device: default: the device of the model's parameters. "cuda" without CUDA raises RuntimeError.
    backend: default: the model's `backend` ('auto' resolves for this device and dtype).
    on_new_batch: "capture" (default) captures another batch size on first sight; "raise" refuses it.
    copy_output: return a fresh tensor (default) rather than the static output buffer.
    warmup: eager runs before each capture (JIT compilation, autotuning, library handles); on CUDA at
        least one runs even with warmup=0, outside the capture, so that nothing compiles or tunes inside it.
    """
    if not isinstance(model, UMSNet):
        raise TypeError(f"umsnet_fast.compile needs a umsnet_fast.UMSNet, got {type(model).__module__}."
                        f"{type(model).__name__}; convert a reference model with UMSNet.from_reference(ref)")
    if on_new_batch not in ("capture", "raise"):
        raise ValueError(f"on_new_batch must be 'capture' or 'raise', got {on_new_batch!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0, got {warmup!r}")
    lengths = resolve_slice_lengths(model, slice_length)
    p = next(model.parameters())
    device = torch.device(device) if device is not None else p.device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("umsnet_fast.compile(device='cuda') captures a CUDA graph, but CUDA is not "
                               "available here (torch.cuda.is_available() is False; this torch is "
                               f"{torch.__version__}). On a CPU, compile with device='cpu' (no graph) or "
                               "call the model directly.")
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    dtype = dtype or p.dtype
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
    resolved = resolve_backend(backend or model.backend, device, dtype)
    return CompiledUMSNet(model, batch_size=batch_size, slice_lengths=lengths, dtype=dtype, device=device,
                          backend=resolved, on_new_batch=on_new_batch, copy_output=copy_output, warmup=warmup)
