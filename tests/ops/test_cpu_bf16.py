"""The `cpu` backend's ops in bf16 (bf16 weights packed in VNNI pairs, fp32 accumulation), each against
its *_ref in bf16 and float64 (DESIGN.md section 3), under every instruction-set build this CPU runs:
avx512bf16 runs vdpbf16ps, avx512 / avx2 / generic the portable path (bf16 weights widened to fp32);
amx only where the CPU has it. Shapes: odd widths, L = 8 and odd L, k = 1, batch 1, non-contiguous."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from umsnet_fast import _extensions
from umsnet_fast import ops as R
from umsnet_fast.forward import REFERENCE_OPS, run_encoder_layer, run_lsr_module
from umsnet_fast.reference import LSRModule
from umsnet_fast.testing import check_op, randomize_
from umsnet_fast.weights import EncoderLayerWeights, LSRModuleWeights

_EXT, _REASON = _extensions.load_extension("_cpu")
ISAS = _EXT.supported_isas() if _EXT is not None else []
BF16 = torch.bfloat16

if _EXT is not None:
    from umsnet_fast.backends import cpu as C


@pytest.fixture(params=ISAS or ["none"])
def isa(request):
    """Each instruction-set build this CPU supports, then `auto` again."""
    if _EXT is None:
        pytest.skip(f"cpu extension unavailable: {_REASON}")
    _EXT.set_isa(request.param)
    yield request.param
    _EXT.set_isa("auto")


def _w(*shape, std=None):
    std = 1.0 / math.sqrt(shape[-1]) if std is None else std
    return torch.randn(*shape, dtype=torch.float64) * std


def _v(n, mean=0.0, std=0.1):
    return mean + std * torch.randn(n, dtype=torch.float64)


def _noncontig(x: torch.Tensor) -> torch.Tensor:
    big = torch.zeros(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype)
    big[..., ::2] = x
    return big[..., ::2]


def test_bf16_weights_are_packed_as_bf16():
    if _EXT is None:
        pytest.skip(f"cpu extension unavailable: {_REASON}")
    assert C.pack_linear(_w(70, 33).to(BF16), _v(70).to(BF16)).bf16
    assert not C.pack_linear(_w(70, 33).float(), _v(70).float()).bf16


@pytest.mark.parametrize("m,k,n,bias", [(1, 128, 6, True), (25, 33, 70, False), (257, 256, 768, True),
                                        (7, 1, 5, True), (3, 31, 16, True), (13, 65, 33, False)])
def test_linear(isa, m, k, n, bias):
    args = (_noncontig(torch.randn(m, k, dtype=torch.float64)), _w(n, k), _v(n) if bias else None)
    check_op(C.linear, R.linear_ref, args, dtype=BF16)


@pytest.mark.parametrize("gamma", [True, False])
def test_mlp_residual(isa, gamma):
    c, h = 40, 75
    args = (torch.randn(2, 9, c, dtype=torch.float64), _w(h, c), _v(h), _w(c, h), _v(c),
            0.5 + torch.rand(c, dtype=torch.float64) if gamma else None, torch.randn(2, 9, c, dtype=torch.float64))
    check_op(C.mlp_residual, R.mlp_residual_ref, args, dtype=BF16)


@pytest.mark.parametrize("batch,length,c", [(1, 25, 16), (3, 8, 37), (2, 1, 24), (2, 13, 128), (40, 5, 24)])
@pytest.mark.parametrize("contiguous", [True, False])
def test_lsr_block(isa, batch, length, c, contiguous):
    x = torch.randn(batch, length, c, dtype=torch.float64)
    x = x if contiguous else _noncontig(x)
    args = (x, _w(c, 3, std=0.5), _v(c, 1.0, 0.3), _v(c), _w(4 * c, c), _v(4 * c), _w(c, 4 * c), _v(c),
            0.5 + torch.rand(c, dtype=torch.float64), 1e-6)
    check_op(C.lsr_block, R.lsr_block_ref, args, dtype=BF16)


@pytest.mark.parametrize("c_in,c,length", [(3, 16, 25), (2, 20, 8), (1, 37, 9)])
def test_linear_layernorm(isa, c_in, c, length):
    args = (_noncontig(torch.randn(2, length, c_in, dtype=torch.float64)), _w(c, c_in), _v(c), _v(c, 1.0, 0.3),
            _v(c), 1e-6)
    check_op(C.linear_layernorm, R.linear_layernorm_ref, args, dtype=BF16)


@pytest.mark.parametrize("length,stride,c_in,c_out", [(25, 2, 16, 32), (8, 2, 37, 70), (9, 1, 64, 64)])
def test_downsample(isa, length, stride, c_in, c_out):
    args = (torch.randn(3, length, c_in, dtype=torch.float64), _w(c_out, stride * c_in), _v(c_out), stride)
    check_op(C.downsample, R.downsample_ref, args, dtype=BF16)


@pytest.mark.parametrize("shape", [(7, 37), (2, 25, 256), (1, 1, 5)])
def test_layer_norm(isa, shape):
    c = shape[-1]
    args = (torch.randn(*shape, dtype=torch.float64) * 3 + 1, _v(c, 1.0, 0.3), _v(c), 1e-6)
    check_op(C.layer_norm, R.layer_norm_ref, args, dtype=BF16)


@pytest.mark.parametrize("batch,tokens,d,heads", [(2, 25, 256, 8), (3, 17, 24, 3), (1, 1, 32, 2)])
def test_attention(isa, batch, tokens, d, heads):
    check_op(C.attention, R.attention_ref, (2 * torch.randn(batch, tokens, 3 * d, dtype=torch.float64), heads),
             dtype=BF16)


@pytest.mark.parametrize("length,kernel,dims", [(25, 2, (16, 32, 64, 128)), (11, 2, (12, 20, 36, 52)),
                                                (8, 1, (24, 24, 40))])
def test_lsr_module(isa, length, kernel, dims):
    module = randomize_(LSRModule(3, dims, [2] * len(dims), downsample_kernel=kernel)).eval()
    w = LSRModuleWeights.from_module(module).map(torch.Tensor.detach)
    check_op(lambda x, w: C.lsr_module(x, w.to(dtype=x.dtype)),
             lambda x, w: run_lsr_module(REFERENCE_OPS, x, w.to(dtype=x.dtype)),
             (torch.randn(3, length, 3, dtype=torch.float64), w), dtype=BF16)


@pytest.mark.parametrize("d,heads,mlp,tokens", [(256, 8, 512, 25), (36, 3, 50, 2)])
def test_encoder_layer(isa, d, heads, mlp, tokens):
    layer = nn.TransformerEncoderLayer(d, heads, mlp, 0.0, activation="gelu", layer_norm_eps=1e-6,
                                       batch_first=True, norm_first=True)
    w = EncoderLayerWeights.from_module(randomize_(layer).eval()).map(torch.Tensor.detach)
    check_op(lambda x, w: C.encoder_layer(x, w.to(dtype=x.dtype)),
             lambda x, w: run_encoder_layer(REFERENCE_OPS, x, w.to(dtype=x.dtype)),
             (torch.randn(2, tokens, d, dtype=torch.float64), w), dtype=BF16)


@pytest.mark.parametrize("n,k", [(70, 33), (16, 1), (32, 64)])
def test_vnni_layout(n, k):
    """make_linear's bf16 layout (csrc/cpu/kernels.h): panel p, pair kk, column j, t = W[32p + j, 2kk + t]
    rounded once to bf16, zero past n and k, k padded to the extension's K_ALIGN."""
    if _EXT is None:
        pytest.skip(f"cpu extension unavailable: {_REASON}")
    w = _w(n, k)
    packed = C.pack_linear(w.to(BF16), None).packed
    panel, align = _EXT.PANEL, _EXT.K_ALIGN
    panels, kp = -(-n // panel), -(-k // align) * align
    assert packed.dtype == BF16 and packed.shape == (panels, kp // 2, panel, 2)
    expected = torch.zeros(panels * panel, kp, dtype=BF16)
    expected[:n, :k] = w.to(BF16)
    expected = expected.view(panels, panel, kp // 2, 2).permute(0, 2, 1, 3)
    assert torch.equal(packed, expected)
    fp32 = C.pack_linear(w.float(), None).packed
    assert fp32.dtype == torch.float32 and fp32.shape == (panels, k, panel)
    assert torch.equal(fp32.transpose(1, 2).reshape(panels * panel, k)[:n], w.float())
