"""kernels/_common.py's autotuner: bucketed row-count keys (one tuning per power of 2, not per batch
size), no timing while a CUDA graph is being captured, the UMSNET_FAST_AUTOTUNE switch. Runs a tiny
kernel through Triton's interpreter on CPU (or on the GPU when there is one); timings are faked."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from umsnet_fast.kernels import _common  # noqa: E402

DEVICE = _common.runnable_device() or "cpu"
RUNS_ON_GPU = True  # on a GPU the same tests launch on CUDA (conftest.py: --gpu-suite keeps them)
pytestmark = pytest.mark.skipif(_common.runnable_device() is None, reason="needs a GPU or TRITON_INTERPRET=1")

CONFIGS = [triton.Config(dict(BLOCK_M=b), num_warps=w) for b, w in ((16, 4), (32, 4), (64, 8))]
FAKE_MS = {16: 3.0, 32: 1.0, 64: 2.0}  # BLOCK_M=32 "wins"


@triton.jit
def _double_kernel(x_ptr, out_ptr, M, C, BLOCK_M: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    for c in range(C):
        v = tl.load(x_ptr + rows * C + c, mask=rows < M)
        tl.store(out_ptr + rows * C + c, 2 * v, mask=rows < M)


@pytest.fixture
def tuner(monkeypatch):
    monkeypatch.delenv(_common.AUTOTUNE_ENV, raising=False)
    tuned = _common.autotune(configs=CONFIGS, key=["M", "C"])(_double_kernel)
    timed = []

    def fake_bench(fn):  # runs the candidate once (it must work), reports a fixed time per config
        fn()
        timed.append(tuned._current)
        return FAKE_MS[tuned._current]

    orig_launch = tuned.fn

    class Spy:  # records which BLOCK_M each launch used
        arg_names = orig_launch.arg_names
        __name__ = "spy"

        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                tuned._current = kwargs["BLOCK_M"]
                tuned.launched.append(kwargs["BLOCK_M"])
                return orig_launch[grid](*args, **kwargs)
            return launch

    tuned.fn, tuned.launched, tuned.timed = Spy(), [], timed
    monkeypatch.setattr(_common.Autotuned, "bench", staticmethod(fake_bench))
    return tuned


def launch(tuned, rows: int, c: int = 3):
    x = torch.randn(rows, c, device=DEVICE)
    out = torch.full_like(x, float("nan"))
    tuned[lambda meta: (triton.cdiv(rows, meta["BLOCK_M"]),)](x, out, rows, c)
    torch.testing.assert_close(out, 2 * x)  # every config computes the same thing, fully written


def test_row_bucket_is_the_next_power_of_two():
    assert [_common.row_bucket(m) for m in (0, 1, 2, 3, 600, 1024, 1025, 4096 * 600)] == \
        [1, 1, 2, 4, 1024, 1024, 2048, 4194304]


def test_tunes_once_per_bucket_and_picks_the_fastest(tuner):
    launch(tuner, 600)
    assert sorted(tuner.timed) == [16, 32, 64] and tuner.launched[-1] == 32
    assert tuner.key({"M": 600, "C": 3}) == tuner.key({"M": 1000, "C": 3}) != tuner.key({"M": 1025, "C": 3})
    launch(tuner, 1000)  # same bucket (1024): no new timing
    launch(tuner, 513)
    assert len(tuner.timed) == 3 and tuner.launched[-2:] == [32, 32]
    launch(tuner, 1025)  # next bucket: tuned again
    assert len(tuner.timed) == 6
    launch(tuner, 600, c=4)  # another width is another key
    assert len(tuner.timed) == 9 and len(tuner.cache) == 3


def test_no_timing_while_capturing(tuner, monkeypatch):
    monkeypatch.setattr(_common, "capturing", lambda: True)
    launch(tuner, 600)
    assert tuner.timed == [] and tuner.launched == [16] and tuner.cache == {}  # first candidate, not kept
    monkeypatch.setattr(_common, "capturing", lambda: False)
    launch(tuner, 600)  # the first call outside a capture tunes
    assert sorted(tuner.timed) == [16, 32, 64] and tuner.launched[-1] == 32
    monkeypatch.setattr(_common, "capturing", lambda: True)
    launch(tuner, 700)  # tuned keys are used inside a capture as outside
    assert tuner.launched[-1] == 32 and len(tuner.timed) == 3


def test_switch_forces_a_config_without_timing(tuner, monkeypatch):
    monkeypatch.setenv(_common.AUTOTUNE_ENV, "0")
    launch(tuner, 600)
    monkeypatch.setenv(_common.AUTOTUNE_ENV, "config:4")  # 4 mod 3 candidates = the second
    launch(tuner, 600)
    assert tuner.launched == [16, 32] and tuner.timed == [] and tuner.cache == {}
    monkeypatch.setenv(_common.AUTOTUNE_ENV, "sometimes")
    with pytest.raises(ValueError, match="UMSNET_FAST_AUTOTUNE='sometimes': expected 1"):
        launch(tuner, 600)


def test_pruning_and_a_failing_config(tuner, monkeypatch):
    tuner._prune = lambda configs, named, **kw: [c for c in configs if c.kwargs["BLOCK_M"] <= named["M"]]
    launch(tuner, 20)  # only BLOCK_M=16 fits in 20 rows: nothing to time
    assert tuner.timed == [] and tuner.launched == [16]

    def bench(fn):
        fn()
        if tuner._current == 32:
            raise _common._tuning_errors()[0](1, 2, "shared memory")
        return FAKE_MS[tuner._current]
    monkeypatch.setattr(_common.Autotuned, "bench", staticmethod(bench))
    launch(tuner, 600)  # the failing (fastest) config loses
    assert tuner.launched[-1] == 64


def test_bad_key_is_refused():
    with pytest.raises(ValueError, match=r"must name arguments of the kernel \(missing \['N'\]\)"):
        _common.autotune(configs=CONFIGS, key=["N"], rows=("N",))(_double_kernel)


def test_the_kernels_use_it():
    """Every autotuned kernel of kernels/ goes through Autotuned (bucketed, capture-safe)."""
    from umsnet_fast.kernels import linear_layernorm, lsr_block, mlp_residual
    for k in (linear_layernorm._tap_linear_kernel, lsr_block._lsr_block_kernel, mlp_residual._mlp_residual_kernel):
        assert isinstance(k, _common.Autotuned) and "M" in k.rows
