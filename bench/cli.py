"""`umsnet-fast bench`: the reference in eager mode against the fast model on every available backend,
torch.compile and ONNX Runtime (CPU) or captured graphs (CUDA), in one process; see umsnet_fast.bench."""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from umsnet_fast.cli import add_model_arguments, int_at_least

QUICK_BATCHES = (1, 2)


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _dtypes(text: str) -> tuple[str, ...]:
    from umsnet_fast.bench.common import DTYPES
    values = tuple(v.strip().lower() for v in text.split(",") if v.strip())
    bad = [v for v in values if v not in DTYPES]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"dtypes must be among {sorted(DTYPES)}, got {text!r}")
    return values


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p, slices_default=None, slices_help="slices per window (default 24; --quick 2)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto (default): the GPU when there is one, else the CPU")
    p.add_argument("--batch-sizes", type=_ints, metavar="B,...",
                   help="batch 1 is timed as latency, the others as throughput "
                        "(default CPU 1,64,256; CUDA 1,64,1024,4096)")
    p.add_argument("--dtype", type=_dtypes, metavar="D,...",
                   help="fp32, fp16, bf16, comma-separated (default CPU fp32; CUDA fp32,bf16)")
    p.add_argument("--threads", type=int_at_least(1), default=None,
                   help="intra-op threads for every engine (default: all cores). ONNX Runtime runs with intra-op "
                        "spinning off; torch's OpenMP threads (and the C++ extension's) keep the OpenMP "
                        "runtime's wait policy as the environment sets it (OMP_WAIT_POLICY, recorded in the JSON)")
    p.add_argument("--engines", metavar="PATTERN,...",
                   help="subset of engines by name or shell pattern, e.g. 'eager,fast-*' (default: all)")
    p.add_argument("--output", default=os.path.join("bench", "results"), metavar="DIR",
                   help="where the JSON and PNG go (default bench/results)")
    p.add_argument("--quick", action="store_true",
                   help="a tiny run (K=2 unless --slices is given, batches 1,2, a few calls each): for tests and "
                        "dry runs")
    p.add_argument("--time-per-cell", type=float, default=None, metavar="S",
                   help="seconds of timed calls per engine and batch size (default 3, --quick 0.05)")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG plot")
    p.add_argument("--profile", action="store_true",
                   help="CUDA: also count each call's kernels and their GPU time (what bounds the latency)")
    p.add_argument("--show", metavar="JSON", help="print the table of an earlier run's results file and exit")
    p.add_argument("--stream", action="store_true",
                   help="the slice cache instead: per-hop latency of one stream against model(window) at batch 1, "
                        "hops/s of a pool of B streams against windows/s at batch B (B: the largest "
                        "--batch-sizes, default 256; --quick 2)")
    p.add_argument("--concurrency", action="store_true",
                   help="CPU: throughput of 1 and 2 Python threads calling one fast model (cpu backend, one intra-op "
                        "thread each; the C++ ops release the GIL) at --batch-sizes (default 1,16), bitwise checked; "
                        "JSON into --output")
    p.add_argument("--kernels", action="store_true",
                   help="GPU: the per-kernel Triton benchmarks against their *_ref instead (UMSNet-A / HHAR "
                        "shapes at --batch-sizes and --dtype; rows appended to bench/results/kernels_triton.csv)")


def build_config(args: argparse.Namespace):
    from umsnet_fast.bench.runner import BenchConfig
    from umsnet_fast.bench.timing import Budget

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available here (torch.cuda.is_available() is False)")
    gpu = device == "cuda"
    slices = args.slices if args.slices is not None else 2 if args.quick else 24
    if slices < 1:
        raise SystemExit(f"--slices must be >= 1, got {slices}")
    batch_sizes = args.batch_sizes or (QUICK_BATCHES if args.quick else (1, 64, 1024, 4096) if gpu else (1, 64, 256))
    if getattr(args, "stream", False):
        batch_sizes = (1, max(args.batch_sizes or (QUICK_BATCHES if args.quick else (256,))))
    dtypes = args.dtype or (("fp32", "bf16") if gpu else ("fp32",))
    threads = args.threads or os.cpu_count() or 1
    if threads < 1:
        raise SystemExit(f"--threads must be >= 1, got {threads}")
    cfg = BenchConfig(variant=args.variant, preset=args.preset, slices=slices, batch_sizes=batch_sizes,
                      dtypes=dtypes, threads=threads, device=device,
                      engines=tuple(e.strip() for e in args.engines.split(",") if e.strip()) if args.engines else None,
                      output=args.output, plot=not args.no_plot, profile=args.profile)
    seconds = args.time_per_cell
    if args.quick:
        seconds = 0.05 if seconds is None else seconds
        cfg.latency_budget = Budget(warmup=1, min_iters=3, max_iters=50, target_s=seconds)
        cfg.throughput_budget = Budget(warmup=1, min_iters=2, max_iters=20, target_s=seconds)
    elif seconds is not None:
        cfg.latency_budget = Budget(warmup=5, min_iters=20, max_iters=5000, target_s=seconds)
        cfg.throughput_budget = Budget(warmup=2, min_iters=5, max_iters=1000, target_s=seconds)
    return cfg


def show(doc: dict, console: Console) -> None:
    """Failures and skips, engine notes, the table, then the targets the run can judge."""
    from umsnet_fast.bench import report

    for line in report.problems(doc):
        console.print(f"[yellow]{line}[/]", highlight=False)
    for engine, note in doc["notes"].items():
        console.print(f"[dim]{engine}: {note}[/]", highlight=False)
    if not doc.get("complete"):
        console.print("[red]incomplete run: the results below are what was measured before it stopped[/]")
    console.print(report.make_table(doc))
    for line in report.targets(doc):
        console.print(line, highlight=False)


def run(args: argparse.Namespace) -> int:
    from umsnet_fast.bench import report, runner

    if args.show:
        show(json.loads(Path(args.show).read_text()), Console())
        return 0
    if args.concurrency:
        from umsnet_fast.bench import concurrency, report
        from umsnet_fast.bench.common import git_commit

        doc = concurrency.run(args.variant, args.preset, args.slices or (2 if args.quick else 24),
                              args.batch_sizes or (1, 16), seconds=args.time_per_cell or (0.2 if args.quick else 3.0))
        out = Path(args.output) / f"concurrency-{report.results_stem(doc['machine'], report.now(), git_commit())}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        report.write_json(doc, out)
        concurrency.print_report(doc, Console())
        Console().print(f"results: {out}")
        return 0
    if args.kernels:
        from umsnet_fast.bench import kernels_triton

        argv = []
        if args.batch_sizes:
            argv += ["--batch", *map(str, args.batch_sizes)]
        if args.dtype:
            argv += ["--dtype", *args.dtype]
        return kernels_triton.main(argv)
    cfg = build_config(args)
    if args.stream:
        from umsnet_fast.bench.stream import run_stream as run_fn
    else:
        run_fn = runner.run
    console = Console()
    err = Console(stderr=True)
    try:
        if err.is_terminal:  # a live bar over engines x dtypes x batch sizes
            with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=err, transient=False) as bar:
                task = bar.add_task("bench", total=None)
                doc, json_path = run_fn(
                    cfg, progress=lambda text, done, total: bar.update(task, description=text, completed=done,
                                                                       total=total))
        else:  # a log file: one line per step
            start = time.perf_counter()
            doc, json_path = run_fn(cfg, progress=lambda text, done, total: err.print(
                f"[{done}/{total} {time.perf_counter() - start:6.1f}s] {text}", highlight=False))
    except ValueError as e:  # an --engines pattern that matches nothing
        raise SystemExit(str(e)) from None
    png = None
    if cfg.plot:
        png = json_path.with_suffix(".png")
        try:
            report.plot(doc, png)
        except Exception as e:  # noqa: BLE001 - the numbers matter more than the picture
            err.print(f"[yellow]plot not written: {type(e).__name__}: {e}[/]")
            png = None
    console.print(f"results: {json_path}" + (f", plot: {png}" if png else ""))
    show(doc, console)
    return 0
