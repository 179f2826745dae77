"""The benchmark run: every selected engine x dtype x batch size, in one process, on the same inputs.

Batch 1 is timed as latency (median, p90, p99 per call), larger batches as throughput (windows per
second from the median call). Each cell's output is compared with eager's at the same dtype and with
the reference run in float64 on the same inputs (max abs differences), so an engine that is fast because
it is wrong shows it, and a bf16 engine's error is on record next to its speed. The JSON is rewritten
after every cell, so a run that is stopped part-way leaves what it measured (`"complete": false`).
"""
from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from umsnet_fast.backends import available_backends
from umsnet_fast.presets import get_preset
from umsnet_fast.reference import UMSNet as ReferenceUMSNet
from umsnet_fast.testing import randomize_

from . import report
from .common import DTYPES, git_commit
from .engines import BenchContext, Engine, all_engines, select_engines
from .profile import gpu_kernels
from .timing import Budget, time_call

__all__ = ["BenchConfig", "run"]



@dataclass
class BenchConfig:
    variant: str = "A"
    preset: str = "hhar"
    slices: int = 24
    batch_sizes: tuple[int, ...] = (1, 64, 256)
    dtypes: tuple[str, ...] = ("fp32",)
    threads: int = 1
    device: str = "cpu"
    engines: tuple[str, ...] | None = None  # shell-style patterns; None: all
    in_pattern_order: bool = False  # run the engines in the order of `engines` (else all_engines' order)
    output: str = "bench/results"
    plot: bool = True
    profile: bool = False  # CUDA: count the kernels of one call and their GPU time (torch.profiler)
    latency_budget: Budget = field(default_factory=lambda: Budget(warmup=5, min_iters=20, max_iters=2000,
                                                                  target_s=3.0))
    throughput_budget: Budget = field(default_factory=lambda: Budget(warmup=2, min_iters=5, max_iters=500,
                                                                     target_s=3.0))
    seed: int = 0


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


def _max_diff(out: torch.Tensor, ref: torch.Tensor | None) -> float | None:
    if ref is None:
        return None
    return float((out.detach().to("cpu", torch.float64) - ref.to("cpu", torch.float64)).abs().max())


def run(cfg: BenchConfig, *, progress: Callable[[str, int, int], None] | None = None) -> tuple[dict, Path]:
    """Run the benchmark; returns the results document and the path of its JSON file.

    progress(description, cells done, cells in all) is called before each cell and once at the end.
    torch's intra-op thread count is set to cfg.threads for the run and restored after it.
    """
    with intra_op_threads(cfg.threads):
        return _run(cfg, progress)


@contextlib.contextmanager
def intra_op_threads(n: int):
    """torch's intra-op thread count set to n for the block, then restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class RunStart:
    """What every benchmark run starts from: the device, the preset, the randomized reference model,
    when and where it runs, and the results file's name (without a prefix)."""
    device: torch.device
    preset: object
    reference: torch.nn.Module
    started: object
    machine: dict
    commit: str
    out_dir: Path
    stem: str


def start_run(cfg: BenchConfig) -> RunStart:
    device = torch.device(cfg.device)
    preset = get_preset(cfg.preset)
    torch.manual_seed(cfg.seed)
    reference = randomize_(ReferenceUMSNet(**preset.model_kwargs(cfg.slices), variant=cfg.variant), cfg.seed).eval()
    started = report.now()
    machine = report.machine_info(device, cfg.threads)
    commit = git_commit()
    out_dir = Path(cfg.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    return RunStart(device, preset, reference, started, machine, commit, out_dir,
                    report.results_stem(machine, started, commit))


def _run(cfg: BenchConfig, progress) -> tuple[dict, Path]:
    run = start_run(cfg)
    device, preset, reference, started, machine, commit = (run.device, run.preset, run.reference, run.started,
                                                          run.machine, run.commit)
    json_path = run.out_dir / f"{run.stem}.json"

    engines = select_engines(all_engines(device), list(cfg.engines) if cfg.engines else None,
                             in_pattern_order=cfg.in_pattern_order)
    config = json.loads(json.dumps(asdict(cfg)))  # tuples as lists: the document equals its JSON
    config["engines"] = [e.name for e in engines]
    doc = {
        "schema": report.SCHEMA, "complete": False, "date": started.isoformat(timespec="seconds"),
        "commit": commit, "machine": machine, "versions": report.versions(), "config": config,
        "backends": {n: {"available": i.available, "reason": i.reason} for n, i in available_backends().items()},
        "engines": {e.name: e.description for e in engines}, "notes": {}, "results": [],
    }
    total = len(engines) * len(cfg.dtypes) * len(cfg.batch_sizes)

    def tick(text: str) -> None:
        if progress:
            progress(text, len(doc["results"]), total)

    def emit(row: dict) -> None:  # one finished cell: into the document, and the document to disk
        doc["results"].append(row)
        doc["notes"].update(ctx.notes)
        report.write_json(doc, json_path)

    with tempfile.TemporaryDirectory(prefix="umsnet-bench-") as workdir:
        ctx = BenchContext(reference, preset, cfg.slices, device, cfg.threads, workdir)
        for dtype_name in cfg.dtypes:
            dtype = DTYPES[dtype_name]
            inputs = {b: ctx.example_inputs(b, dtype, seed=cfg.seed + b) for b in cfg.batch_sizes}
            eager_out: dict[int, torch.Tensor] = {}
            eager_time: dict[int, float] = {}
            oracle = _Oracle(ctx, inputs)
            for engine in engines:
                _run_engine(engine, ctx, dtype, dtype_name, cfg, inputs, eager_out, eager_time, oracle, tick, emit)
            ctx.release()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    doc["complete"] = True
    doc["machine"]["load_average_end"] = report.load_average()
    doc["elapsed_s"] = round((report.now() - started).total_seconds(), 1)
    report.write_json(doc, json_path)
    tick("done")
    return doc, json_path


class _Oracle:
    """The reference in float64 on a batch's inputs (upcast), computed on first use."""

    def __init__(self, ctx: BenchContext, inputs: dict):
        self.ctx, self.inputs, self.out = ctx, inputs, {}

    def __call__(self, batch: int) -> torch.Tensor:
        if batch not in self.out:
            with torch.no_grad():
                xs = [x.to(torch.float64) for x in self.inputs[batch]]
                self.out[batch] = self.ctx.reference_as(torch.float64)(xs).to("cpu")
        return self.out[batch]


def _run_engine(engine: Engine, ctx: BenchContext, dtype: torch.dtype, dtype_name: str, cfg: BenchConfig,
                inputs: dict, eager_out: dict, eager_time: dict, oracle: _Oracle, tick: Callable[[str], None],
                emit: Callable[[dict], None]) -> None:
    """Emit the rows of one engine at one dtype, one per batch size; failures become rows, never exceptions."""
    base = {"engine": engine.name, "dtype": dtype_name}
    skip = engine.skip_reason(ctx, dtype)
    if skip:
        for b in cfg.batch_sizes:
            emit(dict(base, batch=b, status="skipped", reason=skip))
        return
    tick(f"{engine.name} {dtype_name}: preparing")
    t0 = time.perf_counter()
    try:
        engine.prepare(ctx, dtype)
    except Exception as e:  # noqa: BLE001 - any failure is reported, the run goes on
        engine.finish(ctx, dtype)
        for b in cfg.batch_sizes:
            emit(dict(base, batch=b, status="failed", reason=f"prepare: {_reason(e)}"))
        return
    prepare_s = time.perf_counter() - t0
    for b in cfg.batch_sizes:
        latency = b == 1
        tick(f"{engine.name} {dtype_name} batch {b}: {'latency' if latency else 'throughput'}")
        xs = inputs[b]
        row = dict(base, batch=b, mode="latency" if latency else "throughput")
        try:
            t0 = time.perf_counter()
            fn = engine.make(ctx, dtype, b)
            # First call: compilation, capture, allocation. Cloned: a CUDA-graph engine's output
            # buffer is overwritten (and guarded) by the timed calls.
            out = fn(xs).detach().clone()
            if ctx.device.type == "cuda":
                torch.cuda.synchronize()
            row["setup_s"] = round(prepare_s + time.perf_counter() - t0, 3)
            prepare_s = 0.0
            timing = time_call(lambda: fn(xs), ctx.device,
                               cfg.latency_budget if latency else cfg.throughput_budget, latency=latency)
        except Exception as e:  # noqa: BLE001
            emit(dict(row, status="failed", reason=_reason(e)))
            if ctx.device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        row.update(status="ok", **{k: round(v, 6) if isinstance(v, float) else v
                                   for k, v in timing.summary_ms().items()})
        row["throughput_per_s"] = round(b / timing.median_s, 2)
        row["ms_per_sample"] = round(1e3 * timing.median_s / b, 6)
        if engine.name == "eager":
            eager_out[b], eager_time[b] = out, timing.median_s
        row["speedup_vs_eager"] = round(eager_time[b] / timing.median_s, 3) if b in eager_time else None
        row["max_abs_diff_vs_eager"] = _max_diff(out, eager_out.get(b))
        row["max_abs_err_vs_fp64"] = _max_diff(out, oracle(b))
        if cfg.profile and ctx.device.type == "cuda":
            try:  # kernels per call and their GPU time: launch-bound or kernel-bound?
                row.update(gpu_kernels(lambda: fn(xs)))
            except Exception as e:  # noqa: BLE001 - a profiler failure costs the figure, not the run
                row["profile_error"] = _reason(e)
        emit(row)
    engine.finish(ctx, dtype)
