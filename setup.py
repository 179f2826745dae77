"""Builds the optional C++/CUDA extensions; all metadata is in pyproject.toml.

Sources are discovered, so adding a kernel means adding files, not editing this:
  umsnet_fast._cpu   <- csrc/cpu_bindings.cpp + csrc/weight_watch.cpp + csrc/cpu/*.cpp  (C++17, OpenMP, -O3)
  umsnet_fast._cuda  <- csrc/cuda_bindings.cpp + csrc/cuda/*.cu    (needs nvcc and a CUDA torch)

Environment switches:
  UMSNET_FAST_SKIP_CPU_BUILD=1    do not build the CPU extension
  UMSNET_FAST_SKIP_CUDA_BUILD=1   do not build the CUDA extension
  UMSNET_FAST_FORCE_CUDA_BUILD=1  build it even with no GPU visible (still needs nvcc + a CUDA torch)
  UMSNET_FAST_CUDA_ARCHS="75;80;86;89;90"  SM list (PTX of the newest is embedded too)
  MAX_JOBS, NVCC_THREADS          parallelism of ninja and of nvcc
Without torch importable at build time (pip's default build isolation), no extension is built:
use `pip install --no-build-isolation .` to compile them against the torch you run.
"""
import glob
import json
import os
import sys

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CUDA_ARCHS = "75;80;86;89;90"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _say(msg: str) -> None:
    print(f"umsnet_fast setup: {msg}", file=sys.stderr)


def _sources(pattern: str) -> list:
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))


def _max_jobs() -> None:
    # ninja's default (cores + 2) can exhaust memory on big translation units; size it from both.
    if "MAX_JOBS" in os.environ:
        return
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gib = 8
    os.environ["MAX_JOBS"] = str(max(1, min(os.cpu_count() or 1, int(mem_gib // 4))))


BUILD_INFO = os.path.join(ROOT, "umsnet_fast", "_build_info.json")


def _extensions():
    # A record left by an earlier build would claim extensions this build does not make.
    if os.path.exists(BUILD_INFO):
        os.remove(BUILD_INFO)
    cpu_sources = _sources("csrc/cpu/*.cpp")
    cuda_sources = _sources("csrc/cuda/*.cu")
    if not cpu_sources and not cuda_sources:
        return [], {}
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError:
        _say("torch is not importable at build time; installing without the C++/CUDA extensions "
             "(use `pip install --no-build-isolation .` with torch installed to build them)")
        return [], {}

    _max_jobs()
    built_with = {"torch": torch.__version__, "cuda": torch.version.cuda, "extensions": []}
    common_cxx = ["-O3", "-std=c++17", "-fvisibility=hidden"]
    include_dirs = [os.path.join(ROOT, "csrc")]
    exts = []

    if cpu_sources and not _flag("UMSNET_FAST_SKIP_CPU_BUILD"):
        exts.append(cpp_extension.CppExtension(
            "umsnet_fast._cpu", ["csrc/cpu_bindings.cpp", "csrc/weight_watch.cpp", *cpu_sources],
            include_dirs=include_dirs,
            extra_compile_args=common_cxx + ["-fopenmp"], extra_link_args=["-fopenmp"]))
        built_with["extensions"].append("_cpu")
    elif cpu_sources:
        _say("UMSNET_FAST_SKIP_CPU_BUILD set: skipping the CPU extension")

    if cuda_sources and not _flag("UMSNET_FAST_SKIP_CUDA_BUILD"):
        have_gpu = torch.cuda.is_available() or _flag("UMSNET_FAST_FORCE_CUDA_BUILD")
        if torch.version.cuda is None:
            _say("this torch has no CUDA; skipping the CUDA extension")
        elif cpp_extension.CUDA_HOME is None:
            _say("nvcc / CUDA_HOME not found; skipping the CUDA extension")
        elif not have_gpu:
            _say("no GPU visible; skipping the CUDA extension (UMSNET_FAST_FORCE_CUDA_BUILD=1 builds it)")
        else:
            archs = [a.strip() for a in os.environ.get("UMSNET_FAST_CUDA_ARCHS", DEFAULT_CUDA_ARCHS).split(";")
                     if a.strip()]
            gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
            gencode.append(f"-gencode=arch=compute_{archs[-1]},code=compute_{archs[-1]}")  # PTX for newer GPUs
            # No --use_fast_math: fp32 must compute in true fp32 (exact division and sqrt, denormals kept).
            nvcc = ["-O3", "-std=c++17", "-lineinfo",
                    f"--threads={os.environ.get('NVCC_THREADS', '4')}", *gencode]
            exts.append(cpp_extension.CUDAExtension(
                "umsnet_fast._cuda", ["csrc/cuda_bindings.cpp", *cuda_sources], include_dirs=include_dirs,
                extra_compile_args={"cxx": common_cxx, "nvcc": nvcc}))
            built_with["extensions"].append("_cuda")
    elif cuda_sources:
        _say("UMSNET_FAST_SKIP_CUDA_BUILD set: skipping the CUDA extension")

    if not exts:
        return [], {}
    # Recorded so that an extension built for another torch is reported in words, not as a symbol error.
    with open(BUILD_INFO, "w") as f:
        json.dump(built_with, f)
    _say(f"building {', '.join(built_with['extensions'])} against torch {torch.__version__}")
    return exts, {"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = _extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass,
      package_data={"umsnet_fast": ["_build_info.json"]})
