"""The `cpu` backend: the fused C++ engine of csrc/cpu (extension umsnet_fast._cpu), fp32 and bf16.

Weights are packed once per parameter change (the model caches `prepare`'s result on a fingerprint of
its parameters): LayerScale gamma folded into the block's second Linear and the attention scale
1/sqrt(head_dim) into the q rows of the projection here, in float64 (BatchNorm is already folded into
the downsample by umsnet_fast.weights); the extension's make_linear then packs each matrix into its
layout (csrc/cpu/kernels.h, the layout's only owner): fp32 panels for an fp32 model, bf16 VNNI pairs
for a bf16 one. The whole eval forward is then one C++ call. The fine ops (lsr_block, linear,
attention, ...) take the *_ref signatures, pack their weights on each call, and exist so that each
kernel is tested alone.

bf16: a bfloat16 model with bfloat16 inputs. Only the matrix products use bf16 operands (fp32
accumulation); LayerNorm, GELU, softmax, the depthwise conv, the residual stream and every other
activation stay fp32 inside the engine (vectors such as LayerNorm weights and biases are widened to
fp32 when packed), and the logits are rounded to bf16 at the end. The bf16 product runs on AMX tiles,
AVX512-BF16 vdpbf16ps, or, on CPUs with neither, as fp32 FMAs on the bf16 weights widened to fp32.

Environment: UMSNET_FAST_CPU_ISA=auto|amx|avx512bf16|avx512|avx2|generic picks the kernels'
instruction set (also `set_isa`; avx512 and below run bf16 models on the widening fallback);
threads follow torch.get_num_threads(). UMSNET_FAST_CPU_TILE_ROWS (default 24) sets the rows of a
sensor tile at the last stage, a tuning knob.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch

from .. import _extensions
from ..forward import OpSet
from ..weights import BlockWeights, EncoderLayerWeights, LSRModuleWeights, ModelWeights
from .base import Backend


@functools.cache
def _ext():
    ext, reason = _extensions.load_extension("_cpu")
    if ext is None:
        raise RuntimeError(f"backend 'cpu' is unavailable: {reason}")
    return ext


def _pack_dtype(t: torch.Tensor) -> torch.Tensor:
    # Vectors (norm weights, biases, depthwise taps, tokens) are fp32 for fp32 and bf16 models alike.
    return t.detach().to(torch.float32).contiguous()


def pack_linear(weight: torch.Tensor, bias: torch.Tensor | None, scale: torch.Tensor | None = None):
    """weight (n, k), bias (n,) or None, scale (n,) or None (multiplies output n: W and b) -> _cpu.Linear.

    Packed in bf16 VNNI pairs when the weight is bfloat16, else in fp32 panels (the layouts: csrc/cpu/kernels.h).
    Scaling happens in float64, before the one rounding to the packed dtype.
    """
    n, k = weight.shape
    w = weight.detach().double()
    b = bias.detach().double() if bias is not None else w.new_zeros(n)
    if scale is not None:
        s = scale.detach().double()
        w, b = w * s[:, None], b * s
    return _ext().make_linear(w, b, weight.dtype == torch.bfloat16)


def pack_block(b: BlockWeights):
    """An LSR block: depthwise taps as (k, C), gamma folded into the second Linear."""
    return _ext().make_block(_pack_dtype(b.dw_weight.t()), _pack_dtype(b.ln_weight), _pack_dtype(b.ln_bias),
                             float(b.eps), pack_linear(b.w1, b.b1), pack_linear(b.w2, b.b2, b.gamma))


def pack_module(m: LSRModuleWeights):
    return _ext().make_module(pack_linear(m.stem_weight, m.stem_bias), _pack_dtype(m.stem_ln_weight),
                              _pack_dtype(m.stem_ln_bias), float(m.stem_eps),
                              [[pack_block(b) for b in stage] for stage in m.stages],
                              [pack_linear(d.weight, d.bias) for d in m.downsamples],
                              [int(d.stride) for d in m.downsamples])


def pack_layer(w: EncoderLayerWeights):
    """An encoder layer; 1/sqrt(head_dim) folded into the q rows of the packed projection."""
    d = w.out_proj_weight.shape[0]
    q_scale = torch.ones(3 * d, dtype=torch.float64)
    q_scale[:d] = 1.0 / math.sqrt(d // w.num_heads)
    return _ext().make_layer(_pack_dtype(w.norm1_weight), _pack_dtype(w.norm1_bias),
                             pack_linear(w.in_proj_weight, w.in_proj_bias, q_scale),
                             pack_linear(w.out_proj_weight, w.out_proj_bias), _pack_dtype(w.norm2_weight),
                             _pack_dtype(w.norm2_bias), pack_linear(w.w1, w.b1), pack_linear(w.w2, w.b2),
                             float(w.eps), int(w.num_heads), 1.0)


# ---- ops with the *_ref signatures (umsnet_fast.ops) ------------------------------------------------

def linear_layernorm(x, weight, bias, ln_weight, ln_bias, eps=1e-6):
    """x (batch, length, C_in) -> LayerNorm(x W^T + b): (batch, length, C)."""
    return _ext().layer_norm(_ext().linear(x, pack_linear(weight, bias)), _pack_dtype(ln_weight),
                             _pack_dtype(ln_bias), eps)


def lsr_block(x, dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma, eps=1e-6):
    """x (batch, length, C) -> (batch, length, C), one fused pass per tile of positions."""
    return _ext().lsr_block(x, pack_block(BlockWeights(dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma, eps)))


def downsample(x, weight, bias, stride):
    """x (batch, length, C_in) -> (batch, length // stride, C_out); an odd tail is dropped."""
    n, length, c = x.shape
    l_out = length // stride
    return _ext().linear(x[:, : l_out * stride].reshape(n, l_out, stride * c), pack_linear(weight, bias))


def layer_norm(x, weight, bias, eps):
    """LayerNorm over the last axis. x (..., C)."""
    return _ext().layer_norm(x, _pack_dtype(weight), _pack_dtype(bias), eps)


def linear(x, weight, bias):
    """x (..., C_in) -> (..., C_out)."""
    return _ext().linear(x, pack_linear(weight, bias))


def attention(qkv, num_heads):
    """qkv (batch, tokens, 3d) -> (batch, tokens, d)."""
    d = qkv.shape[-1] // 3
    return _ext().attention(qkv, num_heads, 1.0 / math.sqrt(d // num_heads))


def mlp_residual(h, w1, b1, w2, b2, gamma, residual):
    """residual + gamma * (GELU(h W1^T + b1) W2^T + b2); h, residual (..., C)."""
    hidden = _ext().linear(h, pack_linear(w1, b1), _ext().EPILOGUE_GELU)
    return _ext().linear(hidden, pack_linear(w2, b2, gamma), _ext().EPILOGUE_RESIDUAL, residual)


def lsr_module(x, w: LSRModuleWeights):
    """x (batch, length, C_in) -> (batch, length', dims[-1])."""
    return _ext().lsr_module(x, pack_module(w))


def encoder_layer(x, w: EncoderLayerWeights):
    """x (batch, tokens, d) -> (batch, tokens, d)."""
    return _ext().encoder_layer(x, pack_layer(w))


def forward(w: CpuWeights, xs, num_slices: int):
    """xs: per-sensor (batch, C_i, K * L_i), any strides -> logits (batch, num_classes); one C++ call."""
    return _ext().forward(w.engine, list(xs))


def slice_features(w: CpuWeights, slices):
    """Stage 1 of the engine on slices already cut (streaming): per sensor (n, L_i, C_i) -> (n, F)."""
    return _ext().slice_features(w.engine, list(slices))


def window_head(w: CpuWeights, features):
    """Stages 2 and 3 of the engine: features (batch, K, F) -> logits (batch, num_classes)."""
    return _ext().window_head(w.engine, features)


CPU_OPS = OpSet("cpu", linear_layernorm=linear_layernorm, lsr_block=lsr_block, downsample=downsample,
                layer_norm=layer_norm, linear=linear, attention=attention, mlp_residual=mlp_residual,
                lsr_module=lsr_module, encoder_layer=encoder_layer, slice_features=slice_features,
                window_head=window_head, forward=forward)


@dataclass
class CpuWeights:
    """What `prepare` returns: the plain weights (fp32 or bf16) and the packed engine built from them."""
    weights: ModelWeights
    engine: Any  # _cpu.Model


def pack_model(w: ModelWeights) -> CpuWeights:
    engine = _ext().make_model([pack_module(m) for m in w.sensors], pack_module(w.fusion),
                               pack_linear(w.token_weight, w.token_bias), _pack_dtype(w.cls_token),
                               _pack_dtype(w.pos_embed), [pack_layer(lw) for lw in w.layers],
                               _pack_dtype(w.norm_weight), _pack_dtype(w.norm_bias), float(w.norm_eps),
                               pack_linear(w.head_weight, w.head_bias), w.pos_embed.shape[0] - 1)
    return CpuWeights(w, engine)


def set_isa(name: str) -> None:
    """Choose the kernels: 'auto' (best this CPU runs), 'amx', 'avx512bf16', 'avx512', 'avx2' or 'generic'
    (portable). The fp32 path of amx and avx512bf16 is avx512's; they differ in the bf16 product."""
    _ext().set_isa(name)


def isa() -> str:
    """The instruction set of the kernels in use."""
    return _ext().isa()


def bf16_path() -> str:
    """How the kernels in use multiply bf16 weights (AMX tiles, vdpbf16ps, or widened to fp32)."""
    return _ext().bf16_path()


class CpuBackend(Backend):
    name = "cpu"
    device_types = ("cpu",)
    dtypes = (torch.float32, torch.bfloat16)
    auto_device_types = ("cpu",)

    @property
    def summary(self) -> str:
        text = ("fused C++ engine (csrc/cpu), fp32 and bf16: OpenMP, AMX / AVX512-BF16 / AVX-512 / AVX2 / portable "
                "kernels chosen at run time")
        ext, _ = _extensions.load_extension("_cpu")
        try:
            return (f"{text}; using {ext.isa()} (bf16: {ext.bf16_path()}) with {torch.get_num_threads()} threads"
                    if ext else text)
        except RuntimeError:
            return text

    def unavailable_reason(self) -> str | None:
        ext, reason = _extensions.load_extension("_cpu")
        if ext is None:
            return reason
        try:
            ext.isa()
        except RuntimeError as e:  # UMSNET_FAST_CPU_ISA names a build this CPU cannot run
            return str(e).splitlines()[0]
        return None

    def ops(self) -> OpSet:
        return CPU_OPS

    def prepare(self, weights: ModelWeights, device: torch.device, dtype: torch.dtype) -> CpuWeights:
        return pack_model(weights.to(device=device, dtype=dtype))


BACKEND = CpuBackend()
