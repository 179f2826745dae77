"""The CUDA LSR block kernels' device code, unchanged, run on the CPU by a small emulation of the CUDA
execution model (tests/cuda_emulation), against lsr_block_ref through umsnet_fast.testing.

This checks what can be checked without a GPU: tiling, halo and sample masking of the depthwise conv,
the LayerNorm, padding of odd widths, the hidden-dim chunking, the data flow from GEMM1's accumulators
into GEMM2's A operand, strides and the epilogue, for both the tensor-core kernel (fp16, bf16) and
the SIMT kernel (fp32, and fp16/bf16 as on sm_75). The MMA instruction itself is emulated from the
PTX ISA's register layouts; the real instruction, speed and the launcher run only on a GPU
(tests/test_cuda_backend.py). Needs g++ with C++20 and the CUDA toolkit's headers (nvcc's).
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from umsnet_fast.ops import lsr_block_ref
from umsnet_fast.testing import check_op

from lsr_block_cases import block_args, relayout

ROOT = Path(__file__).resolve().parents[1]
EMU_DIR = Path(__file__).resolve().parent / "cuda_emulation"
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


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    include = cuda_include_dir()
    if CXX is None or include is None:
        pytest.skip("needs g++ and the CUDA toolkit headers (nvcc on PATH) to build the kernel emulation")
    lib = tmp_path_factory.mktemp("emu") / "libumsnet_emu.so"
    cmd = [CXX, "-std=c++20", "-O1", "-fPIC", "-shared", "-pthread", "-Wall", "-Wextra", "-Werror",
           "-Wno-unknown-pragmas", "-isystem", str(include), f"-I{EMU_DIR}", f"-I{ROOT / 'csrc' / 'cuda'}",
           str(EMU_DIR / "emulate_lsr_block.cpp"), "-o", str(lib)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"building the emulation failed:\n$ {' '.join(cmd)}\n{proc.stderr[-6000:]}")
    dll = ctypes.CDLL(str(lib))
    dll.umsnet_emulate_lsr_block.argtypes = [ctypes.POINTER(LsrBlockParams), ctypes.c_int, ctypes.c_int]
    dll.umsnet_emulate_lsr_block.restype = ctypes.c_int
    return dll


def emulated_lsr_block(dll, path: int, layout: str = "contiguous"):
    """lsr_block_ref's signature, computed by the emulated kernel; x re-laid out first (see relayout)."""
    def run(x, dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma, eps=1e-6):
        x = relayout(x, layout)
        out = torch.full(x.shape, float("nan"), dtype=x.dtype)
        ws = [dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma]
        assert all(w.is_contiguous() and w.dtype == x.dtype for w in ws)
        p = LsrBlockParams(x.data_ptr(), out.data_ptr(), *[w.data_ptr() for w in ws], x.shape[0], x.shape[1],
                           x.shape[2], w1.shape[0], dw_weight.shape[1], eps, *x.stride(), *out.stride())
        rc = dll.umsnet_emulate_lsr_block(ctypes.byref(p), DTYPE_CODES[x.dtype], path)
        assert rc == 0, f"emulated launch returned {rc}"
        return out
    return run


F32, F16, BF16 = torch.float32, torch.float16, torch.bfloat16

# (dtype, (batch, length, C, k, layout)): widths 16, 24, 40, 64, 100, 128 (all four padded widths; H
# not a multiple of the hidden chunk), length 1, odd lengths, samples shorter than a tile, several
# tiles with a ragged last one (3 * 25 rows), k = 1 and 5, strided and transposed x. Every shape runs
# in one dtype, each dtype on several shapes: the emulation is slow (threads and barriers on the CPU).
MMA_CASES = [(F16, (3, 8, 16, 3, "contiguous")), (BF16, (3, 25, 24, 3, "transposed")),
             (F16, (1, 1, 40, 3, "contiguous")), (F16, (2, 13, 100, 5, "strided")),
             (BF16, (2, 9, 128, 3, "contiguous")), (BF16, (5, 3, 64, 1, "contiguous"))]
SIMT_CASES = [(F32, (3, 25, 16, 3, "contiguous")), (F32, (2, 9, 24, 3, "strided")),
              (BF16, (1, 1, 48, 3, "contiguous")), (F32, (1, 13, 100, 5, "transposed")),
              (F16, (1, 9, 128, 3, "contiguous")), (F32, (4, 7, 33, 3, "contiguous")),
              (BF16, (2, 5, 20, 3, "transposed"))]


def case_id(case) -> str:
    dtype, shape = case
    return f"{str(dtype).removeprefix('torch.')}-{shape}"


@pytest.mark.parametrize("case", MMA_CASES, ids=case_id)
def test_emulated_mma_kernel_matches_ref(emulator, case):
    dtype, (batch, length, c, k, layout) = case
    check_op(emulated_lsr_block(emulator, MMA, layout), lsr_block_ref, block_args(batch, length, c, k), dtype=dtype)


@pytest.mark.parametrize("case", SIMT_CASES, ids=case_id)
def test_emulated_simt_kernel_matches_ref(emulator, case):
    dtype, (batch, length, c, k, layout) = case
    check_op(emulated_lsr_block(emulator, SIMT, layout), lsr_block_ref, block_args(batch, length, c, k), dtype=dtype)
