"""Build checks of the CUDA sources that need no GPU (skipped with a message where nvcc is missing).

1. Every csrc/cuda/*.cu compiles with plain nvcc for sm_75, 80, 86, 89 and 90 (one nvcc call per file,
   all archs as -gencode), warnings as errors, with the macros torch's extension build adds.
2. CMake configures and builds the kernel library (sm_80), its torch-free GPU self-test and the
   Python extension from
   csrc/cuda_bindings.cpp against the installed torch (a CPU torch is enough: the bindings take the
   stream from Python, so they need only torch/extension.h and cuda_runtime_api.h), warnings as errors;
   the built module then loads in a fresh interpreter and registers torch.ops.umsnet_fast.lsr_block_cuda.
3. On a GPU only (@pytest.mark.cuda): the self-test, built with nvcc for that GPU, passes.
Takes about 3 to 4 minutes on 2 busy cores.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NVCC = shutil.which("nvcc")
CMAKE = shutil.which("cmake")
ARCHS = ("75", "80", "86", "89", "90")
CU_SOURCES = sorted((ROOT / "csrc" / "cuda").glob("*.cu"))
# What torch.utils.cpp_extension adds to every nvcc call (COMMON_NVCC_FLAGS): the kernels must build with it.
TORCH_NVCC_FLAGS = ["-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__",
                    "-D__CUDA_NO_BFLOAT16_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__", "--expt-relaxed-constexpr"]

pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc not found on PATH: the CUDA sources cannot be compiled here")


def run(cmd: list[str], what: str, cwd: Path | None = None, timeout: int = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"{what} failed (exit {proc.returncode}):\n$ {' '.join(cmd)}\n{proc.stdout[-4000:]}\n"
                    f"{proc.stderr[-8000:]}")
    return proc.stdout + proc.stderr


def test_there_are_cuda_sources():
    assert CU_SOURCES, "no csrc/cuda/*.cu found"


@pytest.mark.parametrize("source", CU_SOURCES, ids=lambda p: p.name)
def test_nvcc_compiles_for_every_arch(source, tmp_path):
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in ARCHS]
    out = run([NVCC, "-c", "-O3", "-std=c++17", "-Werror", "all-warnings",
               "-Xcompiler", "-Wall,-Wextra,-Werror", *TORCH_NVCC_FLAGS, *gencode, "-Xptxas", "-warn-spills",
               "--threads", "2",
               f"-I{ROOT / 'csrc' / 'cuda'}", str(source), "-o", str(tmp_path / (source.stem + ".o"))],
              f"nvcc {source.name}")
    assert (tmp_path / (source.stem + ".o")).stat().st_size > 0, out


@pytest.mark.skipif(CMAKE is None, reason="cmake not found on PATH")
def test_cmake_builds_kernel_library_and_extension(tmp_path):
    pytest.importorskip("torch")
    build = tmp_path / "build"
    run([CMAKE, "-S", str(ROOT), "-B", str(build), f"-DPython3_EXECUTABLE={sys.executable}",
         "-DCMAKE_CUDA_ARCHITECTURES=80", "-DCMAKE_CXX_FLAGS=-Wall -Wextra -Werror",
         "-DCMAKE_CUDA_FLAGS=-Werror all-warnings"], "cmake configure")
    log = run([CMAKE, "--build", str(build), "-j", str(min(2, os.cpu_count() or 1))], "cmake build")
    assert list(build.glob("libumsnet_fast_cuda_kernels.a")), log
    modules = list(build.glob("_cuda*.so"))
    assert modules, f"the Python extension was not built:\n{log}"
    # Load it in a fresh interpreter: the op schema parses, the module initialises.
    check = textwrap.dedent(f"""
        import importlib.util, torch
        spec = importlib.util.spec_from_file_location("umsnet_fast._cuda", {str(modules[0])!r})
        m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
        schema = str(torch.ops.umsnet_fast.lsr_block_cuda.default._schema)
        assert "float eps, int stream, bool tensor_cores=True) -> Tensor" in schema, schema
        assert m.LSR_MAX_WIDTH == 128, m.LSR_MAX_WIDTH
        print(m.lsr_block_path("bfloat16"))
    """)
    out = run([sys.executable, "-c", check], "loading the CMake-built extension")
    assert (build / "umsnet_fast_lsr_block_selftest").exists(), log
    if not torch_sees_gpu():
        assert "no CUDA device" in out, out


@pytest.mark.cuda
def test_selftest_passes_on_this_gpu(tmp_path):
    """The torch-free self-test (csrc/selftest) built with plain nvcc for this GPU, run: every dtype,
    both kernel paths, against a float64 CPU reference."""
    exe = tmp_path / "lsr_block_selftest"
    run([NVCC, "-O3", "-std=c++17", "-arch=native", f"-I{ROOT / 'csrc' / 'cuda'}",
         str(ROOT / "csrc" / "selftest" / "lsr_block_selftest.cu"), *map(str, CU_SOURCES), "-o", str(exe)],
        "nvcc lsr_block_selftest")
    print(run([str(exe)], "lsr_block_selftest"))


def torch_sees_gpu() -> bool:
    import torch
    return torch.cuda.is_available()
