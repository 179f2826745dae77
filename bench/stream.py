"""`umsnet-fast bench --stream`: the slice cache against the window forward, in one process.

Per backend that `auto` may pick on the device (and dtype it runs), on the same random weights:
- fast-<backend>, batch 1: `model(window)` latency; batch B (default 256): windows/s of `model` at batch B.
- stream-<backend>, batch 1: one stream's per-hop latency (`stream.push(one slice)`, hop_slices=1, the
  window full); batch B: hops/s of a pool of B streams each advancing one slice (B pushes + `step()`).
Each stream row carries its ratio to the window row of the same batch (`vs_window`: per-hop latency /
window latency at batch 1, hops/s / windows/s at batch B) and the error of the stream's first output
against `model` on the same window (`max_abs_diff_vs_window`). Targets (DESIGN.md section 5): per-hop
latency <= 0.5x the window forward; pool throughput >= 2x the window throughput.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

import umsnet_fast
from umsnet_fast.backends import available_backends, get_backend

from . import report
from .common import DTYPES
from .engines import BenchContext
from .runner import BenchConfig, _max_diff, _reason, intra_op_threads, start_run
from .timing import time_call

__all__ = ["run_stream", "stream_targets"]

PER_HOP_TARGET, POOL_TARGET = 0.5, 2.0


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
    length = ctx.slice_length
    model = umsnet_fast.UMSNet.from_reference(ctx.reference_as(dtype), backend=backend).eval()
    rows = []
    for b in batches:
        latency = b == 1
        budget = cfg.latency_budget if latency else cfg.throughput_budget
        mode = "latency" if latency else "throughput"
        # the window forward
        xs = ctx.example_inputs(b, dtype, seed=cfg.seed + b)
        window = dict(engine=f"fast-{backend}", dtype=dtype_name, batch=b, mode=mode)
        try:
            with torch.no_grad():
                expected = model(xs)
            t = time_call(lambda: model(xs), ctx.device, budget, latency=latency)
            window.update(status="ok", **_summary(t, b))
        except Exception as e:  # noqa: BLE001 - reported as a failed cell
            window.update(status="failed", reason=_reason(e))
            expected = None
        rows.append(window)
        # b streams, each with a full window of slices, then one slice per stream per timed call
        stream_row = dict(engine=f"stream-{backend}", dtype=dtype_name, batch=b, mode=mode)
        try:
            first = [x[0].unsqueeze(0) for x in xs] if expected is not None else None
            hop = [torch.randn(s.channels, length, dtype=dtype, device=ctx.device) for s in ctx.preset.sensors]
            if latency:
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
            t = time_call(call, ctx.device, budget, latency=latency)
            stream_row.update(status="ok", **_summary(t, b))
            if first is not None:
                stream_row["max_abs_diff_vs_window"] = _max_diff(out[0], expected[0])
            if window["status"] == "ok":
                stream_row["vs_window"] = round(stream_row["median_ms"] / window["median_ms"], 3) if latency else \
                    round(stream_row["throughput_per_s"] / window["throughput_per_s"], 3)
        except Exception as e:  # noqa: BLE001
            stream_row.update(status="failed", reason=_reason(e))
        rows.append(stream_row)
        if ctx.device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


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
