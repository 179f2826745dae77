"""The Python half of bench/device_check.sh (the GPU machine's one-call check): the step table, the
correctness smoke, the benchmark plans and the closing table. Run by the script; by hand:

    python -m umsnet_fast.bench.device_check smoke --backend triton --dtype bf16 --jsonl smoke.jsonl
    python -m umsnet_fast.bench.device_check bench latency --output DIR
    python -m umsnet_fast.bench.device_check summary OUT
    python -m umsnet_fast.bench.device_check steps        # the step table, checked

Everything is written as it is done (one JSON line per smoke check, the benchmark JSON after every
cell), so a step stopped by its time limit still leaves what it measured.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

STEPS_FILE = Path(__file__).with_name("device_check_steps.txt")


# -- the step table --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    name: str
    budget_s: int
    kind: str  # fg: runs alone; bg: in the background, joined by the step named in `joins`;
    #            rest: gets its budget plus what earlier steps left; optional: only from time left over
    joins: str | None = None


def read_steps(path: Path = STEPS_FILE) -> tuple[dict, list[Step]]:
    """(settings {"total": s, "kill_after": s}, steps in run order) of the table the script reads."""
    settings, steps = {}, []
    for line in path.read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if fields[0] in ("total", "kill_after") and len(fields) == 2:
            settings[fields[0]] = int(fields[1])
        elif fields[0] == "step" and len(fields) in (4, 5):
            kind = fields[3]
            joins = fields[4] if len(fields) == 5 else None
            if kind not in ("fg", "bg", "rest", "optional") or (kind == "bg") != (joins is not None):
                raise ValueError(f"{path.name}: bad step line {line!r} (kind fg|bg <joined-by>|rest|optional)")
            steps.append(Step(fields[1], int(fields[2]), kind, joins))
        else:
            raise ValueError(f"{path.name}: cannot read {line!r}")
    return settings, steps


def check_steps(settings: dict, steps: list[Step]) -> list[str]:
    """What is wrong with the table (empty when it fits): the steps that always run (fg, rest) plus a
    kill margin each must fit in `total`; a background step must end within the foreground steps it
    runs beside (from the step after the one it starts behind, to the one that joins it)."""
    problems = []
    names = [s.name for s in steps]
    kill = settings.get("kill_after", 0)
    always = [s for s in steps if s.kind in ("fg", "rest")]
    used = sum(s.budget_s + kill for s in always)
    if used > settings.get("total", 0):
        problems.append(f"the steps that always run take {used} s with kill margins, over total "
                        f"{settings.get('total')} s")
    if sum(s.kind == "rest" for s in steps) != 1:
        problems.append("exactly one step takes the time left (kind rest)")
    for i, s in enumerate(steps):
        if s.kind != "bg":
            continue
        if s.joins not in names[i + 1:]:
            problems.append(f"background step {s.name}: its joining step {s.joins} must come after it")
            continue
        beside = [t for t in steps[i + 1:names.index(s.joins) + 1] if t.kind in ("fg", "rest")]
        if s.budget_s + kill > sum(t.budget_s for t in beside):
            problems.append(f"background step {s.name} ({s.budget_s} s) can outlast the steps beside it "
                            f"({', '.join(t.name for t in beside)})")
    return problems


# -- smoke -----------------------------------------------------------------------------------------
def _odd_config():
    """Odd widths, lengths, kernel size and sensor channels, several blocks per stage, K = 3."""
    from umsnet_fast import SensorSpec
    sensors = [SensorSpec("acc", 3), SensorSpec("ecg", 5)]
    kwargs = dict(dims=(13, 21, 27, 41), fusion_dims=(23, 23, 29, 45), depths=(1, 2, 1, 1),
                  fusion_depths=(1, 1, 2, 1), num_layers=1, embed_dim=48, num_heads=2, mlp_dim=81, kernel_size=5)
    return sensors, 7, 3, (9, 11), kwargs


# --quick (the dry run: Triton's interpreter on a CPU takes ~1 s per kernel launch): one block per stage
TINY = dict(depths=(1, 1, 1, 1), fusion_depths=(1, 1, 1, 1), num_layers=1)


def smoke_cases(quick: bool) -> dict:
    """name -> (sensors, classes, K, slice lengths, model kwargs, batch sizes). Batches 1 and 2 cover
    the benchmark's batch 1 and 4096 (Triton specialises row counts on divisibility by 16)."""
    from umsnet_fast.presets import HHAR
    sensors, classes, odd_k, lengths, kwargs = _odd_config()
    if quick:
        return {"hhar-K1-tiny": (list(HHAR.sensors), HHAR.num_classes, 1, (HHAR.slice_length,) * 2,
                                 dict(TINY, variant="A"), (1,)),
                "odd": (sensors, classes, 1, lengths, dict(kwargs, **TINY), (2,))}
    return {"hhar-A-K24": (list(HHAR.sensors), HHAR.num_classes, 24, (HHAR.slice_length,) * 2,
                           dict(variant="A"), (1, 2)),
            "odd": (sensors, classes, odd_k, lengths, kwargs, (3,))}


def _errors(out, oracle, ref) -> dict:
    """Relative (L2) and max errors against the float64 oracle, and the contract's bound (testing.py)."""
    from umsnet_fast.testing import contract_atol
    o, r, p = out.double(), oracle.double(), ref.double()
    max_err = float((o - r).abs().max())
    tol = 2 * float((p - r).abs().max()) + contract_atol(out.dtype)
    rel = float((o - r).norm() / r.norm().clamp_min(1e-30))
    return {"rel_err": rel, "max_err": max_err, "tol": tol, "ok": bool(max_err <= tol) and math.isfinite(rel)}


def smoke(backend: str, dtype_name: str, cases: list[str], capture: bool, quick: bool, jsonl: Path,
          unavailable_ok: bool = False) -> int:
    """Whole-model checks of one backend at one dtype against the float64 reference; one JSON line each."""
    import copy
    import os

    import torch

    import umsnet_fast
    from umsnet_fast.backends import available_backends
    from umsnet_fast.reference import UMSNet as ReferenceUMSNet
    from umsnet_fast.testing import randomize_

    from .common import DTYPES

    dtype = DTYPES[dtype_name]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    base = {"backend": backend, "dtype": dtype_name, "device": device.type,
            "autotune": os.environ.get("UMSNET_FAST_AUTOTUNE", "1"),
            "triton_modules": os.environ.get("UMSNET_FAST_TRITON_MODULES", "1")}
    failures = 0
    jsonl.parent.mkdir(parents=True, exist_ok=True)

    def emit(row: dict) -> None:
        nonlocal failures
        row = {**base, **row}
        failures += row["status"] != "ok"
        with jsonl.open("a") as f:
            f.write(json.dumps(row) + "\n")
        errs = (f"rel {row['rel_err']:.2e}  max {row['max_err']:.2e} (bound {row['tol']:.2e})"
                if "rel_err" in row else row.get("error", ""))
        print(f"smoke {backend:7} {dtype_name:5} {row['case']:12} {row.get('what', ''):14} "
              f"{row['status']:11} {errs}  [{row.get('seconds', 0):.1f} s, autotune={base['autotune']}]", flush=True)

    info = available_backends()[backend]
    unsupported = (info.reason if not info.available else
                   umsnet_fast.backends.get_backend(backend).input_unsupported_reason(device, dtype))
    if unsupported:
        emit({"case": "-", "status": "unavailable", "error": unsupported})
        return 0 if unavailable_ok else 1
    for name, (sensors, classes, k, lengths, kwargs, batches) in smoke_cases(quick).items():
        if name.split("-")[0] not in cases:
            continue
        ref = randomize_(ReferenceUMSNet(sensors, classes, k, **kwargs), seed=7).eval()
        # (Module.to converts in place: every model gets its own copy of the fp32 master weights.)
        fast = umsnet_fast.UMSNet.from_reference(copy.deepcopy(ref), backend=backend).to(device, dtype).eval()
        ref_p = copy.deepcopy(ref).to(device, dtype)
        oracle = copy.deepcopy(ref).to(device, torch.float64)
        g = torch.Generator().manual_seed(8)

        shapes = [(s.channels, k * n) for s, n in zip(sensors, lengths, strict=True)]

        def inputs(b, g=g, shapes=shapes):
            return [torch.randn(b, c, t, generator=g, dtype=torch.float64).to(device) for c, t in shapes]

        runs = [(f"batch {b}", b, None) for b in batches]
        if capture and name != "odd":
            cb = 1 if quick else 2
            runs.append((f"compile b={cb}", cb, "compile"))
        for what, b, how in runs:
            t0 = time.perf_counter()
            try:
                xs = inputs(b)
                with torch.no_grad():
                    if how == "compile":  # a captured forward, no warm-up asked for (one is always done)
                        run = umsnet_fast.compile(fast, b, dtype, slice_length=list(lengths), warmup=0)
                        out = run([x.to(dtype) for x in xs])
                        out = run([x.to(dtype) for x in xs])  # a replay, not the first call
                    else:
                        out = fast([x.to(dtype) for x in xs])
                    ref_out = ref_p([x.to(dtype) for x in xs])
                    oracle_out = oracle(xs)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                errs = _errors(out, oracle_out, ref_out)
                emit({"case": name, "what": what, "batch": b, "status": "ok" if errs.pop("ok") else "WRONG",
                      **errs, "seconds": round(time.perf_counter() - t0, 2)})
            except Exception as e:  # noqa: BLE001 - reported, and the next check runs
                text = str(e).strip().splitlines()
                emit({"case": name, "what": what, "batch": b, "status": "ERROR",
                      "error": f"{type(e).__name__}: {' | '.join(text[:3])[:600]}",
                      "seconds": round(time.perf_counter() - t0, 2)})
                if device.type == "cuda":
                    try:
                        torch.cuda.synchronize()
                    except Exception:  # noqa: BLE001 - a sticky launch failure: the rest cannot run
                        return 1
    return 1 if failures else 0


def smoke_stream(backend: str, dtype_name: str, quick: bool, jsonl: Path, unavailable_ok: bool = False) -> int:
    """A StreamPool (CUDA graphs per bucket on a GPU) of a few streams fed in uneven chunks, each hop
    against the float64 reference on the window that hop covers (the numerics contract); one JSON line."""
    import copy

    import torch

    import umsnet_fast
    from umsnet_fast.backends import available_backends
    from umsnet_fast.presets import HHAR
    from umsnet_fast.reference import UMSNet as ReferenceUMSNet
    from umsnet_fast.testing import randomize_

    from .common import DTYPES

    dtype = DTYPES[dtype_name]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    row = {"backend": backend, "dtype": dtype_name, "device": device.type, "case": "stream-pool", "what": "hops"}
    info = available_backends()[backend]
    unsupported = (info.reason if not info.available else
                   umsnet_fast.backends.get_backend(backend).input_unsupported_reason(device, dtype))
    t0 = time.perf_counter()
    if unsupported:
        row.update(status="unavailable", error=unsupported)
    else:
        k, streams, extra = (2, 2, 2) if quick else (24, 4, 3)
        kwargs = dict(TINY, variant="A") if quick else dict(variant="A")
        ref = randomize_(ReferenceUMSNet(list(HHAR.sensors), HHAR.num_classes, k, **kwargs), seed=9).eval()
        fast = umsnet_fast.UMSNet.from_reference(copy.deepcopy(ref), backend=backend).to(device, dtype).eval()
        ref_p, oracle = copy.deepcopy(ref).to(device, dtype), copy.deepcopy(ref).to(device, torch.float64)
        length = HHAR.slice_length
        g = torch.Generator().manual_seed(10)
        signals = [[torch.randn(s.channels, (k + extra) * length, generator=g, dtype=torch.float64)
                    for s in HHAR.sensors] for _ in range(streams)]
        try:
            pool = umsnet_fast.StreamPool(fast, hop_slices=1, slice_length=length, device=device, dtype=dtype)
            got: dict = {i: [] for i in range(streams)}
            for start, stop in ((0, k * length - 7), (k * length - 7, (k + extra) * length)):  # uneven chunks
                for i, sig in enumerate(signals):
                    pool.push(i, [x[:, start:stop].to(device, dtype) for x in sig])
                for i, outs in pool.step().items():
                    got[i] += outs
            outs, oracles, refs = [], [], []
            for i, sig in enumerate(signals):
                for t, out in enumerate(got[i]):
                    window = [x[None, :, t * length:(t + k) * length].to(device) for x in sig]
                    with torch.no_grad():
                        oracles.append(oracle(window)[0])
                        refs.append(ref_p([x.to(dtype) for x in window])[0])
                    outs.append(out)
            hops = len(outs)
            errs = _errors(torch.stack(outs), torch.stack(oracles), torch.stack(refs))
            ok = errs.pop("ok") and hops == streams * (extra + 1)
            row.update(status="ok" if ok else "WRONG", hops=hops, **errs)
        except Exception as e:  # noqa: BLE001 - reported, and the check goes on
            row.update(status="ERROR", error=f"{type(e).__name__}: {str(e).strip()[:600]}")
    row["seconds"] = round(time.perf_counter() - t0, 2)
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    with jsonl.open("a") as f:
        f.write(json.dumps(row) + "\n")
    errs = f"rel {row['rel_err']:.2e}  max {row['max_err']:.2e} (bound {row['tol']:.2e})" if "rel_err" in row else ""
    print(f"smoke {backend:7} {dtype_name:5} stream-pool  {row['status']:11} {errs or row.get('error', '')}"
          f"  [{row['seconds']:.1f} s]", flush=True)
    if row["status"] == "unavailable":
        return 0 if unavailable_ok else 1
    return 0 if row["status"] == "ok" else 1


# -- benchmark plans -------------------------------------------------------------------------------
# What each benchmark step measures, in order of value (the runner writes the JSON after every cell):
# engines as name patterns; those whose backend is unavailable are left out and said so.
PLANS = {
    "latency": dict(dtypes=("bf16", "fp32"), batch_sizes=(1,), profile=True,
                    engines=("eager", "fast-cuda-graph", "fast-triton-graph", "inductor-reduce-overhead",
                             "fast-triton-per-block-graph", "fast-cuda", "fast-triton")),
    "throughput": dict(dtypes=("bf16",), batch_sizes=(4096,), profile=False,
                       engines=("eager", "fast-cuda", "fast-triton", "inductor")),
    "autotune": dict(dtypes=("bf16",), batch_sizes=(4096,), profile=False, engines=("inductor-max-autotune",)),
}
# --quick (the dry run on a CPU): the same steps on the CPU engines, a tiny model, a few calls.
QUICK_PLANS = {
    "latency": dict(dtypes=("fp32",), batch_sizes=(1,), profile=False, engines=("eager", "fast-*")),
    "throughput": dict(dtypes=("fp32",), batch_sizes=(2,), profile=False, engines=("eager", "fast-cpu")),
    "autotune": dict(dtypes=("fp32",), batch_sizes=(2,), profile=False, engines=("fast-reference",)),
}


def bench(plan_name: str, output: str, quick: bool, time_per_cell: float) -> int:
    import torch

    from .engines import all_engines
    from .runner import BenchConfig, run
    from .timing import Budget

    plan = (QUICK_PLANS if quick else PLANS)[plan_name]
    device = torch.device("cuda" if torch.cuda.is_available() and not quick else "cpu")
    names = [e.name for e in all_engines(device)]
    engines = [n for p in plan["engines"] for n in fnmatch.filter(names, p)]
    missing = [p for p in plan["engines"] if not fnmatch.filter(names, p)]
    if missing:
        print(f"bench {plan_name}: not on this machine (backend unavailable): {', '.join(missing)}", flush=True)
    if not engines:
        print(f"bench {plan_name}: nothing to run", flush=True)
        return 1
    cfg = BenchConfig(slices=2 if quick else 24, batch_sizes=plan["batch_sizes"], dtypes=plan["dtypes"],
                      threads=1 if quick else torch.get_num_threads(), device=device.type,
                      engines=tuple(dict.fromkeys(engines)), in_pattern_order=True, output=output, plot=False,
                      profile=plan["profile"])
    cfg.latency_budget = Budget(warmup=3, min_iters=5 if quick else 20, max_iters=5000, target_s=time_per_cell)
    cfg.throughput_budget = Budget(warmup=1, min_iters=2 if quick else 5, max_iters=1000, target_s=time_per_cell)
    start = time.perf_counter()
    doc, path = run(cfg, progress=lambda text, done, total: print(
        f"bench {plan_name} [{done}/{total} {time.perf_counter() - start:6.1f}s] {text}", flush=True))
    print(f"bench {plan_name}: {path}", flush=True)
    return 1 if any(r["status"] == "failed" for r in doc["results"]) else 0


# -- summary ---------------------------------------------------------------------------------------
def load_bench(out: Path) -> dict | None:
    """The benchmark documents under out/bench-*/ merged into one (results of all, config of the first)."""
    docs = []
    order = list(PLANS)
    for path in sorted(out.glob("bench-*/*.json"),
                       key=lambda p: (order.index(p.parent.name[6:]) if p.parent.name[6:] in order else 99, p.name)):
        try:
            docs.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    if not docs:
        return None
    merged = dict(docs[0], results=[r for d in docs for r in d["results"]])
    dtypes = list(dict.fromkeys(t for d in docs for t in d["config"]["dtypes"]))
    merged["config"] = dict(docs[0]["config"], dtypes=dtypes)
    merged["complete"] = all(d.get("complete") for d in docs)
    return merged


def _rival(cells: dict, batch: int) -> dict | None:
    """The torch.compile cell a row is compared with: reduce-overhead at batch 1 (the target's rival),
    else the best inductor mode measured at that batch."""
    if batch == 1 and "inductor-reduce-overhead" in cells:
        return cells["inductor-reduce-overhead"]
    modes = [cells[n] for n in ("inductor-max-autotune", "inductor", "inductor-reduce-overhead") if n in cells]
    return min(modes, key=lambda r: r["median_ms"]) if modes else None


def table_lines(doc: dict) -> list[str]:
    """engine | dtype | batch | median | x eager | x inductor (which) | error vs eager, one row per cell."""
    rows = doc["results"]
    ok = {(r["engine"], r["dtype"], r["batch"]): r for r in rows if r["status"] == "ok"}
    head = (f"{'engine':26} {'dtype':5} {'batch':>5} {'median':>12} {'x eager':>8} {'x inductor':>20} "
            f"{'err vs eager':>12}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"{r['engine']:26} {r['dtype']:5} {r['batch']:>5} {r['status']}: "
                         f"{str(r.get('reason'))[:70]}")
            continue
        cells = {e: c for (e, d, b), c in ok.items() if d == r["dtype"] and b == r["batch"]}
        median = f"{1e3 * r['median_ms']:.1f} us" if r["median_ms"] < 1 else f"{r['median_ms']:.3g} ms"
        eager = cells.get("eager")
        x_eager = f"{eager['median_ms'] / r['median_ms']:.2f}x" if eager else "-"
        rival = _rival(cells, r["batch"])
        x_rival = "-"
        if rival and rival is not r:
            mode = rival["engine"].removeprefix("inductor").lstrip("-") or "default"
            x_rival = f"{rival['median_ms'] / r['median_ms']:.2f}x ({mode})"
        err = r.get("max_abs_diff_vs_eager")
        lines.append(f"{r['engine']:26} {r['dtype']:5} {r['batch']:>5} {median:>12} {x_eager:>8} {x_rival:>20} "
                     f"{'-' if err is None else f'{err:.2e}':>12}")
    return lines


def _plain(text: str) -> str:
    import re
    return re.sub(r"\[/?(green|red|yellow|bold|dim)\]", "", text)


def summary(out: Path) -> int:
    """The closing text: steps, smoke results, GPU test counts, targets, and the table last."""
    lines = []
    try:
        check = json.loads((out / "check.json").read_text())
    except (OSError, ValueError):
        check = {"steps": [], "smoke": []}
    lines.append(f"device_check{' (DRY RUN)' if check.get('dry_run') else ''}: {check.get('gpu', '?')}, "
                 f"commit {check.get('commit', '?')}, {check.get('elapsed_s', '?')} s")
    for s in check.get("steps", []):
        lines.append(f"  step {s['name']:17} {s['status']:22} {s['seconds']:>4} s (limit {s['limit_s']} s)")
    smoke_rows = check.get("smoke", [])
    bad = [r for r in smoke_rows if r.get("status") != "ok"]
    lines.append(f"smoke: {len(smoke_rows) - len(bad)} of {len(smoke_rows)} checks ok")
    worst: dict = {}
    for r in smoke_rows:
        if r.get("status") == "ok":
            key = (r["backend"], r["dtype"])
            worst[key] = max(worst.get(key, 0.0), r["rel_err"])
    for (backend, dtype), rel in sorted(worst.items()):
        lines.append(f"  {backend:7} {dtype:5} worst relative error vs float64 {rel:.2e}")
    for r in bad:
        lines.append(f"  {r.get('status')}: {r.get('backend')} {r.get('dtype')} {r.get('case')} {r.get('what', '')} "
                     f"[autotune={r.get('autotune')}] {r.get('error') or ''} "
                     + (f"rel {r['rel_err']:.2e} max {r['max_err']:.2e} > {r['tol']:.2e}" if "rel_err" in r else ""))
    tests = check.get("tests")
    if tests:
        lines.append("GPU tests: " + ", ".join(f"{n} {k}" for k, n in tests.items()))
    doc = load_bench(out)
    if doc is None:
        lines.append("no benchmark results")
    else:
        from . import report
        if not doc["complete"]:
            lines.append("benchmark incomplete: the rows below are what was measured before a step stopped")
        lines += [_plain(t) for t in report.targets(doc)]
        lines += table_lines(doc)
    print("\n".join(lines))
    return 0


_OUTCOMES = "PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS"


def count_tests(log: Path) -> dict:
    """Outcome counts from a pytest -v log, with or without xdist (also of a run killed before its
    closing line): one per test and outcome."""
    import re
    xdist = re.compile(rf"^\[gw\d+\] \[\s*\d+%\] ({_OUTCOMES}) (tests/\S.*?)\s*$")
    plain = re.compile(rf"^(tests/\S.*?) ({_OUTCOMES})(?: \[\s*\d+%\])?\s*$")
    seen = set()
    for line in log.read_text(errors="replace").splitlines():
        m = xdist.match(line)
        if m:
            seen.add((m.group(2), m.group(1)))
        elif (m := plain.match(line)):
            seen.add((m.group(1), m.group(2)))
    counts: dict = {}
    for _, outcome in seen:
        counts[outcome.lower()] = counts.get(outcome.lower(), 0) + 1
    return counts


def write_check(out: Path, work: Path, meta: dict) -> None:
    """$OUT/check.json from the script's scratch files: the steps so far, the smoke's JSON lines (a line
    cut by a kill is skipped), the GPU test counts. Written atomically; stdlib only (run by path)."""
    steps = []
    for line in (work / "steps.tsv").read_text().splitlines() if (work / "steps.tsv").exists() else []:
        name, status, seconds, limit = line.split("\t")
        steps.append({"name": name, "status": status, "seconds": int(seconds), "limit_s": int(limit)})
    smoke_rows = []
    for path in sorted(work.glob("smoke/*.jsonl")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                smoke_rows.append(json.loads(line))
            except ValueError:
                pass
    tests = None
    if (work / "tests.json").exists():
        try:
            tests = json.loads((work / "tests.json").read_text())
        except ValueError:
            pass
    doc = {"schema": "umsnet-fast-device-check/1", **meta, "steps": steps, "tests": tests, "smoke": smoke_rows}
    tmp = out / "check.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(out / "check.json")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m umsnet_fast.bench.device_check",
                                description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("smoke", help="whole-model correctness of one backend and dtype against float64")
    s.add_argument("--backend", required=True)
    s.add_argument("--dtype", required=True, choices=("fp32", "fp16", "bf16"))
    s.add_argument("--cases", default="hhar,odd", help="hhar, odd or both (default)")
    s.add_argument("--capture", action="store_true", help="also one captured forward (umsnet_fast.compile)")
    s.add_argument("--quick", action="store_true", help="K=2 (the dry run)")
    s.add_argument("--jsonl", type=Path, required=True, help="one JSON line per check is appended here")
    s.add_argument("--unavailable-ok", action="store_true", help="exit 0 when the backend cannot run here")
    st = sub.add_parser("smoke-stream", help="a StreamPool of one backend and dtype against float64")
    st.add_argument("--backend", required=True)
    st.add_argument("--dtype", required=True, choices=("fp32", "fp16", "bf16"))
    st.add_argument("--quick", action="store_true", help="a tiny model at K=2 (the dry run)")
    st.add_argument("--jsonl", type=Path, required=True, help="one JSON line is appended here")
    st.add_argument("--unavailable-ok", action="store_true", help="exit 0 when the backend cannot run here")
    b = sub.add_parser("bench", help="one benchmark plan (PLANS)")
    b.add_argument("plan", choices=sorted(PLANS))
    b.add_argument("--output", required=True)
    b.add_argument("--quick", action="store_true")
    b.add_argument("--time-per-cell", type=float, default=1.0)
    m = sub.add_parser("summary", help="the closing text of a check's output folder")
    m.add_argument("out", type=Path)
    t = sub.add_parser("count-tests", help="outcome counts of a pytest -v log, as JSON")
    t.add_argument("log", type=Path)
    w = sub.add_parser("write-check", help="(the script) rewrite OUT/check.json from its scratch folder")
    w.add_argument("out", type=Path)
    w.add_argument("work", type=Path)
    w.add_argument("--meta", default="{}", help="JSON object of fields to put at the top")
    sub.add_parser("steps", help="print the step table's problems (exit 1 if any)")
    args = p.parse_args(argv)
    if args.command == "smoke":
        return smoke(args.backend, args.dtype, args.cases.split(","), args.capture, args.quick, args.jsonl,
                     args.unavailable_ok)
    if args.command == "smoke-stream":
        return smoke_stream(args.backend, args.dtype, args.quick, args.jsonl, args.unavailable_ok)
    if args.command == "bench":
        return bench(args.plan, args.output, args.quick, args.time_per_cell)
    if args.command == "summary":
        return summary(args.out)
    if args.command == "write-check":
        write_check(args.out, args.work, json.loads(args.meta))
        return 0
    if args.command == "count-tests":
        print(json.dumps(count_tests(args.log)))
        return 0
    problems = check_steps(*read_steps())
    print("\n".join(problems) or "step table ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
