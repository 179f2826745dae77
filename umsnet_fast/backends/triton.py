"""The `triton` backend: the forward of umsnet_fast.forward with the Triton kernels of kernels/.

The forward runs as module kernels (kernels/lsr_module.py, kernels/encoder_layer.py): one launch per
sensor module (stem, LSR blocks, downsamples and the mean over each slice, written into one
(batch * K, sum of widths) feature buffer: no concatenation), one for the fusion module and one per
encoder layer, the first also building the tokens (token projection, class token, position
embedding) and the last also computing the final LayerNorm and the head: 2 + 1 + 3 = 6 launches for
UMSNet-A on HHAR. `prepare` packs each module's weights once into the flat buffer its kernel reads.

A module the module kernels cannot hold (see their unsupported_reason: more than 4 stages, tiles
beyond their on-chip limit, mixed downsample strides...) runs on the per-block kernels instead, with
one warning per reason (UMSNET_FAST_TRITON_MODULES=0 asks for this path everywhere, for comparisons):
the stem (linear_layernorm), every LSR block (one fused kernel or dwconv_layernorm + mlp_residual,
whichever is faster for the shape), the downsamples, the
Transformer's LayerNorms and MLP (mlp_residual, gamma None); plain GEMMs (token projection, qkv /
output projections, head) on torch's F.linear (cuBLAS) and attention on scaled_dot_product_attention.

Devices: CUDA tensors; CPU tensors only when TRITON_INTERPRET=1 was set before umsnet_fast.kernels
(and so triton.jit) was imported: Triton's interpreter then runs the kernels in numpy, slowly, which is
how the kernels are tested without a GPU. `auto` picks this backend on CUDA only.

Precision: fp32 computes in true fp32 (tl.dot input_precision="ieee"); set UMSNET_FAST_ALLOW_TF32=1
to let fp32 matrix products use TF32 tensor cores. fp16/bf16 accumulate in fp32 and take LayerNorm
statistics in fp32.

Shapes beyond a kernel's register tile (rows wider than MAX_C of mlp_residual for the MLP and the LSR
block, MAX_LN_C for the stem, far beyond UMSNet's widths) run the reference op, with one warning.
"""
from __future__ import annotations

import dataclasses
import os
import warnings

import torch

from .. import ops as _ops
from ..forward import PRIMITIVE_OPS, OpSet, op_signature, run_encoder_layer, run_lsr_module, run_model, run_transformer
from ..weights import ModelWeights
from .base import Backend

# UMSNET_FAST_TRITON_MODULES=0: run every forward on the per-block kernels (read on each call, so one
# process can capture both forms and compare them).
MODULES_ENV = "UMSNET_FAST_TRITON_MODULES"

_INTERPRET_HINT = ("set TRITON_INTERPRET=1 before umsnet_fast.kernels is imported to run the kernels on "
                   "CPU tensors through Triton's interpreter (slow; for testing)")


def _kernels():
    """umsnet_fast.kernels' modules, imported on first use (this imports triton)."""
    from umsnet_fast.kernels import _common, downsample, layer_norm, linear_layernorm, lsr_block, mlp_residual
    return _common, downsample, layer_norm, linear_layernorm, lsr_block, mlp_residual


def _module_kernels():
    from umsnet_fast.kernels import encoder_layer, lsr_module
    return lsr_module, encoder_layer


def _bounded(name: str, kernel, reference, width_arg: int, width_of, limit: int):
    """kernel(*args), or reference(*args) with one warning when width_of(args[width_arg]) > limit."""
    warned = []

    def run(*args):
        if width_of(args[width_arg]) <= limit:
            return kernel(*args)
        if not warned:
            warned.append(True)
            warnings.warn(f"umsnet_fast triton backend: {name} is wider than its kernel's limit ({limit}); "
                          "running the reference op for it", RuntimeWarning, stacklevel=2)
        return reference(*args)

    run.__signature__ = op_signature(kernel)  # what OpSet checks against the reference
    return run


class TritonBackend(Backend):
    name = "triton"
    summary = ("Triton kernels: one per LSR module and per encoder layer (per-block kernels beyond their "
               "limits); CUDA, or CPU under TRITON_INTERPRET=1")
    device_types = ("cuda", "cpu")
    dtypes = (torch.float32, torch.float16, torch.bfloat16)
    auto_device_types = ("cuda",)  # never `auto` on CPU: the interpreter is for testing

    def __init__(self):
        self._ops: OpSet | None = None
        self._per_block: OpSet | None = None  # the same primitives, no module-level overrides
        self._warned: set[str] = set()

    def unavailable_reason(self) -> str | None:
        try:
            common = _kernels()[0]
        except Exception as e:  # ImportError, or a broken triton install failing at import
            return f"triton is not importable ({type(e).__name__}: {e}); pip install 'umsnet-fast[triton]'"
        if common.runnable_device() is not None:
            return None
        return f"no CUDA GPU; {_INTERPRET_HINT}"

    def input_unsupported_reason(self, device: torch.device, dtype: torch.dtype) -> str | None:
        reason = super().input_unsupported_reason(device, dtype)
        if reason is None and device.type == "cpu" and not _kernels()[0].INTERPRET:
            reason = f"tensors on cpu: the Triton kernels run on CUDA; {_INTERPRET_HINT}"
        return reason

    def ops(self) -> OpSet:
        if self._ops is None:
            _, ds, ln, lin_ln, lsr, mlp = _kernels()
            last = lambda t: t.shape[-1]  # noqa: E731
            rows = lambda t: t.shape[0]  # noqa: E731
            self._ops = OpSet(
                "triton",
                linear_layernorm=_bounded("the stem", lin_ln.linear_layernorm_op, _ops.linear_layernorm_ref,
                                          1, rows, lin_ln.MAX_LN_C),
                lsr_block=_bounded("an LSR block", lsr.lsr_block_op, _ops.lsr_block_ref, 0, last, mlp.MAX_C),
                downsample=ds.downsample_op,
                layer_norm=_bounded("a LayerNorm", ln.layer_norm_op, _ops.layer_norm_ref, 0, last, ln.MAX_C),
                mlp_residual=_bounded("an MLP", mlp.mlp_residual_op, _ops.mlp_residual_ref, 0, last, mlp.MAX_C),
                linear=_ops.linear_ref,        # cuBLAS
                attention=_ops.attention_ref,  # torch's scaled_dot_product_attention
                lsr_module=self._lsr_module,
                encoder_layer=self._encoder_layer,
                forward=self._forward,
            )
            self._per_block = OpSet("triton-per-block", **{op: getattr(self._ops, op) for op in PRIMITIVE_OPS})
        return self._ops

    def prepare(self, weights: ModelWeights, device: torch.device, dtype: torch.dtype) -> ModelWeights:
        """The weights on device/dtype, each LSR module with its packed buffer for the module kernel."""
        lm = _module_kernels()[0]
        w = weights.to(device=device, dtype=dtype)
        return dataclasses.replace(w, sensors=[lm.pack_lsr_module(m) for m in w.sensors],
                                   fusion=lm.pack_lsr_module(w.fusion))

    # -- module-level ops: one kernel each where it fits, else the per-block kernels ---------------
    def _fits(self, what: str, reason: str | None) -> bool:
        if os.environ.get(MODULES_ENV, "1") == "0":
            return False  # asked for the per-block kernels: no warning
        if reason is None:
            return True
        message = f"umsnet_fast triton backend: {what}: {reason}; running it on the per-block kernels"
        if message not in self._warned:
            self._warned.add(message)
            warnings.warn(message, RuntimeWarning, stacklevel=3)
        return False

    def _module_reason(self, w, length: int) -> str | None:
        lm = _module_kernels()[0]
        if not isinstance(w, lm.PackedLSRModule):
            return "weights not packed by the triton backend's prepare()"
        return lm.unsupported_reason(w, length)

    def _lsr_module(self, x: torch.Tensor, w) -> torch.Tensor:
        lm = _module_kernels()[0]
        if not isinstance(w, lm.PackedLSRModule):  # the op takes what lsr_module's reference takes, too
            w = lm.pack_lsr_module(w)
        if self._fits("an LSR module", self._module_reason(w, x.shape[1])):
            return _module_kernels()[0].lsr_module(x, w)
        return run_lsr_module(self._ops, x, w)

    def _encoder_layer(self, x: torch.Tensor, w) -> torch.Tensor:
        el = _module_kernels()[1]
        if self._fits("an encoder layer", el.unsupported_reason(w, x.shape[1])):
            return el.encoder_layer(x, w)
        return run_encoder_layer(self._ops, x, w)

    def _forward(self, w: ModelWeights, xs: list[torch.Tensor], num_slices: int) -> torch.Tensor:
        """run_model's forward with the module kernels (see the module docstring)."""
        if os.environ.get(MODULES_ENV, "1") == "0":
            return run_model(self._per_block, w, xs, num_slices)
        lm, el = _module_kernels()
        batch, k = xs[0].shape[0], num_slices
        widths = [m.stem_weight.shape[0] if not m.downsamples else m.downsamples[-1].weight.shape[0]
                  for m in w.sensors]
        feats = torch.empty(batch * k, sum(widths), device=xs[0].device, dtype=xs[0].dtype)
        col = 0
        for mw, x, width in zip(w.sensors, xs, widths):
            c, t = x.shape[1], x.shape[2]
            # (batch, C, K * L) viewed as (batch, K, L, C): the kernel reads the slices in place.
            x4 = x.reshape(batch, c, k, t // k).permute(0, 2, 3, 1)
            out = feats[:, col:col + width]
            if self._fits("a sensor module", self._module_reason(mw, t // k)):
                lm.lsr_module_out_op(x4, mw.packed, mw.layout.as_list(), mw.layout.eps, True, out)
            else:
                out.copy_(run_lsr_module(self._ops, x4.reshape(batch * k, t // k, c), mw).mean(1))
            col += width
        feats = feats.view(batch, k, -1)
        f = w.fusion
        if self._fits("the fusion module", self._module_reason(f, k)):
            h = torch.empty(batch, k, f.layout.dims[-1], device=feats.device, dtype=feats.dtype)
            lm.lsr_module_out_op(feats.unsqueeze(1), f.packed, f.layout.as_list(), f.layout.eps, False, h)
        else:
            h = run_lsr_module(self._ops, feats, f)
        num_classes = w.head_weight.shape[0]
        reasons = [el.unsupported_reason(lw, k + 1, num_classes) for lw in w.layers] or ["no encoder layer"]
        if not self._fits("the Transformer", next((r for r in reasons if r is not None), None)):
            return run_transformer(self._ops, w, h)
        return el.transformer(h, w)


BACKEND = TritonBackend()
