"""The Triton kernels' own cases against their *_ref through umsnet_fast.testing: dwconv_layernorm
(a piece of the split LSR block), the LSR block's fused and split modes, custom-op registration, bad
input, autotuning and compilation for real GPUs. Every op the triton backend runs is also checked,
with every other implementation, in tests/ops/test_<op>.py.

Without a GPU they run on CPU tensors through Triton's interpreter (tests/conftest.py sets
TRITON_INTERPRET=1 before triton is imported); on a GPU the same tests run on CUDA, plus the
`@pytest.mark.cuda` ones at UMSNet's real shapes. Weights come from randomized reference modules.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("triton")

from umsnet_fast.kernels import _common, downsample, layer_norm, linear_layernorm, lsr_block, mlp_residual  # noqa: E402
from umsnet_fast.kernels import dwconv_layernorm as dwln  # noqa: E402
from umsnet_fast.reference import LSRBlock, Stem  # noqa: E402
from umsnet_fast.testing import check_op, randomize_  # noqa: E402
from umsnet_fast.weights import BlockWeights  # noqa: E402

from op_cases import LAYOUTS, make_input, with_layout  # noqa: E402

DEVICES = [
    pytest.param("cpu", id="interpreter", marks=pytest.mark.skipif(
        not _common.INTERPRET, reason="CPU tensors need TRITON_INTERPRET=1 set before triton is imported "
                                      "(tests/conftest.py sets it only when there is no CUDA GPU)")),
    pytest.param("cuda", id="cuda", marks=pytest.mark.cuda),
]
DTYPES = [pytest.param(d, id=str(d).removeprefix("torch.")) for d in (torch.float32, torch.float16, torch.bfloat16)]


def block_weights(c: int, k: int = 3, seed: int = 0) -> BlockWeights:
    return BlockWeights.from_module(randomize_(LSRBlock(c, k).double(), seed)).map(torch.Tensor.detach)


def cases(shapes):
    """(shape, layout) pairs: the layouts cycle over the shapes, so each kernel sees all of them."""
    return [pytest.param(s, LAYOUTS[i % len(LAYOUTS)], id=f"{s}-{LAYOUTS[i % len(LAYOUTS)]}")
            for i, s in enumerate(shapes)]


# (batch, length, C, k): widths not powers of 2, length 1 and odd, k = 1 and 5.
DW_SHAPES = [(2, 9, 24, 3), (1, 1, 10, 3), (3, 8, 16, 5), (2, 5, 33, 1)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,layout", cases(DW_SHAPES))
@pytest.mark.parametrize("gelu", [False, True], ids=["ln", "ln_gelu"])
def test_dwconv_layernorm(device, dtype, shape, layout, gelu):
    n, length, c, k = shape
    w = block_weights(c, k)
    check_op(with_layout(dwln.dwconv_layernorm_op, layout), dwln.dwconv_layernorm_ref,
             (make_input((n, length, c)), w.dw_weight, w.ln_weight, w.ln_bias), dict(eps=w.eps, gelu=gelu),
             dtype=dtype, device=device)


# (batch, length, C, k)
LSR_SHAPES = [(2, 9, 24, 3), (3, 1, 10, 3), (2, 25, 16, 3), (5, 3, 40, 5)]


# "auto" (what the backend runs) is in tests/ops/test_lsr_block.py, with every other implementation
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,layout", cases(LSR_SHAPES))
@pytest.mark.parametrize("mode", ["fused", "split"])
def test_lsr_block_modes(device, dtype, shape, layout, mode):
    n, length, c, k = shape
    w = block_weights(c, k, seed=3)
    args = (make_input((n, length, c), 3), w.dw_weight, w.ln_weight, w.ln_bias, w.w1, w.b1, w.w2, w.b2, w.gamma,
            w.eps)
    check_op(with_layout(lambda *a: lsr_block.lsr_block_op(*a, mode=mode), layout), lsr_block.lsr_block_ref,
             args, dtype=dtype, device=device)


def _test_device() -> str:
    return _common.runnable_device() or pytest.skip("needs a CUDA GPU, or TRITON_INTERPRET=1 set before "
                                                    "triton is imported")


def test_empty_batch():
    device = _test_device()
    w = block_weights(12)
    x = torch.randn(0, 5, 12, device=device)
    wt = w.to(device, torch.float32)
    out = lsr_block.lsr_block_op(x, wt.dw_weight, wt.ln_weight, wt.ln_bias, wt.w1, wt.b1, wt.w2, wt.b2, wt.gamma)
    assert out.shape == (0, 5, 12)
    assert downsample.downsample_op(x, torch.randn(7, 24, device=device), torch.randn(7, device=device), 2).shape \
        == (0, 2, 7)


def test_bad_input_names_expected_and_given():
    device = _test_device()
    w = block_weights(12).to(device, torch.float32)
    x = torch.randn(2, 5, 12, device=device)
    blk = (w.dw_weight, w.ln_weight, w.ln_bias, w.w1, w.b1, w.w2, w.b2, w.gamma)
    with pytest.raises(ValueError, match=r"x: expected a 3-D tensor, got shape \(2, 12\)"):
        lsr_block.lsr_block(x[:, 0], *blk)
    with pytest.raises(ValueError, match=r"w1: expected shape \(48, 12\), got \(48, 11\)"):
        lsr_block.lsr_block(x, *blk[:3], w.w1[:, :11], *blk[4:])
    with pytest.raises(TypeError, match=r"w2: dtype torch.float16, expected torch.float32"):
        lsr_block.lsr_block(x, *blk[:5], w.w2.half(), *blk[6:])
    with pytest.raises(TypeError, match="dtype torch.int64 is not supported"):
        dwln.dwconv_layernorm(x.long(), *blk[:3])
    with pytest.raises(TypeError, match="dtype torch.float64 is not supported"):
        layer_norm.layer_norm(x.double(), w.ln_weight.double(), w.ln_bias.double(), 1e-6)
    with pytest.raises(ValueError, match=r"dw_weight: expected shape \(12, k\) with k odd"):
        dwln.dwconv_layernorm(x, torch.randn(12, 2, device=device), *blk[1:3])
    with pytest.raises(ValueError, match=r"weight: expected shape \(7, 24\), got \(7, 12\)"):
        downsample.downsample(x, torch.randn(7, 12, device=device), torch.randn(7, device=device), 2)
    with pytest.raises(ValueError, match="mode: expected one of"):
        lsr_block.lsr_block(x, *blk, mode="fastest")
    with pytest.raises(ValueError, match=r"C <= 512, got C = 600"):
        mlp_residual.mlp_residual(torch.randn(2, 600, device=device), torch.randn(8, 600, device=device),
                                  torch.randn(8, device=device), torch.randn(600, 8, device=device),
                                  torch.randn(600, device=device), None, torch.randn(2, 600, device=device))


def test_precision_opt_in(monkeypatch):
    """fp32 is true fp32 unless the caller or UMSNET_FAST_ALLOW_TF32=1 opts into TF32."""
    monkeypatch.delenv(_common.TF32_ENV, raising=False)
    assert _common.dot_precision(torch.float32, None) == "ieee"
    assert _common.dot_precision(torch.float32, True) == "tf32"
    monkeypatch.setenv(_common.TF32_ENV, "1")
    assert _common.dot_precision(torch.float32, None) == "tf32"
    assert _common.dot_precision(torch.float32, False) == "ieee"


def test_interpreter_runs_one_config_and_the_fused_block():
    if not _common.INTERPRET:
        pytest.skip("checks the interpreter set-up (TRITON_INTERPRET=1)")
    for configs in (mlp_residual.MLP_CONFIGS, lsr_block.LSR_CONFIGS, linear_layernorm.TAP_LINEAR_CONFIGS):
        assert len(configs) == 1
    x = torch.randn(2, 5, 12)
    assert lsr_block.chosen_mode(x, (torch.randn(12, 3),) + (None,) * 8, None) == "fused"


@pytest.mark.parametrize("op", ["dwconv_layernorm", "mlp_residual", "lsr_block", "downsample", "layer_norm"])
def test_custom_op_registration(op):
    """torch.library.opcheck: schema, fake (meta) implementation and dispatch of each custom op."""
    device = _test_device()
    w = block_weights(12).to(device, torch.float32)
    x = torch.randn(2, 5, 12, device=device)
    cases = {
        "dwconv_layernorm": (dwln.dwconv_layernorm_op, (x, w.dw_weight, w.ln_weight, w.ln_bias, 1e-6, True)),
        "mlp_residual": (mlp_residual.mlp_residual_op, (x, w.w1, w.b1, w.w2, w.b2, None, x)),
        "lsr_block": (lsr_block.lsr_block_op, (x, w.dw_weight, w.ln_weight, w.ln_bias, w.w1, w.b1, w.w2, w.b2,
                                               w.gamma, 1e-6, "fused")),
        "downsample": (downsample.downsample_op, (x, torch.randn(7, 24, device=device),
                                                  torch.randn(7, device=device), 2)),
        "layer_norm": (layer_norm.layer_norm_op, (x, w.ln_weight, w.ln_bias, 1e-6)),
    }
    fn, args = cases[op]
    torch.library.opcheck(fn, args, test_utils=("test_schema", "test_faketensor"))


# UMSNet-A's real shapes (HHAR, K = 24, batch 4): too slow for the interpreter, run on GPUs.
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(96, 25, 16), (96, 12, 32), (96, 6, 64), (96, 3, 128), (4, 24, 64),
                                   (4, 24, 128)], ids=str)
@pytest.mark.parametrize("mode", ["fused", "split", "auto"])
def test_lsr_block_real_shapes_cuda(dtype, shape, mode):
    n, length, c = shape
    w = block_weights(c, seed=8)
    args = (make_input((n, length, c), 8), w.dw_weight, w.ln_weight, w.ln_bias, w.w1, w.b1, w.w2, w.b2, w.gamma, w.eps)
    check_op(with_layout(lambda *a: lsr_block.lsr_block_op(*a, mode=mode), "transposed"), lsr_block.lsr_block_ref,
             args, dtype=dtype, device="cuda")


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_transformer_mlp_and_fusion_stem_cuda(dtype):
    # Transformer MLP: d = 256, mlp_dim 512, gamma None; fusion stem of MHEALTH: 8 * 128 -> 64.
    g = torch.Generator().manual_seed(9)
    h, res = (torch.randn(4, 25, 256, generator=g, dtype=torch.float64) for _ in range(2))
    w1, w2 = torch.randn(512, 256, dtype=torch.float64) / 16, torch.randn(256, 512, dtype=torch.float64) / 22.6
    b1, b2 = torch.randn(512, dtype=torch.float64) * 0.1, torch.randn(256, dtype=torch.float64) * 0.1
    check_op(mlp_residual.mlp_residual_op, mlp_residual.mlp_residual_ref, (h, w1, b1, w2, b2, None, res),
             dtype=dtype, device="cuda")
    stem = randomize_(Stem(1024, 64).double(), 9)
    x = make_input((4, 24, 1024), 9)
    check_op(linear_layernorm.linear_layernorm_op, linear_layernorm.linear_layernorm_ref,
             (x, stem.conv.weight[:, :, 0].detach(), stem.conv.bias.detach(), stem.norm.weight.detach(),
              stem.norm.bias.detach(), stem.norm.eps), dtype=dtype, device="cuda")


def test_autotune_pruning_keeps_tiles_within_budget():
    """On GPUs the MLP/LSR autotuners drop configs whose tiles exceed ~100 KB (fp32 at C = 256 would
    need up to 213 KB of shared memory); the smallest config always stays, even at C = MAX_C fp32."""
    import triton

    configs = [triton.Config(dict(BLOCK_M=m, BLOCK_H=h)) for m, h in ((16, 32), (64, 32), (32, 64), (128, 32))]
    prune = _common.prune_by_footprint()["early_config_prune"]
    kept = lambda c, dtype: [(k.kwargs["BLOCK_M"], k.kwargs["BLOCK_H"])  # noqa: E731
                             for k in prune(configs, {"C": c, "w1_ptr": torch.empty(0, dtype=dtype)})]
    assert kept(256, torch.float32) == [(16, 32)]
    assert kept(256, torch.bfloat16) == [(16, 32), (64, 32), (32, 64), (128, 32)]
    assert kept(128, torch.float32) == [(16, 32), (64, 32), (32, 64), (128, 32)]
    assert kept(512, torch.float32) == [(16, 32)]


def test_every_kernel_compiles_for_sm90():
    """The interpreter accepts what a GPU compiler may reject (tl.dot shapes, constexpr use): compile
    each kernel for sm_90 with triton.compile + ptxas, no GPU needed (kernels/aot_check.py)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    out = subprocess.run([sys.executable, "-m", "umsnet_fast.kernels.aot_check", "--arch", "90", "--dtype", "fp32",
                          "bf16"], env=env, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0 and out.stdout.rstrip().endswith("0 failed"), out.stdout[-3000:] + out.stderr[-3000:]
