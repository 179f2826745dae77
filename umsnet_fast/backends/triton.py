"""The `triton` backend: the forward of umsnet_fast.forward with the Triton kernels of kernels/.

Triton runs: the stem (linear_layernorm), every LSR block (one fused kernel or dwconv_layernorm +
mlp_residual, whichever is faster for the shape), the downsamples (folded BatchNorm + 2-tap stride-2
conv), the Transformer's LayerNorms and its MLP (mlp_residual, gamma None). Plain GEMMs (token
projection, qkv / output projections, head) stay on torch's F.linear (cuBLAS) and attention on
torch's scaled_dot_product_attention.

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

import warnings

import torch

from .. import ops as _ops
from ..forward import OpSet, op_signature
from .base import Backend

_INTERPRET_HINT = ("set TRITON_INTERPRET=1 before umsnet_fast.kernels is imported to run the kernels on "
                   "CPU tensors through Triton's interpreter (slow; for testing)")


def _kernels():
    """umsnet_fast.kernels' modules, imported on first use (this imports triton)."""
    from umsnet_fast.kernels import (_common, downsample, layer_norm, linear_layernorm, lsr_block,
                                     mlp_residual)
    return _common, downsample, layer_norm, linear_layernorm, lsr_block, mlp_residual


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
    summary = ("Triton kernels: fused LSR block / MLP / stem / downsample / LayerNorm; CUDA, or CPU under "
               "TRITON_INTERPRET=1")
    device_types = ("cuda", "cpu")
    dtypes = (torch.float32, torch.float16, torch.bfloat16)
    auto_device_types = ("cuda",)  # never `auto` on CPU: the interpreter is for testing

    def __init__(self):
        self._ops: OpSet | None = None

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
            )
        return self._ops


BACKEND = TritonBackend()
