"""`umsnet-fast bench --concurrency`: do Python threads run the fast model in parallel?

The C++ ops of the cpu backend release the GIL (csrc/cpu_bindings.cpp), so a thread-per-request server
computes one forward per thread at a time. This measures it: one fast model (cpu backend, one intra-op
thread), called from 1, 2, ... Python threads at once for a fixed time; the throughput of N threads
should be about N times that of one while there are free cores (the Python part of a call, input checks
and the weight check, still holds the GIL). It also checks that every thread's logits are bitwise equal to
a single-threaded call's, and how fast a pure-Python loop runs beside a thread running forwards (a
direct look at the GIL, whatever the load). Not a timed test: run it on a quiet machine and read the ratios.
"""
from __future__ import annotations

import threading
import time

import torch

__all__ = ["measure", "python_progress_beside", "run"]


def measure(model, xs: list[torch.Tensor], threads: int, seconds: float) -> tuple[float, list[torch.Tensor]]:
    """(windows per second, the last logits of each thread) of `threads` threads calling model(xs) at once."""
    start = threading.Barrier(threads + 1)
    counts, outputs = [0] * threads, [None] * threads
    stop = [0.0]

    def work(i: int) -> None:
        model(xs)  # warm-up
        start.wait()
        n = 0
        while time.perf_counter() < stop[0]:
            outputs[i] = model(xs)
            n += 1
        counts[i] = n

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    stop[0] = time.perf_counter() + 1e9  # set properly once everyone is ready
    start.wait()
    t0 = time.perf_counter()
    stop[0] = t0 + seconds
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t0
    return sum(counts) * xs[0].shape[0] / elapsed, outputs


def python_progress_beside(model, xs: list[torch.Tensor], seconds: float) -> float:
    """How fast a pure-Python loop runs while another thread calls model(xs), relative to alone.

    A direct look at the GIL, whatever the load: near 0 if the forward held it (the loop would wait for
    every call to end), near 1 on a free core if it does not (on a busy machine, the share of a core
    the loop still gets).
    """
    def spin(duration: float) -> int:
        n, end = 0, time.perf_counter() + duration
        while time.perf_counter() < end:
            n += 1
        return n

    alone = spin(seconds)
    running = threading.Event()
    done = threading.Event()

    def work() -> None:
        running.set()
        while not done.is_set():
            model(xs)

    worker = threading.Thread(target=work)
    worker.start()
    running.wait()
    beside = spin(seconds)
    done.set()
    worker.join()
    return beside / alone


def run(variant: str = "A", preset: str = "hhar", slices: int = 24, batch_sizes=(1, 16), max_threads: int = 2,
        seconds: float = 2.0, backend: str = "cpu") -> dict:
    """Throughput of 1..max_threads Python threads at each batch size, one intra-op thread each."""
    import umsnet_fast
    from umsnet_fast import presets
    from umsnet_fast.bench import report
    from umsnet_fast.testing import randomize_

    p = presets.get_preset(preset)
    model = randomize_(umsnet_fast.UMSNet(**p.model_kwargs(slices), variant=variant, backend=backend)).eval()
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # each call computes on one core: the threads are the parallelism
    try:
        rows = []
        for batch in batch_sizes:
            xs = p.example_inputs(batch, slices, generator=torch.Generator().manual_seed(0))
            expected = model(xs)
            base = None
            for n in range(1, max_threads + 1):
                rate, outs = measure(model, xs, n, seconds)
                base = base or rate
                rows.append({"batch": batch, "threads": n, "windows_per_s": rate, "speedup": rate / base,
                             "bitwise_equal": all(o is not None and torch.equal(o, expected) for o in outs)})
        progress = python_progress_beside(model, xs, seconds)  # at the largest batch: the longest C++ calls
    finally:
        torch.set_num_threads(previous)
    return {"model": f"UMSNet-{variant}", "preset": preset, "slices": slices, "backend": model.active_backend(),
            "intra_op_threads": 1, "seconds_per_cell": seconds, "machine": report.machine_info(torch.device("cpu"), 1),
            "rows": rows, "python_progress_beside_forward": {"batch": batch_sizes[-1], "ratio": progress}}


def print_report(doc: dict, console) -> None:
    from rich.table import Table

    m = doc["machine"]
    table = Table(title=f"{doc['model']} / {doc['preset']} / K={doc['slices']}, backend {doc['backend']}, "
                        f"1 intra-op thread per Python thread ({m.get('cpu')}, {m.get('cpu_count')} cores, "
                        f"load {m.get('load_average')})")
    for col in ("batch", "Python threads", "windows/s", "vs 1 thread", "bitwise equal"):
        table.add_column(col, justify="right")
    for r in doc["rows"]:
        table.add_row(str(r["batch"]), str(r["threads"]), f"{r['windows_per_s']:.1f}", f"{r['speedup']:.2f}x",
                      "yes" if r["bitwise_equal"] else "[red]NO[/]")
    console.print(table)
    p = doc["python_progress_beside_forward"]
    console.print(f"a pure-Python loop beside a thread running batch-{p['batch']} forwards ran at {p['ratio']:.2f} of "
                  "its speed alone (near 0 would mean the forward holds the GIL)")
