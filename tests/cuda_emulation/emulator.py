"""The CUDA LSR block kernels' device code, unchanged, run on the CPU by a small emulation of the CUDA
execution model (this folder), with lsr_block_ref's signature: tests/ops/test_lsr_block.py runs it
against the reference like every other implementation.

This checks what can be checked without a GPU: tiling, halo and sample masking of the depthwise conv,
the LayerNorm, padding of odd widths, the hidden-dim chunking, the data flow from GEMM1's accumulators
into GEMM2's A operand, strides and the epilogue, for both the tensor-core kernel (fp16, bf16) and
the SIMT kernel (fp32, and fp16/bf16 as on sm_75). The MMA instruction itself is emulated from the
PTX ISA's register layouts; the real instruction, speed and the launcher run only on a GPU
(tests/test_cuda_backend.py). Needs g++ with C++20 and the CUDA toolkit's headers (nvcc's).
"""
from __future__ import annotations

import ctypes
import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
EMU_DIR = Path(__file__).resolve().parent
CXX = shutil.which("g++") or shutil.which("c++")
NVCC = shutil.which("nvcc")
DTYPE_CODES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}
MMA, SIMT = 0, 1


def cuda_include_dir() -> Path | None:
    """The toolkit's include directory, from `nvcc -dryrun` (TOP=...)."""
    if NVCC is None:
        return None
    out = subprocess.run([NVCC, "-dryrun", "-c", "-x", "cu", "/dev/null"], capture_output=True, text=True).stderr
    for line in out.splitlines():
        if line.startswith("#$ TOP="):
            inc = Path(line.split("=", 1)[1].strip()) / "include"
            return inc if (inc / "cuda_runtime.h").exists() else None
    return None


class LsrBlockParams(ctypes.Structure):  # csrc/cuda/lsr_block.h
    _fields_ = [(n, ctypes.c_void_p) for n in ("x", "out", "dw_weight", "ln_weight", "ln_bias", "w1", "b1", "w2",
                                                 "b2", "gamma")] + [
        ("batch", ctypes.c_int64), ("length", ctypes.c_int64), ("channels", ctypes.c_int), ("hidden", ctypes.c_int),
        ("kernel_size", ctypes.c_int), ("eps", ctypes.c_float)] + [
        (n, ctypes.c_int64) for n in ("x_batch_stride", "x_length_stride", "x_channel_stride", "out_batch_stride",
                                      "out_length_stride", "out_channel_stride")]


def emulator_unavailable_reason() -> str | None:
    if CXX is None or cuda_include_dir() is None:
        return "needs g++ and the CUDA toolkit headers (nvcc on PATH) to build the kernel emulation"
    return None


@functools.cache
def emulator() -> ctypes.CDLL:
    """The emulation library, built once per process (about 10 s of g++)."""
    include = cuda_include_dir()
    lib = Path(tempfile.mkdtemp(prefix="umsnet_emu_")) / "libumsnet_emu.so"
    cmd = [CXX, "-std=c++20", "-O1", "-fPIC", "-shared", "-pthread", "-Wall", "-Wextra", "-Werror",
           "-Wno-unknown-pragmas", "-isystem", str(include), f"-I{EMU_DIR}", f"-I{ROOT / 'csrc' / 'cuda'}",
           str(EMU_DIR / "emulate_lsr_block.cpp"), "-o", str(lib)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"building the emulation failed:\n$ {' '.join(cmd)}\n{proc.stderr[-6000:]}")
    dll = ctypes.CDLL(str(lib))
    dll.umsnet_emulate_lsr_block.argtypes = [ctypes.POINTER(LsrBlockParams), ctypes.c_int, ctypes.c_int]
    dll.umsnet_emulate_lsr_block.restype = ctypes.c_int
    return dll


def emulated_lsr_block(path: int):
    """lsr_block_ref's signature, computed by the emulated kernel on the tensors' own strides."""
    def run(x, dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma, eps=1e-6):
        dll = emulator()
        out = torch.full(x.shape, float("nan"), dtype=x.dtype)
        ws = [dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma]
        assert all(w.is_contiguous() and w.dtype == x.dtype for w in ws)
        p = LsrBlockParams(x.data_ptr(), out.data_ptr(), *[w.data_ptr() for w in ws], x.shape[0], x.shape[1],
                           x.shape[2], w1.shape[0], dw_weight.shape[1], eps, *x.stride(), *out.stride())
        rc = dll.umsnet_emulate_lsr_block(ctypes.byref(p), DTYPE_CODES[x.dtype], path)
        assert rc == 0, f"emulated launch returned {rc}"
        return out
    return run


