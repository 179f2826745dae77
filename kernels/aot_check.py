"""Compile every Triton kernel for a GPU architecture without a GPU (triton.compile + the ptxas that
ships with Triton), to catch what the interpreter accepts but a GPU compiler rejects (tl.dot shapes,
constexpr misuse, types) and to see each config's shared memory.

    python -m umsnet_fast.kernels.aot_check [--arch 90 80] [--dtype fp32 bf16 fp16] [--all-configs] [--tf32]

Must run without TRITON_INTERPRET=1 (it needs the compiled kernels, not the interpreter's). Kernel
arguments follow one convention: names ending in _ptr are pointers of the tested dtype, those in
FP32_ARGS (`eps`, ...) are fp32, other runtime arguments are i32, constexprs are given per kernel below.
Exit status 1 if any failed.
"""
from __future__ import annotations

import argparse
import sys
import time

TRITON_TYPES = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16"}
FP32_ARGS = ("eps", "head_eps", "scale")


def kernel_cases(dtype: str, all_configs: bool, tf32: bool):
    """(name, JITFunction, constexprs, num_warps, num_stages) at UMSNet's widths."""
    import torch

    from . import dwconv_layernorm as dw
    from . import encoder_layer as enc
    from . import layer_norm as ln
    from . import linear_layernorm as lin
    from . import lsr_block as lsr
    from . import lsr_module as mod
    from . import mlp_residual as mlp

    prec = "tf32" if (tf32 or dtype != "fp32") else "ieee"

    def configs(autotuned):
        cfgs = autotuned.configs if all_configs else autotuned.configs[:1]
        return [(c.kwargs, c.num_warps, c.num_stages) for c in cfgs]

    for c in (16, 128):
        yield "dwconv_layernorm", dw._dwconv_layernorm_kernel, dict(
            KSIZE=3, APPLY_GELU=c == 16, BLOCK_M=max(1, min(128, 4096 // c)), BLOCK_C=c), 4, 3
    yield "layer_norm", ln._layer_norm_kernel, dict(BLOCK_M=16, BLOCK_C=256), 4, 3
    for kw, warps, stages in configs(mlp._mlp_residual_kernel):
        for c in (128, 256):
            yield "mlp_residual", mlp._mlp_residual_kernel.fn, dict(
                HAS_GAMMA=c == 128, DOT_PRECISION=prec, BLOCK_C=c, **kw), warps, stages
    for kw, warps, stages in configs(lsr._lsr_block_kernel):
        for c in (16, 128):
            yield "lsr_block", lsr._lsr_block_kernel.fn, dict(
                KSIZE=3, DOT_PRECISION=prec, BLOCK_C=c, **kw), warps, stages
    for kw, warps, stages in configs(lin._tap_linear_kernel):
        yield "linear_layernorm", lin._tap_linear_kernel.fn, dict(
            HAS_LN=True, DOT_PRECISION=prec, BLOCK_N=16, **kw), warps, stages
        yield "downsample", lin._tap_linear_kernel.fn, dict(
            HAS_LN=False, DOT_PRECISION=prec, BLOCK_N=128, **kw), warps, stages
    # UMSNet-A's modules on HHAR: a sensor module (3 axes, L = 25, pooled) and the fusion one (K = 24).
    for name, layout, length, pool in (("lsr_module sensor", mod.umsnet_layout(3, (16, 32, 64, 128), 2), 25, True),
                                       ("lsr_module fusion", mod.umsnet_layout(256, (64, 64, 64, 128), 1), 24, False)):
        consts = mod.kernel_constexprs(layout, length, pool, prec)
        warps = mod.LAUNCH_WARPS[getattr(torch, {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}[dtype])]
        yield name, mod._lsr_module_kernel, consts, warps, mod.LAUNCH_STAGES
    # UMSNet's encoder layers (d 256, 8 heads, mlp 512, K + 1 = 25 tokens): the first (token embedding of
    # the 128-wide fusion features) and the last (LayerNorm + head, 6 classes); a middle one has neither.
    for name, tokens, head in (("encoder_layer first", True, False), ("encoder_layer last", False, True)):
        consts = enc.kernel_constexprs(256, 8, 512, 25, 128 if tokens else 0, 6 if head else 0, prec)
        yield name, enc._encoder_layer_kernel, consts, enc.LAUNCH_WARPS, enc.LAUNCH_STAGES


def compile_kernel(fn, dtype: str, constexprs: dict, num_warps: int, num_stages: int, arch: int):
    """triton.compile for cuda:sm_<arch>; returns the compiled kernel (metadata.shared: bytes)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    sig = {name: "constexpr" if name in constexprs else
           f"*{TRITON_TYPES[dtype]}" if name.endswith("_ptr") else "fp32" if name in FP32_ARGS else "i32"
           for name in fn.arg_names}
    return triton.compile(ASTSource(fn=fn, signature=sig, constexprs=constexprs),
                          target=GPUTarget("cuda", arch, 32), options=dict(num_warps=num_warps, num_stages=num_stages))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", type=int, nargs="+", default=[90], help="SM versions (90 = H100/H200, 80 = A100)")
    p.add_argument("--dtype", nargs="+", choices=sorted(TRITON_TYPES), default=["fp32", "bf16"])
    p.add_argument("--all-configs", action="store_true", help="every autotuning config (default: the first)")
    p.add_argument("--tf32", action="store_true", help="fp32 with input_precision='tf32' (the opt-in)")
    args = p.parse_args(argv)
    from ._common import INTERPRET
    if INTERPRET:
        sys.exit("aot_check: TRITON_INTERPRET=1 is set; unset it (this compiles for a GPU)")
    failures = 0
    for arch in args.arch:
        for dtype in args.dtype:
            for name, fn, consts, warps, stages in kernel_cases(dtype, args.all_configs, args.tf32):
                t0 = time.time()
                try:
                    shared = f"{compile_kernel(fn, dtype, consts, warps, stages, arch).metadata.shared} B shared"
                except Exception as e:  # report every failure, then exit non-zero
                    failures += 1
                    shared = f"FAILED {type(e).__name__}: {str(e).strip()[:400]}"
                print(f"sm_{arch} {dtype} {name} {consts} warps={warps} stages={stages}: {shared} "
                      f"({time.time() - t0:.1f} s)", flush=True)
    print(f"{failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
