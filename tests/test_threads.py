"""Python threads calling one fast model at once (the cpu backend's C++ ops release the GIL): every
result bitwise equal to the same call made alone. Throughput: `umsnet-fast bench --concurrency`."""
from __future__ import annotations

import threading

import pytest
import torch

import umsnet_fast
from umsnet_fast import presets
from umsnet_fast.backends import available_backends
from umsnet_fast.testing import randomize_

K = 4
BACKENDS = [b for b in ("cpu", "reference") if available_backends()[b].available]


def _run_threads(fn, n: int) -> list:
    results, errors = [None] * n, []
    start = threading.Barrier(n)

    def work(i):
        try:
            start.wait()
            results[i] = fn(i)
        except BaseException as e:  # noqa: BLE001 - reported by the test below
            errors.append(e)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors, errors
    return results


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_calls_are_bitwise_equal_to_sequential_ones(backend):
    model = randomize_(umsnet_fast.UMSNet(**presets.HHAR.model_kwargs(K), backend=backend), seed=2).eval()
    inputs = [presets.HHAR.example_inputs(b, K, generator=torch.Generator().manual_seed(b)) for b in (1, 3, 2, 5)]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = [model(xs) for xs in inputs]
        # the first calls of all threads race on packing the weights too (model._weights_for's lock)
        model.refresh()
        got = _run_threads(lambda i: [model(inputs[(i + j) % 4]) for j in range(6)], 4)
    finally:
        torch.set_num_threads(threads)
    for i, outs in enumerate(got):
        for j, out in enumerate(outs):
            assert torch.equal(out, alone[(i + j) % 4]), (i, j)


@pytest.mark.skipif("cpu" not in BACKENDS, reason="the cpu backend's extension is not built")
def test_concurrent_op_calls():
    from umsnet_fast.backends import cpu

    x = torch.randn(4, 30, 48)
    w, b = torch.randn(96, 48), torch.randn(96)
    alone = cpu.linear(x, w, b)
    for out in _run_threads(lambda i: cpu.linear(x, w, b), 3):
        assert torch.equal(out, alone)


def test_concurrency_bench_quick():
    from umsnet_fast.bench import concurrency

    doc = concurrency.run(slices=2, batch_sizes=(1,), max_threads=2, seconds=0.05,
                          backend="cpu" if "cpu" in BACKENDS else "reference")
    assert [(r["batch"], r["threads"]) for r in doc["rows"]] == [(1, 1), (1, 2)]
    assert all(r["bitwise_equal"] and r["windows_per_s"] > 0 for r in doc["rows"])
    assert doc["rows"][0]["speedup"] == 1.0
    assert doc["python_progress_beside_forward"]["ratio"] > 0
