"""The engines the benchmark compares, all on the same weights and inputs, in one process.

- eager: the reference model (`umsnet_fast.reference.UMSNet`) in eval mode under no_grad.
- fast-<backend>: `umsnet_fast.UMSNet` on each backend that `available_backends()` says can run here.
- fast-<backend>-graph (CUDA): the same through `umsnet_fast.compile` (one CUDA graph per batch size).
- inductor, inductor-reduce-overhead, inductor-max-autotune: `torch.compile` of the reference (modes
  default / reduce-overhead / max-autotune; the last two on CUDA only), compiled once per dtype with
  `dynamic=False`: each batch size is one static-shape recompile (inductor's best code for that shape).
- onnxruntime (CPU, fp32): ONNX Runtime on `torch.onnx.export` of the reference (the dynamo exporter
  when it works, else the TorchScript one; which one is recorded), intra-op threads = the run's
  threads, spinning off, all graph optimisations.

An engine is set up once per dtype (`prepare`), then gives a callable per batch size (`make`). Any
exception in either is reported as a failed cell by the runner, which carries on.
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch

import umsnet_fast
from umsnet_fast.backends import available_backends, get_backend

Forward = Callable[[list], torch.Tensor]

__all__ = ["BenchContext", "Engine", "all_engines", "select_engines"]


@dataclass
class BenchContext:
    """What every engine shares: the reference model (fp32, CPU master copy), device, threads."""

    reference: torch.nn.Module
    preset: "umsnet_fast.presets.DatasetPreset"
    slices: int
    device: torch.device
    threads: int
    workdir: str
    _models: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)  # engine -> a remark for the report (exporter used...)

    def reference_as(self, dtype: torch.dtype) -> torch.nn.Module:
        """The reference model on the run's device in `dtype` (one copy per dtype)."""
        if dtype not in self._models:
            self._models[dtype] = copy.deepcopy(self.reference).to(self.device, dtype).eval()
        return self._models[dtype]

    @property
    def slice_length(self) -> int:
        return self.preset.slice_length

    def example_inputs(self, batch: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> list:
        """Random windows (batch, C_i, K * L) on the run's device, the same for every engine."""
        g = torch.Generator().manual_seed(seed)
        return self.preset.example_inputs(batch, self.slices, generator=g, dtype=dtype, device=self.device)

    def release(self) -> None:
        self._models.clear()


class Engine:
    name = ""
    description = ""
    device_types: tuple[str, ...] = ("cpu", "cuda")

    def skip_reason(self, ctx: BenchContext, dtype: torch.dtype) -> str | None:
        """Why this engine does not run this (device, dtype) cell; None when it does."""
        if ctx.device.type not in self.device_types:
            return f"runs on {'/'.join(self.device_types)} only"
        return None

    def prepare(self, ctx: BenchContext, dtype: torch.dtype) -> None:
        """One-time work per dtype (build, export)."""

    def make(self, ctx: BenchContext, dtype: torch.dtype, batch: int) -> Forward:
        raise NotImplementedError

    def finish(self, ctx: BenchContext, dtype: torch.dtype) -> None:
        """Free what prepare/make built."""


def _no_grad(fn: Forward) -> Forward:
    def call(xs):
        with torch.no_grad():
            return fn(xs)
    return call


class EagerEngine(Engine):
    name = "eager"
    description = "reference model, PyTorch eager"

    def make(self, ctx, dtype, batch):
        return _no_grad(ctx.reference_as(dtype))


class FastEngine(Engine):
    def __init__(self, backend: str, graph: bool = False):
        self.backend, self.graph = backend, graph
        self.name = f"fast-{backend}" + ("-graph" if graph else "")
        self.description = f"umsnet_fast.UMSNet, backend {backend!r}" + (
            ", captured (umsnet_fast.compile, one CUDA graph)" if graph else "")
        if graph:
            self.device_types = ("cuda",)
        self._model = None

    def skip_reason(self, ctx, dtype):
        reason = super().skip_reason(ctx, dtype)
        if reason is None:
            b = get_backend(self.backend)
            reason = b.input_unsupported_reason(ctx.device, dtype)
        return reason

    def prepare(self, ctx, dtype):
        self._model = umsnet_fast.UMSNet.from_reference(ctx.reference_as(dtype), backend=self.backend).eval()

    def make(self, ctx, dtype, batch):
        if not self.graph:
            return self._model
        return umsnet_fast.compile(self._model, batch, dtype, slice_length=ctx.slice_length,
                                   device=ctx.device, on_new_batch="raise")

    def finish(self, ctx, dtype):
        self._model = None


class InductorEngine(Engine):
    def __init__(self, mode: str = "default"):
        self.mode = mode
        self.name = "inductor" if mode == "default" else f"inductor-{mode}"
        self.description = f"torch.compile(reference, mode={mode!r}, dynamic=False)"
        if mode != "default":
            self.device_types = ("cuda",)

    def prepare(self, ctx, dtype):
        # One torch.compile per dtype: each new batch size is one static-shape recompile of it (dynamo
        # guards on the shapes), with nothing thrown away in between.
        torch._dynamo.reset()
        self._compiled = torch.compile(ctx.reference_as(dtype), mode=None if self.mode == "default" else self.mode,
                                       dynamic=False)

    def make(self, ctx, dtype, batch):
        compiled = self._compiled
        if self.mode != "default":  # both GPU modes replay CUDA graphs: mark each call as a new step
            def call(xs):
                torch.compiler.cudagraph_mark_step_begin()
                return compiled(xs)
            return _no_grad(call)
        return _no_grad(compiled)

    def finish(self, ctx, dtype):
        self._compiled = None
        torch._dynamo.reset()


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' progress prints, warnings and log lines."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_onnx(model: torch.nn.Module, example: list, path: str) -> str:
    """Export `model` with a dynamic batch axis; returns which exporter worked (dynamo first)."""
    names = [f"x{i}" for i in range(len(example))]
    errors = []
    with _quiet():
        try:
            batch = torch.export.Dim("batch", min=1, max=1 << 20)
            torch.onnx.export(model, (example,), path, dynamo=True, input_names=names,
                              output_names=["logits"], dynamic_shapes=([{0: batch} for _ in example],))
            return "torch.onnx.export(dynamo=True)"
        except Exception as e:  # noqa: BLE001 - onnxscript missing, an export failure of any kind
            errors.append(f"dynamo=True failed ({type(e).__name__}: {str(e).splitlines()[0][:200]})")
        try:
            axes = {n: {0: "batch"} for n in names + ["logits"]}
            torch.onnx.export(model, (example,), path, dynamo=False, input_names=names,
                              output_names=["logits"], dynamic_axes=axes)
            return "torch.onnx.export(dynamo=False), after " + errors[0]
        except Exception as e:  # noqa: BLE001
            errors.append(f"dynamo=False failed ({type(e).__name__}: {str(e).splitlines()[0][:200]})")
    raise RuntimeError("ONNX export failed: " + "; ".join(errors))


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"
    description = "ONNX Runtime (CPU provider) on torch.onnx.export of the reference"
    device_types = ("cpu",)

    def __init__(self):
        self._session = None

    def skip_reason(self, ctx, dtype):
        reason = super().skip_reason(ctx, dtype)
        if reason is None and dtype != torch.float32:
            reason = "benchmarked in fp32 only"
        return reason

    def prepare(self, ctx, dtype):
        import onnxruntime as ort

        path = os.path.join(ctx.workdir, "reference.onnx")
        example = ctx.example_inputs(2, dtype)
        exporter = export_onnx(ctx.reference_as(dtype), example, path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = ctx.threads
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self._names = [i.name for i in self._session.get_inputs()]
        ctx.notes[self.name] = f"onnxruntime {ort.__version__}, {exporter}, intra-op threads {ctx.threads}, spinning off"

    def make(self, ctx, dtype, batch):
        session, names = self._session, self._names

        def call(xs):
            return torch.from_numpy(session.run(None, {n: x.numpy() for n, x in zip(names, xs)})[0])
        return call

    def finish(self, ctx, dtype):
        self._session = None


def all_engines(device: torch.device) -> list[Engine]:
    """Every engine for this device type, in run order (eager first: the others are compared to it).

    The fast model runs on each available backend that `auto` may pick for this device type (so not
    triton under its CPU interpreter, which exists for tests).
    """
    backends = [name for name, info in available_backends().items()
                if info.available and device.type in info.auto_device_types]
    engines: list[Engine] = [EagerEngine()]
    engines += [FastEngine(b) for b in backends]
    if device.type == "cuda":
        engines += [FastEngine(b, graph=True) for b in backends]
        engines += [InductorEngine("default"), InductorEngine("reduce-overhead"), InductorEngine("max-autotune")]
    else:
        engines += [InductorEngine("default"), OnnxRuntimeEngine()]
    return engines


def select_engines(engines: list[Engine], patterns: list[str] | None, *,
                   in_pattern_order: bool = False) -> list[Engine]:
    """The engines whose names match any of the shell-style patterns (all when None), in run order, or
    with in_pattern_order in the order of the patterns (bench/device_check.py: most valuable first)."""
    import fnmatch

    if not patterns:
        return engines
    names = [e.name for e in engines]
    unmatched = [p for p in patterns if not fnmatch.filter(names, p)]
    if unmatched:
        raise ValueError(f"no engine matches {unmatched}; engines here: {names}")
    chosen = [e for e in engines if any(fnmatch.fnmatch(e.name, p) for p in patterns)]
    if in_pattern_order:
        chosen.sort(key=lambda e: next(i for i, p in enumerate(patterns) if fnmatch.fnmatch(e.name, p)))
    return chosen
