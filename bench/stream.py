"""`umsnet-fast bench --stream`: the slice cache against the window forward, in one process.

Per backend that `auto` may pick on the device (and dtype it runs), on the same random weights:
- fast-<backend>, batch 1: `model(window)` latency; batch B (default 256): windows/s of `model` at batch B.
- stream-<backend>, batch 1: one stream's per-hop latency (`stream.push(one slice)`, hop_slices=1, the
  window full); batch B: hops/s of a pool of B streams each advancing one slice (B pushes + `step()`).
Each stream row carries its ratio to the window row of the same batch (`vs_window`: per-hop latency /
window latency at batch 1, hops/s / windows/s at batch B) and the error of the stream's first output
against `model` on the same window (`max_abs_diff_vs_window`). The two are timed in ROUNDS alternating
blocks; `vs_window` is the median of the per-round ratios (`vs_window_rounds`). Targets (DESIGN.md section 5): per-hop
latency <= 0.5x the window forward; pool throughput >= 2x the window throughput.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

import umsnet_fast
from umsnet_fast.backends import available_backends, get_backend

from . import report
from .common import DTYPES
from .engines import BenchContext
from .runner import BenchConfig, _max_diff, _reason, intra_op_threads, start_run
from .timing import Timing, time_call

__all__ = ["run_stream", "stream_targets"]

PER_HOP_TARGET, POOL_TARGET = 0.5, 2.0
ROUNDS = 3  # window then stream, this many times over (see _time_rounds)


def _backends(device: torch.device, patterns) -> list[str]:
    import fnmatch

    names = [n for n, i in available_backends().items() if i.available and device.type in i.auto_device_types
             and n != "reference"]
    if patterns:
        names = [n for n in names if any(fnmatch.fnmatch(f"fast-{n}", p) or fnmatch.fnmatch(f"stream-{n}", p)
                                         or fnmatch.fnmatch(n, p) for p in patterns)]
        if not names:
            raise ValueError(f"no stream backend matches {list(patterns)}")
    return names


def run_stream(cfg: BenchConfig, *, progress=None) -> tuple[dict, Path]:
    """Run the streaming benchmark; the results document and the path of its JSON file."""
    with intra_op_threads(cfg.threads):
        return _run(cfg, progress)


def _run(cfg: BenchConfig, progress) -> tuple[dict, Path]:
    run = start_run(cfg)
    device, preset, ref, started, machine, commit = (run.device, run.preset, run.reference, run.started,
                                                    run.machine, run.commit)
    json_path = run.out_dir / f"stream-{run.stem}.json"
    backends = _backends(device, cfg.engines)
    batches = (1, max(cfg.batch_sizes))
    config = json.loads(json.dumps(asdict(cfg)))
    config.update(stream=True, batch_sizes=list(batches), engines=[f"{k}-{b}" for b in backends
                                                                   for k in ("fast", "stream")])
    doc = {"schema": report.SCHEMA, "complete": False, "date": started.isoformat(timespec="seconds"),
           "commit": commit, "machine": machine, "versions": report.versions(), "config": config,
           "backends": {n: {"available": i.available, "reason": i.reason} for n, i in available_backends().items()},
           "engines": {}, "notes": {}, "results": []}
    for b in backends:
        doc["engines"][f"fast-{b}"] = f"umsnet_fast.UMSNet, backend {b!r}: model(window)"
        doc["engines"][f"stream-{b}"] = (f"backend {b!r}: batch 1 one stream (push one slice per hop), batch "
                                         f"{batches[1]} a StreamPool of {batches[1]} streams each advancing one slice")
    total = len(backends) * len(cfg.dtypes) * 4

    def emit(row: dict) -> None:
        doc["results"].append(row)
        report.write_json(doc, json_path)

    with tempfile.TemporaryDirectory(prefix="umsnet-bench-") as workdir:
        ctx = BenchContext(ref, preset, cfg.slices, device, cfg.threads, workdir)
        for dtype_name in cfg.dtypes:
            dtype = DTYPES[dtype_name]
            for b in backends:
                if progress:
                    progress(f"stream {b} {dtype_name}", len(doc["results"]), total)
                for row in _measure(ctx, cfg, b, dtype, dtype_name, batches):
                    emit(row)
            ctx.release()
    doc["complete"] = True
    doc["machine"]["load_average_end"] = report.load_average()
    doc["elapsed_s"] = round((report.now() - started).total_seconds(), 1)
    report.write_json(doc, json_path)
    if progress:
        progress("done", len(doc["results"]), total)
    return doc, json_path


def _measure(ctx, cfg, backend: str, dtype, dtype_name: str, batches) -> list[dict]:
    """The four rows of one backend and dtype: window and stream at batch 1, window and pool at batch B."""
    base = [dict(engine=f"{kind}-{backend}", dtype=dtype_name, batch=b) for b in batches for kind in ("fast", "stream")]
    skip = get_backend(backend).input_unsupported_reason(ctx.device, dtype)
    if skip:
        return [dict(r, status="skipped", reason=skip) for r in base]
    model = umsnet_fast.UMSNet.from_reference(ctx.reference_as(dtype), backend=backend).eval()
    rows = []
    for b in batches:
        mode = "latency" if b == 1 else "throughput"
        window = dict(engine=f"fast-{backend}", dtype=dtype_name, batch=b, mode=mode)
        stream_row = dict(engine=f"stream-{backend}", dtype=dtype_name, batch=b, mode=mode)
        xs = ctx.example_inputs(b, dtype, seed=cfg.seed + b)
        try:
            with torch.no_grad():
                expected = model(xs)
            window_call = lambda: model(xs)  # noqa: E731
        except Exception as e:  # noqa: BLE001 - reported as a failed cell
            window.update(status="failed", reason=_reason(e))
            expected = window_call = None
        try:
            stream_call, first = _stream_call(model, ctx, xs, b)
            if expected is not None:
                stream_row["max_abs_diff_vs_window"] = _max_diff(first, expected[0])
        except Exception as e:  # noqa: BLE001
            stream_row.update(status="failed", reason=_reason(e))
            stream_call = None
        _time_rounds(ctx, cfg, b, window, window_call, stream_row, stream_call)
        rows += [window, stream_row]
        if ctx.device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def _stream_call(model, ctx, xs, b: int):
    """b streams, each with a full window of slices; the timed call advances every stream one slice.
    Returns the call and the first stream's first output."""
    length, dtype = ctx.slice_length, xs[0].dtype
    hop = [torch.randn(s.channels, length, dtype=dtype, device=ctx.device) for s in ctx.preset.sensors]
    if b == 1:
        runner = model.stream(1, slice_length=length)
        out = runner.push([x[0] for x in xs])
        call = lambda: runner.push(hop)  # noqa: E731
    else:
        runner = umsnet_fast.StreamPool(model, 1, slice_length=length)
        for i in range(b):
            runner.push(i, [x[i] for x in xs])
        out = runner.step()[0]

        def call():
            for i in range(b):
                runner.push(i, hop)
            return runner.step()
    assert len(out) == 1, f"expected one output for the first window, got {len(out)}"
    return call, out[0]


def _time_rounds(ctx, cfg, b: int, window: dict, window_call, stream_row: dict, stream_call) -> None:
    """Time the window forward, then the stream, ROUNDS times over, each for 1/ROUNDS of the cell's budget.

    One engine at a time (both run the same backend in one process, so neither leaves another runtime's
    workers spinning). The ratio is the median of the per-round ratios: each compares two blocks timed
    seconds apart, so a drift of the machine's speed over the run (a shared machine) cancels out.
    """
    budget = cfg.latency_budget if b == 1 else cfg.throughput_budget
    part = replace(budget, target_s=budget.target_s / ROUNDS,
                   max_iters=max(budget.min_iters, budget.max_iters // ROUNDS))
    timings = {"window": [], "stream": []}
    for _ in range(ROUNDS):
        for name, row, call in (("window", window, window_call), ("stream", stream_row, stream_call)):
            if call is None or row.get("status") == "failed":
                continue
            try:
                timings[name].append(time_call(call, ctx.device, part, latency=b == 1))
            except Exception as e:  # noqa: BLE001
                row.update(status="failed", reason=_reason(e))
    for name, row in (("window", window), ("stream", stream_row)):
        if row.get("status") != "failed":
            row.update(status="ok", **_summary(Timing(sum((t.samples_s for t in timings[name]), ())), b))
    if window["status"] == "ok" and stream_row["status"] == "ok":
        # per-hop latency / window latency (batch 1); hops/s / windows/s (batch B)
        ratios = [(s.median_s / w.median_s) if b == 1 else (w.median_s / s.median_s)
                  for w, s in zip(timings["window"], timings["stream"])]
        stream_row["vs_window"] = round(float(np.median(ratios)), 3)
        stream_row["vs_window_rounds"] = [round(r, 3) for r in ratios]


def _summary(t, b: int) -> dict:
    out = {k: round(v, 6) if isinstance(v, float) else v for k, v in t.summary_ms().items()}
    out["throughput_per_s"] = round(b / t.median_s, 2)
    out["ms_per_sample"] = round(1e3 * t.median_s / b, 6)
    out["speedup_vs_eager"] = None
    return out


def stream_targets(doc: dict) -> list[str]:
    """Per-hop latency <= 0.5x model(window) at batch 1; pool hops/s >= 2x windows/s at batch B."""
    cfg = doc["config"]
    workload = (cfg["variant"], cfg["preset"], cfg["slices"]) == ("A", "hhar", 24)
    lines = []
    for r in doc["results"]:
        if r["status"] != "ok" or "vs_window" not in r:
            continue
        x = r["vs_window"]
        if r["batch"] == 1:
            what, met, target = "per-hop latency / window latency", x <= PER_HOP_TARGET, f"<= {PER_HOP_TARGET:g}x"
        else:
            what, met, target = (f"pool of {r['batch']} hops/s / window throughput at batch {r['batch']}",
                                 x >= POOL_TARGET, f">= {POOL_TARGET:g}x")
        verdict = ("[green]met[/]" if met else "[red]not met[/]") if workload else "not judged (not UMSNet-A/HHAR/K=24)"
        lines.append(f"{r['engine']} {r['dtype']} {what} = {x:.2f}x (target {target}): {verdict}")
    return lines
