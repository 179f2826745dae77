"""The engines the benchmark compares, all on the same weights and inputs, in one process.

- eager: the reference model (`umsnet_fast.reference.UMSNet`) in eval mode under no_grad.
- fast-<backend>: `umsnet_fast.UMSNet` on each backend that `available_backends()` says can run here.
- fast-<backend>-graph (CUDA): the same through `umsnet_fast.compile` (one CUDA graph per batch size);
  fast-triton-per-block-graph: the triton forward captured on its per-block kernels, the baseline of
  its module kernels.
- inductor, inductor-reduce-overhead, inductor-max-autotune: `torch.compile` of the reference (modes
  default / reduce-overhead / max-autotune; the last two on CUDA only), compiled once per dtype with
  `dynamic=False`: each batch size is one static-shape recompile (inductor's best code for that shape).
- onnxruntime (CPU, fp32): ONNX Runtime on `torch.onnx.export` of the reference (the dynamo exporter
  when it works, else the TorchScript one; which one is recorded), intra-op threads = the run's
  threads, spinning off, all graph optimisations.
- openvino (CPU, fp32 and bf16): OpenVINO's CPU plugin on the same ONNX export, compiled per batch size
  with static shapes, INFERENCE_NUM_THREADS = the run's threads, one stream, the latency hint, and
  INFERENCE_PRECISION_HINT f32 or bf16 for the run's dtype (its bf16 takes f32 inputs: bf16 windows are
  widened, inside the timed call). Released after its cells, so its worker threads do not spin into the
  next engine's.

ONNX Runtime and OpenVINO are optional (the `bench` extra): when not importable their cells are skipped
with the reason.

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
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

import umsnet_fast
from umsnet_fast.backends import available_backends, get_backend

Forward = Callable[[list], torch.Tensor]

__all__ = ["BenchContext", "Engine", "all_engines", "select_engines"]


@dataclass
class BenchContext:
    """What every engine shares: the reference model (fp32, CPU master copy), device, threads."""

    reference: torch.nn.Module
    preset: umsnet_fast.presets.DatasetPreset
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

    def onnx_export(self) -> tuple[str, str]:
        """The fp32 reference exported to ONNX once per run (shared by ONNX Runtime and OpenVINO):
        (path, which exporter worked)."""
        if "onnx" not in self._models:
            path = os.path.join(self.workdir, "reference.onnx")
            exporter = export_onnx(self.reference_as(torch.float32), self.example_inputs(2), path)
            self._models["onnx"] = (path, exporter)
        return self._models["onnx"]

    def release(self) -> None:
        onnx = self._models.get("onnx")
        self._models.clear()
        if onnx:  # the export outlives a dtype's models
            self._models["onnx"] = onnx


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
    def __init__(self, backend: str, graph: bool = False, per_block: bool = False):
        # per_block (triton, captured): the forward on the per-block kernels instead of the module kernels
        # (UMSNET_FAST_TRITON_MODULES=0 while the graph is captured), the baseline of the module kernels
        self.backend, self.graph, self.per_block = backend, graph, per_block
        self.name = f"fast-{backend}" + ("-per-block" if per_block else "") + ("-graph" if graph else "")
        self.description = f"umsnet_fast.UMSNet, backend {backend!r}" + (
            ", per-block kernels" if per_block else "") + (
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
        with _env(per_block_env() if self.per_block else {}):
            return umsnet_fast.compile(self._model, batch, dtype, slice_length=ctx.slice_length,
                                       device=ctx.device, on_new_batch="raise")

    def finish(self, ctx, dtype):
        self._model = None


def per_block_env() -> dict:
    from umsnet_fast.backends.triton import MODULES_ENV
    return {MODULES_ENV: "0"}


@contextlib.contextmanager
def _env(values: dict):
    """os.environ with `values` set for the block, then as it was."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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


def _missing(module: str) -> str | None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed (pip install 'umsnet_fast[bench]')"
    return None


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
        return reason or _missing("onnxruntime")

    def prepare(self, ctx, dtype):
        import onnxruntime as ort

        path, exporter = ctx.onnx_export()
        so = ort.SessionOptions()
        so.intra_op_num_threads = ctx.threads
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self._names = [i.name for i in self._session.get_inputs()]
        ctx.notes[self.name] = (f"onnxruntime {ort.__version__}, {exporter}, intra-op threads {ctx.threads}, "
                                "spinning off")

    def make(self, ctx, dtype, batch):
        session, names = self._session, self._names

        def call(xs):
            return torch.from_numpy(session.run(None, {n: x.numpy() for n, x in zip(names, xs)})[0])
        return call

    def finish(self, ctx, dtype):
        self._session = None


class OpenVinoEngine(Engine):
    name = "openvino"
    description = "OpenVINO (CPU plugin) on torch.onnx.export of the reference, precision hint f32 / bf16"
    device_types = ("cpu",)
    PRECISION = {torch.float32: "f32", torch.bfloat16: "bf16"}

    def __init__(self):
        self._core = None

    def skip_reason(self, ctx, dtype):
        reason = super().skip_reason(ctx, dtype)
        if reason is None and dtype not in self.PRECISION:
            reason = "benchmarked in fp32 and bf16 only"
        return reason or _missing("openvino")

    def prepare(self, ctx, dtype):
        import openvino as ov

        self._path, exporter = ctx.onnx_export()
        self._core = ov.Core()
        self._config = {"INFERENCE_PRECISION_HINT": self.PRECISION[dtype], "INFERENCE_NUM_THREADS": ctx.threads,
                        "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
        ctx.notes[f"{self.name}-{self.PRECISION[dtype]}"] = (
            f"openvino {ov.__version__}, {exporter}, INFERENCE_PRECISION_HINT {self.PRECISION[dtype]}, "
            f"{ctx.threads} threads, one stream, static shapes per batch size")

    def make(self, ctx, dtype, batch):
        model = self._core.read_model(self._path)
        xs = ctx.example_inputs(batch)
        model.reshape({p.get_any_name(): list(x.shape) for p, x in zip(model.inputs, xs)})
        compiled = self._core.compile_model(model, "CPU", self._config)
        request = compiled.create_infer_request()

        def call(xs):
            request.infer([x.to(torch.float32).numpy() for x in xs])
            return torch.from_numpy(request.get_output_tensor(0).data.copy())
        return call

    def finish(self, ctx, dtype):
        self._core = None


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
        if "triton" in backends:
            engines.append(FastEngine("triton", graph=True, per_block=True))
        engines += [InductorEngine("default"), InductorEngine("reduce-overhead"), InductorEngine("max-autotune")]
    else:
        engines += [InductorEngine("default"), OnnxRuntimeEngine(), OpenVinoEngine()]
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
