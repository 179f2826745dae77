"""Results of a benchmark run: machine and versions, the JSON file, the table and the plot."""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
from pathlib import Path

import torch
from rich.table import Table

__all__ = ["machine_info", "load_average", "versions", "results_stem", "write_json", "make_table", "plot"]

SCHEMA = "umsnet-fast-bench/1"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages: a loaded machine makes every number slower and noisier."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info(device: torch.device, threads: int) -> dict:
    info = {"device": device.type, "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "threads": threads,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "load_average": load_average(),
            "platform": platform.platform(), "python": platform.python_version()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    multiprocessors=props.multi_processor_count,
                    capability=f"{props.major}.{props.minor}", cuda=torch.version.cuda)
    else:
        info["name"] = info["cpu"]
    return info


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(module)
    except Exception:  # noqa: BLE001 - not installed
        return None


def versions() -> dict:
    import umsnet_fast
    return {"torch": torch.__version__, "triton": _version("triton"), "onnxruntime": _version("onnxruntime"),
            "openvino": _version("openvino"), "onnx": _version("onnx"), "onnxscript": _version("onnxscript"),
            "numpy": _version("numpy"), "umsnet_fast": umsnet_fast.__version__}


def now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or "device"


def results_stem(machine: dict, when: _dt.datetime, commit: str) -> str:
    """<device-slug>-<date>-<short commit>, e.g. nvidia-h100-80gb-hbm3-20261127-0612-1a2b3c4."""
    name = machine["name"] if machine["device"] == "cuda" else f"cpu-{machine['name']}"
    return f"{_slug(name)}-{when.strftime('%Y%m%d-%H%M%S')}-{_slug(commit.replace('+', '-'), 20)}"


def write_json(doc: dict, path: Path) -> None:
    """Write atomically, so a run killed mid-way leaves the last complete snapshot."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)


# -- table ----------------------------------------------------------------------------------------
def _ratio(r: dict) -> str:
    if r.get("vs_window") is not None:  # bench --stream: against the window forward of the same batch
        return f" [bold]{r['vs_window']:.2f}x[/]"
    x = r.get("speedup_vs_eager")
    return "" if x is None else f" [bold]{x:.2f}x[/]"


def _cell(r: dict | None, latency: bool) -> str:
    if r is None:
        return ""
    if r["status"] != "ok":
        return f"[red]{r['status']}[/]" if r["status"] == "failed" else "[dim]skipped[/]"
    if latency:
        return f"{r['median_ms']:.3g}/{r['p90_ms']:.3g}/{r['p99_ms']:.3g}{_ratio(r)}"
    return f"{r['throughput_per_s']:,.0f}/s{_ratio(r)}"


def make_table(doc: dict) -> Table:
    """Engines x (dtype, batch): batch 1 median / p90 / p99 latency, larger batches samples per second; the
    ratio to eager at the same dtype and batch (speed-up: higher is better)."""
    cfg, machine = doc["config"], doc["machine"]
    rows = doc["results"]
    batches = cfg["batch_sizes"]
    load = machine.get("load_average")
    dtypes = cfg["dtypes"]
    title = (f"UMSNet-{cfg['variant']} {cfg['preset'].upper()} K={cfg['slices']}"
             f"{' ' + dtypes[0] if len(dtypes) == 1 else ''} on {machine['name']} "
             f"({machine['threads']} threads{f', load {load[0]:g}' if load else ''}) - {doc['date'][:16]} "
             f"{doc['commit']}")
    caption = ("batch 1: median / p90 / p99 latency; larger batches: windows per second; "
               "[bold]Nx[/] = speed-up over eager at the same dtype and batch")
    if cfg.get("stream"):
        caption = ("stream-*: batch 1 per-hop latency of one stream, batch B hops/s of a pool of B streams; "
                   "[bold]Nx[/] = stream latency / window latency (batch 1), hops/s / windows/s (batch B)")
    table = Table(title=title, caption=caption)
    table.add_column("engine")
    if len(dtypes) > 1:
        table.add_column("dtype")
    for b in batches:
        table.add_column("b=1 latency ms\nmedian/p90/p99" if b == 1 else f"b={b}\nthroughput", justify="right")
    seen = []
    for r in rows:
        key = (r["engine"], r["dtype"])
        if key not in seen:
            seen.append(key)
    for engine, dtype in seen:
        by_batch = {r["batch"]: r for r in rows if r["engine"] == engine and r["dtype"] == dtype}
        table.add_row(engine, *([dtype] if len(dtypes) > 1 else []),
                      *[_cell(by_batch.get(b), b == 1) for b in batches])
    return table


def problems(doc: dict) -> list[str]:
    """One line per failed or skipped (engine, dtype), with its reason."""
    out, seen = [], set()
    for r in doc["results"]:
        key = (r["engine"], r["dtype"], r.get("reason"))
        if r["status"] != "ok" and key not in seen:
            seen.add(key)
            out.append(f"{r['engine']} {r['dtype']}: {r['status']}: {r.get('reason')}")
    return out


# -- plot -----------------------------------------------------------------------------------------
def plot(doc: dict, path: Path) -> None:
    """Two panels: batch-1 latency (median, p99 whisker) and throughput against batch size."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in doc["results"] if r["status"] == "ok"]
    series = []
    for r in ok:
        key = f"{r['engine']} {r['dtype']}"
        if key not in series:
            series.append(key)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    lat = [r for r in ok if r["batch"] == 1]
    if lat:
        labels = [f"{r['engine']}\n{r['dtype']}" for r in lat]
        med = [r["median_ms"] for r in lat]
        err = [[0] * len(lat), [r["p99_ms"] - r["median_ms"] for r in lat]]
        # Points, not bars: on a log axis (needed when a GPU run spans microseconds to milliseconds)
        # a bar's length means nothing.
        ax1.errorbar(med, range(len(lat)), xerr=err, fmt="o", color="tab:blue", capsize=3)
        ax1.set_yticks(range(len(lat)), labels)
        ax1.invert_yaxis()
        ax1.set_xscale("log")
        ax1.grid(True, which="both", axis="x", alpha=0.3)
        ax1.set_xlabel("batch-1 latency, ms (dot: median, whisker: p99; log scale)")
    else:
        ax1.text(0.5, 0.5, "no batch-1 results", ha="center", transform=ax1.transAxes)
    for key in series:
        pts = sorted((r["batch"], r["throughput_per_s"]) for r in ok if f"{r['engine']} {r['dtype']}" == key)
        if pts:
            ax2.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=key)
    ax2.set_xscale("log", base=2)
    ax2.set_yscale("log")
    ax2.set_xlabel("batch size")
    ax2.set_ylabel("windows per second (median)")
    ax2.grid(True, which="both", alpha=0.3)
    if series:
        ax2.legend(fontsize=8)
    cfg, machine = doc["config"], doc["machine"]
    fig.suptitle(f"UMSNet-{cfg['variant']} {cfg['preset'].upper()} K={cfg['slices']} - {machine['name']}, "
                 f"{machine['threads']} threads - torch {doc['versions']['torch']} - {doc['commit']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- targets (DESIGN.md section 5) ------------------------------------------------------------------
def _ok(rows: list[dict], dtype: str, batch: int) -> dict[str, dict]:
    return {r["engine"]: r for r in rows if r["status"] == "ok" and r["dtype"] == dtype and r["batch"] == batch}


def _best_fast(cells: dict[str, dict], graph: bool | None = None) -> dict | None:
    fast = [r for name, r in cells.items() if name.startswith("fast-") and name != "fast-reference"
            and (graph is None or name.endswith("-graph") == graph)]
    return min(fast, key=lambda r: r["median_ms"]) if fast else None


def _figure(r: dict) -> str:
    if r["batch"] == 1:
        ms = r["median_ms"]
        return f"{1e3 * ms:.1f} us" if ms < 1 else f"{ms:.3g} ms"
    return f"{r['throughput_per_s']:,.0f}/s"


def _compare(lines: list, what: str, fast: dict | None, rival: dict | None, target: float) -> None:
    """A line 'what: fast vs rival = Nx (target Mx): met' when both were measured (same dtype and batch)."""
    if fast and rival:
        r = rival["median_ms"] / fast["median_ms"]  # same batch: the latency ratio is the throughput ratio
        verdict = "[green]met[/]" if r >= target else "[red]not met[/]"
        lines.append(f"{what}: {fast['engine']} {_figure(fast)} vs {rival['engine']} {_figure(rival)} = "
                     f"{r:.2f}x (target {target:g}x): {verdict}")


def targets(doc: dict) -> list[str]:
    """The performance targets this run can judge, one line each, with the measured figures.

    The fast model on the `reference` backend is not a candidate: it is the op sequence in plain PyTorch.
    """
    rows, lines = doc["results"], []
    cfg = doc["config"]
    if cfg.get("stream"):
        from .stream import stream_targets
        return stream_targets(doc)
    if (cfg["variant"], cfg["preset"], cfg["slices"]) != ("A", "hhar", 24):
        return [f"targets (DESIGN.md section 5) are set for UMSNet-A / HHAR / K=24; this run is "
                f"UMSNet-{cfg['variant']} / {cfg['preset'].upper()} / K={cfg['slices']}: not judged"]
    if doc["machine"]["device"] == "cpu":
        b1, b256 = _ok(rows, "fp32", 1), _ok(rows, "fp32", 256)
        best = _best_fast(b1)
        _compare(lines, "CPU fp32 batch-1 latency", best, b1.get("eager"), 6)
        rivals = [b1[n] for n in ("inductor", "onnxruntime") if n in b1]
        _compare(lines, "CPU fp32 batch-1 latency vs the best of inductor and ORT", best,
                 min(rivals, key=lambda r: r["median_ms"]) if rivals else None, 2)
        _compare(lines, "CPU fp32 batch-256 throughput", _best_fast(b256), b256.get("eager"), 3)
        # bf16 (AMX machines set these; elsewhere the same comparison tells where the bf16 path stands)
        h1, h64, f64 = _ok(rows, "bf16", 1), _ok(rows, "bf16", 64), _ok(rows, "fp32", 64)
        _compare(lines, "CPU bf16 batch-64 throughput vs OpenVINO bf16", h64.get("fast-cpu"), h64.get("openvino"), 1.5)
        _compare(lines, "CPU bf16 batch-64 throughput vs our fp32", h64.get("fast-cpu"), f64.get("fast-cpu"), 3)
        _compare(lines, "CPU bf16 batch-1 latency vs OpenVINO bf16", h1.get("fast-cpu"), h1.get("openvino"), 2)
    else:
        for dtype in doc["config"]["dtypes"]:
            b1 = _ok(rows, dtype, 1)
            best = _best_fast(b1, graph=True)
            if best:
                us = 1e3 * best["median_ms"]
                bound = ""
                if "kernels" in best:  # --profile: the GPU's share of the latency
                    bound = (f"; {best['kernels']} kernels, {1e3 * best['kernel_ms']:.1f} us of kernel time "
                             f"({100 * best['kernel_ms'] / best['median_ms']:.0f}% of the latency)")
                lines.append(f"GPU {dtype} batch-1 latency: {best['engine']} {us:.1f} us (target 50 us or less): "
                             + ("[green]met[/]" if us <= 50 else "[red]not met[/]") + bound)
            _compare(lines, f"GPU {dtype} batch-1 latency", best, b1.get("inductor-reduce-overhead"), 5)
        big = _ok(rows, "bf16", 4096)
        _compare(lines, "GPU bf16 batch-4096 throughput", _best_fast(big), big.get("inductor-max-autotune"), 2)
    return lines
