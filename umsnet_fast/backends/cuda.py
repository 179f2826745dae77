"""The `cuda` backend: the CUDA C++ extension (csrc/cuda, umsnet_fast._cuda) for the LSR blocks.

Every LSR block (sensor and fusion modules) runs as one fused kernel,
`torch.ops.umsnet_fast.lsr_block_cuda`; the other ops (stems, downsamples, the Transformer) are the
reference ones. fp32 computes in
true fp32 (no TF32); fp16 / bf16 run on tensor cores with fp32 accumulation (bf16 on sm_80+; on
sm_75 bf16 runs the fp32-compute path of the same kernel).

Streams and devices: each launch goes to the stream current on x's device when it runs (a capture's
stream while capturing); under torch.compile the block is the opaque op umsnet_fast::cuda_lsr_block,
so the stream is not traced into the graph as a constant (mode="reduce-overhead" captures it).
"""
from __future__ import annotations

import torch

from .._extensions import load_extension
from ..forward import OpSet
from ..ops import lsr_block_ref
from .base import Backend

_EXT_NAME = "_cuda"
_ext_module = None  # the loaded extension, once it has loaded (every block call needs it)


def _extension():
    """The loaded extension module (its ops registered); RuntimeError with the reason when it cannot load."""
    global _ext_module
    if _ext_module is None:
        module, reason = load_extension(_EXT_NAME)
        if module is None:
            raise RuntimeError(f"the CUDA backend is unavailable: {reason}")
        _register_fake()
        _ext_module = module
    return _ext_module


def lsr_block(x: torch.Tensor, dw_weight: torch.Tensor, ln_weight: torch.Tensor, ln_bias: torch.Tensor,
              w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, gamma: torch.Tensor,
              eps: float = 1e-6, *, tensor_cores: bool = True) -> torch.Tensor:
    """The whole LSR block (eval mode) as one CUDA kernel; same signature and result as lsr_block_ref.

    x: (batch, length, C) on a CUDA device, any strides, float32 / float16 / bfloat16
    dw_weight: (C, k), k odd; ln_weight, ln_bias, b2, gamma: (C,); w1: (H, C); b1: (H,); w2: (C, H)
        (x's dtype and device, contiguous)
    out: (batch, length, C), contiguous
    tensor_cores=False runs fp16 / bf16 through the fp32-compute SIMT path (the sm_75 bf16 path).
    Blocks wider than the kernel's limit (the extension's LSR_MAX_WIDTH, 128) run lsr_block_ref.
    """
    ext = _extension()
    if x.dim() == 3 and x.shape[-1] > ext.LSR_MAX_WIDTH:
        return lsr_block_ref(x, dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma, eps)
    if x.device.type != "cuda":
        raise ValueError(f"lsr_block (cuda backend): x must be on a CUDA device, got {x.device} "
                         f"(shape {tuple(x.shape)})")
    if torch.compiler.is_compiling():
        # Under torch.compile the stream read below would be traced into a constant (the stream at
        # compile time): a CUDA-graph capture (mode="reduce-overhead") would then launch off its
        # capturing stream. The op reads the stream when it runs instead.
        return lsr_block_op(x, dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma, float(eps), tensor_cores)
    return _launch(x, dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma, float(eps), tensor_cores)


def _launch(x, dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma, eps: float, tensor_cores: bool):
    # The stream current on x's device when the kernel is launched (a capture's stream while capturing);
    # the binding makes x's device current for the launch.
    stream = torch.cuda.current_stream(x.device).cuda_stream
    return torch.ops.umsnet_fast.lsr_block_cuda(x, dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma,
                                                eps, stream, tensor_cores)


@torch.library.custom_op("umsnet_fast::cuda_lsr_block", mutates_args=())
def lsr_block_op(x: torch.Tensor, dw_weight: torch.Tensor, ln_weight: torch.Tensor, ln_bias: torch.Tensor,
                 w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, gamma: torch.Tensor,
                 eps: float, tensor_cores: bool) -> torch.Tensor:
    """lsr_block as an op opaque to torch.compile, so that the launch stream is read at run time.
    Eager calls skip it (a Python custom op costs several microseconds per call)."""
    _extension()
    return _launch(x, dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma, eps, tensor_cores)


@lsr_block_op.register_fake
def _(x, dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma, eps, tensor_cores):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _register_fake() -> None:
    # Shapes for meta tensors: the output is a contiguous tensor like x. (torch.compile sees
    # umsnet_fast::cuda_lsr_block instead, whose stream argument is not a traced constant.)
    @torch.library.register_fake("umsnet_fast::lsr_block_cuda")
    def _(x, dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma, eps, stream, tensor_cores=True):
        return torch.empty_like(x, memory_format=torch.contiguous_format)


class CudaBackend(Backend):
    name = "cuda"
    summary = "CUDA C++ extension: fused LSR blocks (tensor cores for fp16/bf16), reference ops elsewhere"
    device_types = ("cuda",)
    dtypes = (torch.float32, torch.float16, torch.bfloat16)
    auto_device_types = ("cuda",)

    def __init__(self):
        self._ops: OpSet | None = None

    def unavailable_reason(self) -> str | None:
        reasons = []
        if torch.version.cuda is None:
            reasons.append(f"this torch ({torch.__version__}) is built without CUDA")
        elif not torch.cuda.is_available():
            reasons.append("no CUDA GPU (torch.cuda.is_available() is False)")
        module, reason = load_extension(_EXT_NAME)
        if module is None:
            reasons.append(reason)
        return "; ".join(reasons) or None

    def ops(self) -> OpSet:
        # the ops load the extension on their first call (and say why when it cannot load), so the
        # OpSet itself can be inspected anywhere (tests/ops lists the ops each backend replaces)
        if self._ops is None:
            self._ops = OpSet(self.name, lsr_block=lsr_block)
        return self._ops

    # prepare(): the base class's cast to the compute dtype and device, contiguous, is the layout the
    # kernel reads (w1 (H, C) and w2 (C, H) row-major, staged into shared memory chunk by chunk).


BACKEND = CudaBackend()
