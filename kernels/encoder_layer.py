"""A whole pre-norm Transformer encoder layer as ONE Triton kernel, optionally with the token
embedding in front (first layer) and the final LayerNorm + classification head behind (last layer).
Reference: umsnet_fast.ops.encoder_layer_ref (the layer), umsnet_fast.forward.run_model (the ends).

x: (batch, tokens, d); w: an EncoderLayerWeights; out: (batch, tokens, d).

One program per window holds its tokens [TP, d] (TP: the power of 2 >= tokens, >= 16) in registers:
LayerNorm, then per head q, k, v = h @ W[head].T + b (the packed in_proj), softmax(q k^T / sqrt(hd))
over the real tokens, o = p v, accumulated straight into the output projection; the residual; the
second LayerNorm and the MLP (streamed over mlp_dim, kernels/mlp_residual.mlp_tile). Nothing but the
layer's output leaves the chip. With tokens=(token_weight, token_bias, cls_token, pos_embed) the
input is the fusion features (batch, K, F) and the program builds [cls; features @ Wt.T + bt] +
pos_embed itself; with head=(norm_weight, norm_bias, eps, head_weight, head_bias) it writes the
logits (batch, num_classes) of the class token instead of the tokens.

Limits (unsupported_reason): TP x d <= MAX_TILE, d <= MAX_D, num_classes <= MAX_CLASSES.
"""
from __future__ import annotations

from typing import Optional  # custom_op schemas: spelled Optional[...] for every supported torch

import torch
import triton
import triton.language as tl

from umsnet_fast.ops import encoder_layer_ref
from umsnet_fast.weights import EncoderLayerWeights

from ._common import MIN_DOT, block_size, check_tensor, dot, dot_precision, layernorm_rows
from .mlp_residual import mlp_epilogue, mlp_tile

__all__ = ["encoder_layer", "encoder_layer_op", "encoder_layer_ref", "launch_encoder_layer", "layer_tensors",
           "unsupported_reason",
           "MAX_TILE", "MAX_D", "MAX_CLASSES"]

MAX_TILE = 16384    # elements of the [TP, d] token tile (64 KB in fp32)
MAX_D = 1024        # model width
MAX_CLASSES = 1024  # rows of the head
BLOCK_H = 32        # hidden chunk of the streamed MLP
BLOCK_F = 32        # input chunk of the token projection
LAUNCH_WARPS = 8    # the [TP, d] fp32 tiles (x, the attention accumulator, h) need 8 warps' registers
LAUNCH_STAGES = 1   # no software pipelining: fp32 needs 128 KB of shared memory already (aot_check)


@triton.jit
def _encoder_layer_kernel(
    x_ptr,        # tokens (B, T, D), or with HAS_TOKENS the features (B, T - 1, F_IN); any strides
    inw_ptr, inb_ptr,      # in_proj (3D, D), (3D,): q, k, v; heads contiguous inside each
    outw_ptr, outb_ptr,    # out_proj (D, D), (D,)
    n1w_ptr, n1b_ptr, n2w_ptr, n2b_ptr,  # the two LayerNorms (D,)
    w1_ptr, b1_ptr, w2_ptr, b2_ptr,      # MLP (F, D), (F,), (D, F), (D,)
    tw_ptr, tb_ptr, cls_ptr, pos_ptr,    # HAS_TOKENS: token_weight (D, F_IN), token_bias, cls (D,), pos (T, D)
    nw_ptr, nb_ptr, hw_ptr, hb_ptr,      # HAS_HEAD: final LayerNorm (D,), head (NC, D), (NC,)
    out_ptr,      # (B, T, D) contiguous, or with HAS_HEAD the logits (B, NC)
    T, stride_xb, stride_xt, stride_xc,
    eps, head_eps, scale,  # layer LayerNorm epsilon, final LayerNorm epsilon, 1 / sqrt(HD)
    D: tl.constexpr, BD: tl.constexpr, NH: tl.constexpr, HD: tl.constexpr, BHD: tl.constexpr,
    F: tl.constexpr, TP: tl.constexpr,
    HAS_TOKENS: tl.constexpr, F_IN: tl.constexpr,
    HAS_HEAD: tl.constexpr, NC: tl.constexpr, BNC: tl.constexpr,
    BLOCK_H: tl.constexpr, BLOCK_F: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    t = tl.arange(0, TP)
    t_mask = t < T
    cols = tl.arange(0, BD)
    c_mask = cols < D
    mask = t_mask[:, None] & c_mask[None, :]
    wdt = inw_ptr.dtype.element_ty
    if HAS_TOKENS:
        # token t >= 1 is feature t - 1 projected; token 0 is the class token; then the position embedding.
        f_row = x_ptr + b * stride_xb + (t - 1) * stride_xt
        f_ok = (t >= 1) & t_mask
        x = tl.zeros([TP, BD], dtype=tl.float32)
        for f0 in range(0, F_IN, BLOCK_F):
            ff = f0 + tl.arange(0, BLOCK_F)
            f_mask = ff < F_IN
            a = tl.load(f_row[:, None] + ff[None, :] * stride_xc, mask=f_ok[:, None] & f_mask[None, :], other=0.0)
            wt = tl.load(tw_ptr + cols[None, :] * F_IN + ff[:, None], mask=f_mask[:, None] & c_mask[None, :],
                         other=0.0)
            x = dot(a.to(wdt), wt, x, DOT_PRECISION)
        tb = tl.load(tb_ptr + cols, mask=c_mask, other=0.0).to(tl.float32)
        cls = tl.load(cls_ptr + cols, mask=c_mask, other=0.0).to(tl.float32)
        x = tl.where((t == 0)[:, None], cls[None, :], x + tb[None, :])
        x += tl.load(pos_ptr + t[:, None] * D + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        x = tl.where(mask, x, 0.0)
    else:
        x = tl.load(x_ptr + b * stride_xb + t[:, None] * stride_xt + cols[None, :] * stride_xc, mask=mask,
                    other=0.0).to(tl.float32)
    # Self-attention; rows beyond T compute garbage that no real row reads (their keys are masked).
    h = layernorm_rows(x, c_mask, D, n1w_ptr, n1b_ptr, cols, eps).to(wdt)
    hd = tl.arange(0, BHD)
    hd_mask = hd < HD
    wmask = c_mask[:, None] & hd_mask[None, :]
    acc = tl.zeros([TP, BD], dtype=tl.float32)
    for head in range(NH):
        j = head * HD + hd  # this head's rows of q (then + D: k, + 2D: v)
        wq = tl.load(inw_ptr + j[None, :] * D + cols[:, None], mask=wmask, other=0.0)  # [BD, BHD]
        wk = tl.load(inw_ptr + (D + j)[None, :] * D + cols[:, None], mask=wmask, other=0.0)
        wv = tl.load(inw_ptr + (2 * D + j)[None, :] * D + cols[:, None], mask=wmask, other=0.0)
        q = dot(h, wq, None, DOT_PRECISION) + tl.load(inb_ptr + j, mask=hd_mask, other=0.0).to(tl.float32)[None, :]
        k = dot(h, wk, None, DOT_PRECISION) + tl.load(inb_ptr + D + j, mask=hd_mask, other=0.0).to(tl.float32)[None, :]
        v = dot(h, wv, None, DOT_PRECISION) + tl.load(inb_ptr + 2 * D + j, mask=hd_mask,
                                                      other=0.0).to(tl.float32)[None, :]
        s = dot(q.to(wdt), tl.trans(k.to(wdt)), None, DOT_PRECISION) * scale  # [TP, TP]
        s = tl.where(t_mask[None, :], s, float("-inf"))
        p = tl.exp(s - tl.max(s, axis=1)[:, None])
        p = p / tl.sum(p, axis=1)[:, None]
        o = dot(p.to(wdt), v.to(wdt), None, DOT_PRECISION)  # [TP, BHD]
        wo = tl.load(outw_ptr + cols[None, :] * D + j[:, None], mask=hd_mask[:, None] & c_mask[None, :], other=0.0)
        acc = dot(o.to(wdt), wo, acc, DOT_PRECISION)
    x = mlp_epilogue(acc, outb_ptr, outb_ptr, x, cols, c_mask, False)
    # MLP with the residual.
    h = layernorm_rows(x, c_mask, D, n2w_ptr, n2b_ptr, cols, eps).to(wdt)
    y = mlp_tile(h, tl.zeros([TP, BD], dtype=tl.float32), w1_ptr, b1_ptr, w2_ptr, cols, c_mask, F, D, 1, F, 1,
                 BLOCK_H, DOT_PRECISION)
    x = mlp_epilogue(y, b2_ptr, b2_ptr, x, cols, c_mask, False)
    if HAS_HEAD:
        # The class token, rounded to the compute dtype as the unfused forward stores it.
        x0 = tl.sum(tl.where((t == 0)[:, None], x, 0.0), axis=0).to(wdt).to(tl.float32)
        y0 = layernorm_rows(x0[None, :], c_mask, D, nw_ptr, nb_ptr, cols, head_eps).to(wdt).to(tl.float32)
        n = tl.arange(0, BNC)
        n_mask = n < NC
        hw = tl.load(hw_ptr + n[:, None] * D + cols[None, :], mask=n_mask[:, None] & c_mask[None, :],
                     other=0.0).to(tl.float32)
        logits = tl.sum(hw * y0, axis=1) + tl.load(hb_ptr + n, mask=n_mask, other=0.0).to(tl.float32)
        tl.store(out_ptr + b * NC + n, logits.to(out_ptr.dtype.element_ty), mask=n_mask)
    else:
        tl.store(out_ptr + b * T * D + t[:, None] * D + cols[None, :], x.to(out_ptr.dtype.element_ty), mask=mask)


def _tokens_padded(tokens: int) -> int:
    return block_size(tokens, MIN_DOT)


def unsupported_reason(w: EncoderLayerWeights, tokens: int, num_classes: int = 0) -> str | None:
    """Why the layer kernel cannot run w over `tokens` tokens (None: it can)."""
    d = w.norm1_weight.shape[0]
    if d > MAX_D:
        return f"width {d} (the layer kernel holds at most {MAX_D})"
    tile = _tokens_padded(tokens) * block_size(d, MIN_DOT)
    if tile > MAX_TILE:
        return f"{tokens} tokens of width {d} (the layer kernel's tile holds at most {MAX_TILE} elements)"
    if num_classes > MAX_CLASSES:
        return f"{num_classes} classes (the fused head holds at most {MAX_CLASSES})"
    return None


def layer_tensors(w: EncoderLayerWeights) -> list[torch.Tensor]:
    return [w.in_proj_weight, w.in_proj_bias, w.out_proj_weight, w.out_proj_bias, w.norm1_weight, w.norm1_bias,
            w.norm2_weight, w.norm2_bias, w.w1, w.b1, w.w2, w.b2]


def kernel_constexprs(d: int, num_heads: int, mlp_dim: int, tokens: int, token_features: int, num_classes: int,
                      precision: str) -> dict:
    """The kernel's constexprs; token_features 0: no token embedding; num_classes 0: no head (aot_check too)."""
    hd = d // num_heads
    return dict(D=d, BD=block_size(d, MIN_DOT), NH=num_heads, HD=hd, BHD=block_size(hd, MIN_DOT), F=mlp_dim,
                TP=_tokens_padded(tokens), HAS_TOKENS=token_features > 0, F_IN=max(token_features, 1),
                HAS_HEAD=num_classes > 0, NC=max(num_classes, 1), BNC=block_size(max(num_classes, 1)),
                BLOCK_H=BLOCK_H, BLOCK_F=BLOCK_F, DOT_PRECISION=precision)


def launch_encoder_layer(x: torch.Tensor, layer: list[torch.Tensor], eps: float, num_heads: int,
                         tokens: list[torch.Tensor], head: list[torch.Tensor], head_eps: float,
                         allow_tf32: bool | None = None) -> torch.Tensor:
    """Run the kernel. x: (B, T, D), or the features (B, T - 1, F) with tokens = [token_weight,
    token_bias, cls_token, pos_embed]; layer: the 12 tensors in EncoderLayerWeights order (contiguous);
    head = [norm_weight, norm_bias, head_weight, head_bias] or []. Returns (B, T, D) or (B, NC)."""
    inw, inb, outw, outb, n1w, n1b, n2w, n2b, w1, b1, w2, b2 = layer
    d, f = n1w.shape[0], w1.shape[0]
    batch = x.shape[0]
    t = x.shape[1] + 1 if tokens else x.shape[1]
    nc = head[2].shape[0] if head else 1
    out = torch.empty((batch, nc) if head else (batch, t, d), device=x.device, dtype=x.dtype)
    if batch == 0:
        return out
    tw, tb, cls, pos = tokens if tokens else (inb,) * 4
    nw, nb, hw, hb = head if head else (inb,) * 4
    _encoder_layer_kernel[(batch,)](
        x, inw, inb, outw, outb, n1w, n1b, n2w, n2b, w1, b1, w2, b2, tw, tb, cls, pos, nw, nb, hw, hb, out,
        t, *x.stride(), eps, head_eps, (d // num_heads) ** -0.5,
        **kernel_constexprs(d, num_heads, f, t, tw.shape[1] if tokens else 0, nc if head else 0,
                            dot_precision(x.dtype, allow_tf32)), num_warps=LAUNCH_WARPS, num_stages=LAUNCH_STAGES)
    return out


@torch.library.custom_op("umsnet_fast::triton_encoder_layer", mutates_args=())
def encoder_layer_op(x: torch.Tensor, layer: list[torch.Tensor], eps: float, num_heads: int,
                     tokens: list[torch.Tensor], head: list[torch.Tensor], head_eps: float,
                     allow_tf32: Optional[bool] = None) -> torch.Tensor:
    """launch_encoder_layer as an op (visible to torch.compile / CUDA graphs)."""
    return launch_encoder_layer(x, layer, eps, num_heads, tokens, head, head_eps, allow_tf32)


@encoder_layer_op.register_fake
def _(x, layer, eps, num_heads, tokens, head, head_eps, allow_tf32=None):
    if head:
        return x.new_empty(x.shape[0], head[2].shape[0])
    return x.new_empty(x.shape[0], x.shape[1] + (1 if tokens else 0), layer[4].shape[0])


def check_layer_args(x: torch.Tensor, w: EncoderLayerWeights) -> None:
    check_tensor("x", x, 3)
    d = x.shape[2]
    check_tensor("norm1_weight", w.norm1_weight, shape=(d,), like=x)
    check_tensor("in_proj_weight", w.in_proj_weight, shape=(3 * d, d), like=x)
    check_tensor("w1", w.w1, shape=(None, d), like=x)
    if d % w.num_heads:
        raise ValueError(f"num_heads: {w.num_heads} does not divide the width {d}")


def encoder_layer(x: torch.Tensor, w: EncoderLayerWeights, *, allow_tf32: bool | None = None) -> torch.Tensor:
    """Host launcher; same signature as encoder_layer_ref. x: (batch, tokens, d) any strides.
    Raises ValueError naming the limit when the kernel cannot hold the layer (unsupported_reason)."""
    check_layer_args(x, w)
    reason = unsupported_reason(w, x.shape[1])
    if reason is not None:
        raise ValueError(f"the encoder layer kernel cannot run this layer: {reason}")
    return encoder_layer_op(x, [t.contiguous() for t in layer_tensors(w)], w.eps, w.num_heads, [], [], 0.0,
                            allow_tf32)


def transformer(h: torch.Tensor, w) -> torch.Tensor:
    """Stage 3 with one launch per encoder layer: the fusion module's output h (batch, K, C) and the
    model's weights (ModelWeights) -> logits (batch, num_classes). The first layer embeds the tokens, the
    last also runs the final LayerNorm and the head (run_transformer's op sequence)."""
    x = h
    for i, lw in enumerate(w.layers):
        tokens = [w.token_weight, w.token_bias, w.cls_token, w.pos_embed] if i == 0 else []
        head = [w.norm_weight, w.norm_bias, w.head_weight, w.head_bias] if i == len(w.layers) - 1 else []
        x = encoder_layer_op(x, layer_tensors(lw), lw.eps, lw.num_heads, tokens, head, w.norm_eps)
    return x
