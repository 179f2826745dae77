"""The benchmark suite: `umsnet-fast bench --quick` end to end, its JSON, failure handling, the timing
helper, and bench/device_check.sh --dry-run. Nothing here asserts a speed."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from umsnet_fast import cli
from umsnet_fast.bench import device_check, report, runner
from umsnet_fast.bench import engines as bench_engines
from umsnet_fast.bench.timing import Budget, Timing, time_cpu

ROOT = Path(__file__).resolve().parent.parent
QUICK = Budget(warmup=1, min_iters=2, max_iters=5, target_s=0.01)


def _only_json(out_dir: Path) -> dict:
    files = sorted(out_dir.glob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


HAVE_ORT = importlib.util.find_spec("onnxruntime") is not None  # the `bench` extra


def test_quick_bench_through_the_cli(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out_dir = tmp_path / "results"
    rc = cli.main(["bench", "--quick", "--threads", "1", "--engines",
                   "eager,fast-*" + (",onnxruntime" if HAVE_ORT else ""), "--output", str(out_dir)])
    assert rc == 0
    doc = _only_json(out_dir)
    stem = next(out_dir.glob("*.json")).stem
    assert (out_dir / f"{stem}.png").stat().st_size > 0
    assert stem.startswith("cpu-") and doc["commit"].split("+")[0] in stem

    assert doc["schema"] == report.SCHEMA and doc["complete"] is True
    for key in ("name", "cpu", "threads", "cpu_count", "load_average"):
        assert key in doc["machine"]
    assert doc["machine"]["threads"] == 1 and doc["machine"]["device"] == "cpu"
    assert doc["versions"]["torch"] == torch.__version__ and "onnxruntime" in doc["versions"]
    cfg = doc["config"]
    assert (cfg["variant"], cfg["preset"], cfg["slices"], cfg["batch_sizes"]) == ("A", "hhar", 2, [1, 2])
    expected = ["eager"] + [f"fast-{n}" for n, i in runner.available_backends().items()
                            if i.available and "cpu" in i.auto_device_types] + (["onnxruntime"] if HAVE_ORT else [])
    assert cfg["engines"] == expected
    assert len(doc["results"]) == len(expected) * 2

    for row in doc["results"]:
        assert row["status"] == "ok", row
        assert row["median_ms"] > 0 and row["p90_ms"] >= row["median_ms"] and row["p99_ms"] >= row["p90_ms"]
        assert row["throughput_per_s"] == pytest.approx(row["batch"] * 1e3 / row["median_ms"], rel=1e-3)
        assert row["speedup_vs_eager"] > 0
        assert row["max_abs_diff_vs_eager"] < 1e-3  # every engine computes the same function
        assert row["mode"] == ("latency" if row["batch"] == 1 else "throughput")
    eager = [r for r in doc["results"] if r["engine"] == "eager"]
    assert all(r["speedup_vs_eager"] == 1.0 and r["max_abs_diff_vs_eager"] == 0.0 for r in eager)
    if HAVE_ORT:
        assert "torch.onnx.export" in doc["notes"]["onnxruntime"]

    printed = capsys.readouterr().out
    assert "speed-up over eager" in printed and "fast-reference" in printed


def test_failing_engine_is_reported_and_the_run_goes_on(tmp_path, monkeypatch):
    def broken_prepare(self, ctx, dtype):
        raise RuntimeError("export exploded\nsecond line")

    def broken_make(self, ctx, dtype, batch):
        if batch == 2:
            raise MemoryError("no room at batch 2")
        return self._model

    monkeypatch.setattr(bench_engines.OnnxRuntimeEngine, "prepare", broken_prepare)
    monkeypatch.setattr(bench_engines.FastEngine, "make", broken_make)
    cfg = runner.BenchConfig(slices=2, batch_sizes=(1, 2), threads=1, output=str(tmp_path), plot=False,
                             engines=("eager", "fast-reference", "onnxruntime"),
                             latency_budget=QUICK, throughput_budget=QUICK)
    doc, path = runner.run(cfg)
    assert path.parent == tmp_path and json.loads(path.read_text()) == doc
    rows = {(r["engine"], r["batch"]): r for r in doc["results"]}
    assert rows["onnxruntime", 1]["status"] == rows["onnxruntime", 2]["status"] == "failed"
    assert rows["onnxruntime", 1]["reason"] == "prepare: RuntimeError: export exploded"
    assert rows["fast-reference", 1]["status"] == "ok"
    assert rows["fast-reference", 2] == {"engine": "fast-reference", "dtype": "fp32", "batch": 2,
                                         "mode": "throughput", "status": "failed",
                                         "reason": "MemoryError: no room at batch 2"}
    assert doc["complete"] is True
    assert any("export exploded" in line for line in report.problems(doc))
    report.make_table(doc)  # renders failed cells
    if importlib.util.find_spec("matplotlib"):
        report.plot(doc, tmp_path / "plot.png")


def test_skipped_cells_and_engine_selection(tmp_path, capsys):
    cfg = runner.BenchConfig(slices=2, batch_sizes=(1,), dtypes=("bf16",), threads=1, output=str(tmp_path),
                             plot=False, engines=("onnx*",), latency_budget=QUICK)
    doc, _ = runner.run(cfg)
    assert [(r["engine"], r["status"], r["reason"]) for r in doc["results"]] == [
        ("onnxruntime", "skipped", "benchmarked in fp32 only")]
    cpu = bench_engines.all_engines(torch.device("cpu"))
    names = [e.name for e in bench_engines.select_engines(cpu, ["fast-reference", "eager"])]
    assert names == ["eager", "fast-reference"]
    assert [e.name for e in bench_engines.select_engines(cpu, ["fast-reference", "eager"], in_pattern_order=True)] \
        == ["fast-reference", "eager"]
    with pytest.raises(ValueError, match=r"no engine matches \['nope'\]; engines here: \['eager'"):
        bench_engines.select_engines(bench_engines.all_engines(torch.device("cpu")), ["eager", "nope"])
    assert cli.main(["bench", "--quick", "--engines", "nope", "--output", str(tmp_path)]) == 2
    assert "umsnet-fast bench: error: no engine matches" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["bench", "--batch-sizes", "1,0"])
    if not torch.cuda.is_available():
        assert cli.main(["bench", "--device", "cuda", "--output", str(tmp_path)]) == 2
        assert "CUDA is not available" in capsys.readouterr().err


def test_cuda_engines_listed_for_a_gpu():
    names = [e.name for e in bench_engines.all_engines(torch.device("cuda"))]
    assert names[0] == "eager" and names[-3:] == ["inductor", "inductor-reduce-overhead", "inductor-max-autotune"]
    assert "fast-reference-graph" in names and "onnxruntime" not in names


def test_timing_helper_counts_and_orders():
    calls = []
    t = time_cpu(lambda: calls.append(1), Budget(warmup=2, min_iters=7, max_iters=7, target_s=10.0))
    assert t.n == 7 and len(calls) == 9
    fake = Timing(tuple(float(i) for i in range(1, 101)))
    assert fake.median_s == pytest.approx(50.5)
    assert fake.p90_s == pytest.approx(90.1) and fake.p99_s == pytest.approx(99.01)
    s = fake.summary_ms()
    assert s["iters"] == 100 and s["min_ms"] == 1e3 and s["median_ms"] == pytest.approx(50500)


def test_results_stem():
    import datetime as dt
    when = dt.datetime(2026, 11, 27, 6, 1, 2)
    assert report.results_stem({"device": "cuda", "name": "NVIDIA H100 80GB HBM3"}, when, "1a2b3c4+dirty") == \
        "nvidia-h100-80gb-hbm3-20261127-060102-1a2b3c4-dirty"
    assert report.results_stem({"device": "cpu", "name": "AMD EPYC 9B14"}, when, "unknown") == \
        "cpu-amd-epyc-9b14-20261127-060102-unknown"


def test_device_check_step_table_fits_in_six_minutes():
    """bench/device_check_steps.txt: the steps that always run, with their kill margins, fit in 360 s;
    the background build fits beside the steps it overlaps; every step has its function in the script."""
    settings, steps = device_check.read_steps()
    assert settings["total"] <= 360
    always = [s for s in steps if s.kind in ("fg", "rest")]
    assert sum(s.budget_s + settings["kill_after"] for s in always) <= settings["total"]
    assert device_check.check_steps(settings, steps) == []
    names = [s.name for s in steps]
    assert names[:3] == ["env", "install", "build"] and names[-3:] == ["tests", "bench-autotune", "summary"]
    assert names.index("smoke-triton") < names.index("bench-latency") < names.index("bench-throughput")
    script = (ROOT / "bench" / "device_check.sh").read_text()
    for name in names:
        assert f"step_{name.replace('-', '_')}() {{" in script, name
    # one smoke process per autotuning config index, up to the largest config list of any kernel
    from umsnet_fast.kernels import _common, linear_layernorm, lsr_block, mlp_residual  # noqa: F401
    assert f"TRITON_CONFIGS=${{TRITON_CONFIGS:-{max(_common.GPU_CONFIG_COUNTS)}}}" in script


def test_device_check_step_table_checker_can_fail():
    settings = {"total": 100, "kill_after": 3}
    Step = device_check.Step
    ok = [Step("a", 35, "fg"), Step("b", 48, "bg", "d"), Step("c", 30, "fg"), Step("d", 21, "fg"),
          Step("t", 0, "rest")]
    assert device_check.check_steps(settings, ok) == []
    too_long = ok[:2] + [Step("c", 33, "fg")] + ok[3:]
    assert device_check.check_steps(settings, too_long)[0].startswith("the steps that always run take 101 s")
    outlasting = ok[:1] + [Step("b", 49, "bg", "d")] + ok[2:3] + [Step("d", 15, "fg"), ok[4]]
    assert "background step b (49 s) can outlast" in device_check.check_steps(settings, outlasting)[0]
    assert device_check.check_steps(settings, ok[:4])[-1] == "exactly one step takes the time left (kind rest)"


def test_device_check_counts_tests_of_a_killed_run(tmp_path):
    log = tmp_path / "tests.log"
    log.write_text("[gw1] [ 99%] SKIPPED tests/test_a.py::t[(2, 5)-x] \n"
                   "[gw0] [100%] PASSED tests/test_a.py::t[(2, 6)]\n"
                   "tests/test_b.py::u[a b] FAILED [ 50%]\ntests/test_b.py::v PASSED\n"
                   "[gw0] [ 3%] PASSED tests/test_b.py::v\n"
                   "tests/test_c.py::w ")  # cut off mid-line
    assert device_check.count_tests(log) == {"passed": 2, "skipped": 1, "failed": 1}


@pytest.mark.slow
def test_device_check_dry_run(tmp_path):
    """The rehearsal: every step of the GPU check on this CPU, tiny workloads, the time limits x 3."""
    pytest.importorskip("triton")
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable, SKIP_INSTALL="1")
    proc = subprocess.run(["bash", str(ROOT / "bench" / "device_check.sh"), "--dry-run"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert len(files) <= 8 and all(f.count("/") <= 1 for f in files), files  # what the device tool returns
    assert {"check.json", "setup.log", "gpu.log", "tests.log", "summary.txt"} <= set(files), files
    check = json.loads((tmp_path / "check.json").read_text())
    settings, steps = device_check.read_steps()
    run_order = [s.name for s in steps if s.kind != "bg"]  # a background step is recorded when joined
    i = run_order.index("build-wait") + 1
    assert [s["name"] for s in check["steps"]] == run_order[:i] + ["build"] + run_order[i:]
    assert all(s["status"] == "ok" for s in check["steps"]), check["steps"]
    assert check["dry_run"] is True and check["total_s"] == 3 * settings["total"]  # LIMIT_SCALE 3
    assert check["elapsed_s"] <= check["total_s"] + 30
    smoke = check["smoke"]
    triton = [r for r in smoke if r["backend"] == "triton"]
    assert {r["dtype"] for r in triton} == {"fp32", "bf16"} and all(r["status"] == "ok" for r in triton), triton
    assert any(r["what"].startswith("compile") for r in triton) and any(r["case"] == "odd" for r in triton)
    assert all(r["rel_err"] < (1e-5 if r["dtype"] == "fp32" else 3e-2) for r in triton)
    cuda = [r for r in smoke if r["backend"] == "cuda"]
    assert len(cuda) == 3 and all(r["status"] == "unavailable" and "CUDA" in r["error"] for r in cuda)
    stream = [r for r in smoke if r["case"] == "stream-pool"]  # the StreamPool smoke, both backends
    assert {(r["backend"], r["status"]) for r in stream} == {("triton", "ok"), ("cuda", "unavailable")}, stream
    assert check["tests"] and check["tests"].get("skipped", 0) > 50 and "failed" not in check["tests"]
    for plan in ("latency", "throughput", "autotune"):
        (doc,) = [json.loads(p.read_text()) for p in (tmp_path / f"bench-{plan}").glob("*.json")]
        assert doc["complete"] and all(r["status"] == "ok" for r in doc["results"]), doc["results"]
    summary = (tmp_path / "summary.txt").read_text()
    assert "smoke: 4 of 7 checks ok" in summary and "GPU tests: " in summary
    table_head = "engine                     dtype batch       median  x eager"
    assert table_head in summary and table_head in proc.stdout
    # the table comes last: its rows end the output (the device tool's reply carries the tail)
    assert proc.stdout.rstrip().splitlines()[-1].split()[0] in ("eager", "fast-cpu", "fast-reference")


def _row(engine, batch, ms, dtype="fp32"):
    return {"engine": engine, "batch": batch, "dtype": dtype, "status": "ok", "median_ms": ms,
            "throughput_per_s": batch * 1e3 / ms}


def test_targets_judge_the_measured_ratios():
    workload = {"variant": "A", "preset": "hhar", "slices": 24}
    cpu = {"machine": {"device": "cpu"}, "config": {"dtypes": ["fp32"], **workload}, "results": [
        _row("eager", 1, 10), _row("fast-cpu", 1, 1.5), _row("fast-reference", 1, 0.1), _row("inductor", 1, 8),
        _row("onnxruntime", 1, 5), _row("eager", 256, 800), _row("fast-cpu", 256, 300),
        dict(_row("fast-cpu", 64, 1), status="failed")]}
    lines = report.targets(cpu)
    assert len(lines) == 3
    assert "fast-cpu 1.5 ms vs eager 10 ms = 6.67x (target 6x): [green]met" in lines[0]
    assert "vs onnxruntime 5 ms = 3.33x (target 2x): [green]met" in lines[1]
    assert "= 2.67x (target 3x): [red]not met" in lines[2]
    gpu = {"machine": {"device": "cuda"}, "config": {"dtypes": ["bf16"], **workload}, "results": [
        dict(_row("fast-triton-graph", 1, 0.06, "bf16"), kernels=40, kernel_ms=0.045),
        _row("inductor-reduce-overhead", 1, 0.3, "bf16"),
        _row("fast-cuda", 4096, 10, "bf16"), _row("inductor-max-autotune", 4096, 25, "bf16")]}
    lines = report.targets(gpu)
    assert lines[0].endswith("60.0 us (target 50 us or less): [red]not met[/]; 40 kernels, 45.0 us of kernel "
                             "time (75% of the latency)")
    assert "= 5.00x (target 5x): [green]met" in lines[1]
    assert "fast-cuda 409,600/s vs inductor-max-autotune 163,840/s = 2.50x" in lines[2]
    # Targets are set for one workload; another (a --quick run, K=2) is not judged.
    other = dict(cpu, config=dict(cpu["config"], slices=2))
    assert report.targets(other) == ["targets (DESIGN.md section 5) are set for UMSNet-A / HHAR / K=24; "
                                     "this run is UMSNet-A / HHAR / K=2: not judged"]


def test_quick_stream_bench_through_the_cli(tmp_path, capsys):
    import numpy as np

    from umsnet_fast.bench.stream import ROUNDS

    out_dir = tmp_path / "results"
    assert cli.main(["bench", "--stream", "--quick", "--threads", "1", "--no-plot", "--output", str(out_dir)]) == 0
    doc = _only_json(out_dir)
    assert next(out_dir.glob("*.json")).name.startswith("stream-cpu-")
    assert doc["complete"] is True and doc["config"]["stream"] is True and doc["config"]["batch_sizes"] == [1, 2]
    backends = [n for n, i in runner.available_backends().items()
                if i.available and "cpu" in i.auto_device_types and n != "reference"]
    rows = {(r["engine"], r["batch"]): r for r in doc["results"]}
    assert set(rows) == {(f"{kind}-{b}", batch) for b in backends for kind in ("fast", "stream") for batch in (1, 2)}
    for b in backends:
        for batch in (1, 2):
            window, stream = rows[f"fast-{b}", batch], rows[f"stream-{b}", batch]
            assert window["status"] == stream["status"] == "ok", (window, stream)
            assert stream["max_abs_diff_vs_window"] < 1e-4  # the stream's first output is model(window)
            # the median of the ratios of the alternating rounds, each timed for a third of the cell's budget
            rounds = stream["vs_window_rounds"]
            assert len(rounds) == ROUNDS and all(r > 0 for r in rounds)
            assert stream["vs_window"] == pytest.approx(float(np.median(rounds)), abs=1e-3)
            min_iters = doc["config"]["latency_budget" if batch == 1 else "throughput_budget"]["min_iters"]
            assert window["iters"] >= ROUNDS * min_iters and stream["iters"] >= ROUNDS * min_iters
    printed = capsys.readouterr().out
    assert "per-hop latency of one stream" in printed
    assert "per-hop latency / window latency" in printed and "not judged" in printed  # K=2 is not the workload


def test_stream_targets_judge_the_measured_ratios():
    from umsnet_fast.bench.stream import stream_targets

    doc = {"config": {"variant": "A", "preset": "hhar", "slices": 24}, "results": [
        dict(_row("stream-cpu", 1, 0.4), vs_window=0.4), dict(_row("stream-cpu", 256, 100), vs_window=1.5),
        _row("fast-cpu", 1, 1.0)]}
    lines = stream_targets(doc)
    assert lines == ["stream-cpu fp32 per-hop latency / window latency = 0.40x (target <= 0.5x): [green]met[/]",
                     "stream-cpu fp32 pool of 256 hops/s / window throughput at batch 256 = 1.50x (target >= 2x): "
                     "[red]not met[/]"]
    assert report.targets(dict(doc, machine={"device": "cpu"}, config=dict(doc["config"], stream=True))) == lines


HAVE_OV = importlib.util.find_spec("openvino") is not None  # the `bench` extra


def test_openvino_and_fast_cpu_in_fp32_and_bf16(tmp_path):
    """OpenVINO on the shared ONNX export at both precision hints, our cpu backend in bf16, each cell
    with its error against the float64 reference; without openvino its cells are skipped with the reason."""
    engines = ("eager", "fast-cpu", "openvino") if "cpu" in _cpu_backends() else ("eager", "openvino")
    cfg = runner.BenchConfig(slices=2, batch_sizes=(1, 3), dtypes=("fp32", "bf16"), threads=1,
                             output=str(tmp_path), plot=False, engines=engines,
                             latency_budget=QUICK, throughput_budget=QUICK)
    doc, _ = runner.run(cfg)
    rows = {(r["engine"], r["dtype"], r["batch"]): r for r in doc["results"]}
    assert len(rows) == len(engines) * 4
    # the engines run one after the other: all cells of one engine at one dtype are adjacent
    order = [(r["engine"], r["dtype"]) for r in doc["results"]]
    assert order == [(e, d) for d in ("fp32", "bf16") for e in engines for _ in (1, 3)]
    for (engine, dtype, _batch), row in rows.items():
        if engine == "openvino" and not HAVE_OV:
            assert row["status"] == "skipped" and "openvino is not installed" in row["reason"]
            continue
        assert row["status"] == "ok", row
        # the same function as the float64 reference, within each precision's error
        assert row["max_abs_err_vs_fp64"] < (1e-3 if dtype == "fp32" else 0.25), row
    if HAVE_OV:
        assert "INFERENCE_PRECISION_HINT bf16" in doc["notes"]["openvino-bf16"]
        assert "INFERENCE_PRECISION_HINT f32" in doc["notes"]["openvino-f32"]
        assert doc["versions"]["openvino"]


def _cpu_backends():
    return [n for n, i in runner.available_backends().items() if i.available]
