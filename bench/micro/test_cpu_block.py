"""pytest-benchmark micro-benchmarks of the cpu backend's fused LSR block and GEMM (not part of the
test run: `pytest bench/micro --benchmark-only`). Each group times the fused kernel against the
PyTorch *_ref on the same inputs, on 2 threads, at the shapes one tile of the UMSNet-A/HHAR forward
sees (8 slices of 25 samples: stages of 25, 12, 6, 3 positions at widths 16, 32, 64, 128), plus the
whole batch-64 stage for throughput.
"""
from __future__ import annotations

import pytest
import torch

from umsnet_fast import _extensions
from umsnet_fast.ops import linear_ref, lsr_block_ref
from umsnet_fast.weights import BlockWeights

_EXT, _REASON = _extensions.load_extension("_cpu")
pytestmark = pytest.mark.skipif(_EXT is None, reason=f"cpu extension unavailable: {_REASON}")

STAGES = [(25, 16), (12, 32), (6, 64), (3, 128)]  # (positions per slice, width) of the sensor stages


@pytest.fixture(autouse=True)
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _block_args(c: int):
    g = torch.Generator().manual_seed(c)
    r = lambda *s, std=1.0: torch.randn(*s, generator=g) * std  # noqa: E731
    return (r(c, 3, std=0.5), 1 + 0.3 * r(c), 0.1 * r(c), r(4 * c, c, std=c ** -0.5), 0.1 * r(4 * c),
            r(c, 4 * c, std=(4 * c) ** -0.5), 0.1 * r(c), 0.5 + torch.rand(c, generator=g), 1e-6)


@pytest.mark.parametrize("impl", ["cpu", "ref"])
@pytest.mark.parametrize("slices", [8, 64 * 24], ids=["tile", "batch64"])
@pytest.mark.parametrize("length,c", STAGES, ids=[f"C{c}" for _, c in STAGES])
def test_lsr_block(benchmark, impl, slices, length, c):
    from umsnet_fast.backends import cpu as C
    args = _block_args(c)
    x = torch.randn(slices, length, c)
    benchmark.group = f"lsr_block {slices}x{length}x{c}"
    benchmark.extra_info["flop"] = 2 * 2 * slices * length * c * 4 * c
    if impl == "cpu":
        block = C.pack_block(BlockWeights(*args))  # packed once, as the model does
        benchmark(_EXT.lsr_block, x, block)
    else:
        with torch.no_grad():
            benchmark(lsr_block_ref, x, *args)


@pytest.mark.parametrize("impl", ["cpu", "torch"])
@pytest.mark.parametrize("m,k,n", [(24, 128, 512), (24, 512, 128), (100, 256, 768), (1536, 512, 128)])
def test_linear(benchmark, impl, m, k, n):
    from umsnet_fast.backends import cpu as C
    x, w, b = torch.randn(m, k), torch.randn(n, k) * k ** -0.5, torch.randn(n)
    benchmark.group = f"linear {m}x{k} -> {n}"
    benchmark.extra_info["flop"] = 2 * m * k * n
    if impl == "cpu":
        benchmark(_EXT.linear, x, C.pack_linear(w, b))
    else:
        benchmark(linear_ref, x, w, b)
