"""Pieces shared by the Triton kernels: interpreter detection, exact GELU, the masked LayerNorm of a
row tile, the fp32 precision opt-in, launcher checks, autotuning configs and the autotuner.

Precision: fp32 inputs go through tl.dot with input_precision="ieee" (true fp32), unless the caller
passes allow_tf32=True or the environment has UMSNET_FAST_ALLOW_TF32=1 (then "tf32": faster tensor
cores, ~1e-3 relative error). fp16/bf16 inputs always accumulate in fp32, and every LayerNorm
computes its statistics in fp32.
"""
from __future__ import annotations

import math
import os
import weakref

import torch
import triton
import triton.language as tl
import triton.testing


@triton.jit
def _probe():
    pass


# True when these kernels were defined under TRITON_INTERPRET=1 (Triton reads it when @triton.jit
# runs, i.e. when umsnet_fast.kernels is imported): they then run on CPU tensors through Triton's
# numpy interpreter, slowly, for testing.
INTERPRET: bool = type(_probe).__name__ == "InterpretedFunction"



def runnable_device() -> str | None:
    """Where these kernels run in this process: "cpu" under the interpreter, else "cuda" when a GPU is
    visible, else None."""
    if INTERPRET:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else None


TF32_ENV = "UMSNET_FAST_ALLOW_TF32"
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
MIN_DOT = 16  # tl.dot needs M, N, K >= 16 on NVIDIA GPUs (the interpreter accepts less: never rely on it)

# Triton's interpreter (3.9 at least) multiplies bf16 dot operands as their raw uint16 bit patterns.
# Under the interpreter only, bf16 operands are widened to fp32 first: bf16 x bf16 products are exact
# in fp32, so this computes what a GPU's bf16 dot with fp32 accumulation does.
_BF16_DOT_IN_FP32 = tl.constexpr(INTERPRET)


@triton.jit
def gelu(x):
    """Exact (erf) GELU, as torch.nn.functional.gelu's default. x: fp32 block."""
    return 0.5 * x * (1.0 + tl.erf(x * 0.7071067811865476))


@triton.jit
def dot(a, b, acc, DOT_PRECISION: tl.constexpr):
    """acc + a @ b with fp32 accumulation (acc fp32 or None); DOT_PRECISION as from dot_precision()."""
    if _BF16_DOT_IN_FP32:
        if a.dtype == tl.bfloat16:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
    return tl.dot(a, b, acc, input_precision=DOT_PRECISION)


@triton.jit
def row_tile(M, C, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
    """This program's BLOCK_M rows of M and all BLOCK_C lanes of C: (rows, row_mask, cols, col_mask)."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_C)
    return rows, rows < M, cols, cols < C


@triton.jit
def layernorm_rows(y, col_mask, C, lnw_ptr, lnb_ptr, cols, eps):
    """LayerNorm over axis 1 of an fp32 tile y [BLOCK_M, BLOCK_C] whose lanes beyond C are 0.

    Masked lanes are kept out of the variance (the mean is exact since they are 0); the result is 0
    in masked lanes, so it can feed a tl.dot directly. lnw_ptr/lnb_ptr: (C,) contiguous.
    """
    mean = tl.sum(y, axis=1) / C
    diff = tl.where(col_mask[None, :], y - mean[:, None], 0.0)
    rstd = tl.rsqrt(tl.sum(diff * diff, axis=1) / C + eps)
    lnw = tl.load(lnw_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)
    lnb = tl.load(lnb_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)
    return diff * rstd[:, None] * lnw[None, :] + lnb[None, :]


def dot_precision(dtype: torch.dtype, allow_tf32: bool | None) -> str:
    """tl.dot's input_precision for operands of this dtype ("ieee" = true fp32 for fp32 inputs).

    allow_tf32 None reads UMSNET_FAST_ALLOW_TF32 (1 = allow). 16-bit operands use Triton's default.
    """
    if dtype != torch.float32:
        return "tf32"  # Triton's default; ignored for fp16/bf16 operands
    if allow_tf32 is None:
        allow_tf32 = os.environ.get(TF32_ENV, "0") == "1"
    return "tf32" if allow_tf32 else "ieee"


def block_size(n: int, minimum: int = 1) -> int:
    """The power-of-2 block that covers n (Triton's aranges must be powers of 2), at least `minimum`."""
    return max(triton.next_power_of_2(max(n, 1)), minimum)


def check_tensor(name: str, t, ndim: int | None = None, shape: tuple | None = None, *,
                 like: torch.Tensor | None = None) -> None:
    """Raise a clear TypeError/ValueError unless t is a floating tensor of the expected rank/shape,
    with like's dtype and device (when given). shape entries of None match any size."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor, got {type(t).__name__}")
    if like is None and t.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name}: dtype {t.dtype} is not supported (expected one of "
                        f"{', '.join(str(d) for d in SUPPORTED_DTYPES)})")
    if like is not None and t.dtype != like.dtype:
        raise TypeError(f"{name}: dtype {t.dtype}, expected {like.dtype} (the input's dtype)")
    if like is not None and t.device != like.device:
        raise ValueError(f"{name}: on {t.device}, expected {like.device} (the input's device)")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D tensor, got shape {tuple(t.shape)}")
    if shape is not None and (t.dim() != len(shape) or
                              any(s is not None and s != g for s, g in zip(shape, t.shape))):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name}: expected shape {want}, got {tuple(t.shape)}")
    if like is None and t.device.type != "cuda" and not INTERPRET:
        raise ValueError(f"{name}: on {t.device}; the Triton kernels run on CUDA tensors, or on CPU "
                         "tensors when TRITON_INTERPRET=1 was set before umsnet_fast.kernels was imported")


# how many configs each autotune_configs() call was given (on a GPU): bench/device_check.sh runs one
# smoke process per config index up to the largest
GPU_CONFIG_COUNTS: list[int] = []


def autotune_configs(options: list[dict], interpret: dict) -> list[triton.Config]:
    """triton.Configs from dicts of meta-parameters (+ num_warps/num_stages). Under the interpreter a
    single config (`interpret`), so Triton's autotuner does not benchmark."""
    GPU_CONFIG_COUNTS.append(len(options))
    if INTERPRET:
        return [triton.Config(interpret)]
    out = []
    for o in options:
        o = dict(o)
        warps, stages = o.pop("num_warps", 4), o.pop("num_stages", 2)
        out.append(triton.Config(o, num_warps=warps, num_stages=stages))
    return out


def prune_by_footprint(budget_bytes: int = 100 * 1024):
    """triton.autotune's prune_configs_by for the row-tile MLP kernels: drop configs whose tiles (the
    h rows [BLOCK_M, BLOCK_C] and one w1 and one w2 chunk [BLOCK_C, BLOCK_H]) exceed budget_bytes, a
    proxy for shared memory and registers (it keeps the fp32 C = 256 tiles within what sm_80/sm_90
    can hold and out of slow-to-compile spills); the smallest config always stays."""
    def footprint(config, block_c, elem):
        return elem * block_c * (config.kwargs["BLOCK_M"] + 2 * config.kwargs["BLOCK_H"])

    def prune(configs, named_args, **kwargs):
        block_c = kwargs.get("BLOCK_C") or block_size(named_args["C"], MIN_DOT)
        elem = named_args["w1_ptr"].element_size()
        fits = [c for c in configs if footprint(c, block_c, elem) <= budget_bytes]
        return fits or [min(configs, key=lambda c: footprint(c, block_c, elem))]
    return {"early_config_prune": prune}


# -- autotuning ------------------------------------------------------------------------------------
AUTOTUNE_ENV = "UMSNET_FAST_AUTOTUNE"


def autotune_mode() -> int | None:
    """What UMSNET_FAST_AUTOTUNE asks for: None = tune (unset, "1"); i = use candidate i of every kernel
    without timing anything ("0" = the first; "config:i" = the i-th, modulo each kernel's count: runs
    each config in turn, e.g. to check them all or to fill Triton's compile cache in parallel)."""
    value = os.environ.get(AUTOTUNE_ENV, "").strip().lower()
    if value in ("", "1", "on"):
        return None
    if value in ("0", "off"):
        return 0
    if value.startswith("config:") and value[7:].isdigit():
        return int(value[7:])
    raise ValueError(f"{AUTOTUNE_ENV}={value!r}: expected 1 (tune, the default), 0 (first config, no "
                     "timing) or config:<i> (the i-th config of every kernel, no timing)")


def row_bucket(rows: int) -> int:
    """The autotuning key of a row count: the next power of 2. A kernel is tuned once per bucket, so a
    new batch size re-tunes only when it crosses a power of 2 (batch 1..4096: at most 13 tunings)."""
    return triton.next_power_of_2(max(int(rows), 1))


def capturing() -> bool:
    """True while a CUDA graph is being captured on the current stream (nothing may be timed then)."""
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def _tuning_errors() -> tuple[type, ...]:
    # A config that does not fit (shared memory, registers, ptxas) loses instead of failing the call.
    from triton.runtime import errors
    names = ("OutOfResources", "PTXASError")
    found = [getattr(errors, n) for n in names if hasattr(errors, n)]
    try:
        from triton.compiler.errors import CompileTimeAssertionFailure
        found.append(CompileTimeAssertionFailure)
    except ImportError:
        pass
    return tuple(found)


class Autotuned:
    """`kernel[grid](...)` like triton.autotune, for these row-tile kernels, with two differences:

    - the key's row-count arguments (`rows`, e.g. "M") are bucketed with row_bucket, so batch sizes of
      one bucket share a tuning (triton.autotune re-tunes at every new row count);
    - nothing is timed while a CUDA graph is being captured: an untuned key then launches the first
      candidate config, without remembering it (the first call outside a capture tunes).

    UMSNET_FAST_AUTOTUNE (autotune_mode) switches timing off. Candidates are the configs that
    prune_configs_by["early_config_prune"] keeps (same signature as triton.autotune's). Attributes:
    `fn` (the JITFunction), `configs`, `cache` (key -> chosen config), `timings` (of the last tuning).
    """

    # milliseconds per call of fn (median); a class attribute so that tests can replace it
    bench = staticmethod(lambda fn: triton.testing.do_bench(fn, warmup=5, rep=20, return_mode="median"))
    instances: weakref.WeakSet[Autotuned] = weakref.WeakSet()

    def __init__(self, fn, configs: list, key: list[str], rows: tuple[str, ...] = ("M",),
                 prune_configs_by: dict | None = None):
        missing = sorted({k for k in (*key, *rows) if k not in fn.arg_names})
        if missing or not set(rows) <= set(key):
            raise ValueError(f"autotune {fn.__name__}: key {key} and rows {rows} must name arguments of the "
                             f"kernel (missing {missing}); rows must be part of the key")
        self.fn, self.configs, self.keys, self.rows = fn, list(configs), list(key), frozenset(rows)
        self._prune = (prune_configs_by or {}).get("early_config_prune")
        self.cache: dict[tuple, triton.Config] = {}
        self.timings: dict[triton.Config, float] = {}
        Autotuned.instances.add(self)

    def key(self, named: dict) -> tuple:
        """The tuning key of these (named) arguments: key values, row counts bucketed, tensor dtypes."""
        key = [row_bucket(named[k]) if k in self.rows else named[k] for k in self.keys]
        key += [str(v.dtype) for v in named.values() if hasattr(v, "dtype")]
        return tuple(key)

    def candidates(self, named: dict, kwargs: dict) -> list:
        if self._prune is None or len(self.configs) < 2:
            return self.configs
        return self._prune(self.configs, named, **kwargs) or self.configs[:1]

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.run(grid, args, kwargs)

    def run(self, grid, args: tuple, kwargs: dict):
        named = dict(zip(self.fn.arg_names, args))
        key = self.key({**named, **kwargs})
        config = self.cache.get(key)
        if config is None:
            config = self._choose(grid, args, kwargs, named, key)
        return self.fn[grid](*args, **kwargs, **config.all_kwargs())

    def _choose(self, grid, args, kwargs, named, key) -> triton.Config:
        candidates = self.candidates(named, kwargs)
        forced = autotune_mode()
        if forced is not None:
            return candidates[forced % len(candidates)]
        if len(candidates) == 1:
            self.cache[key] = candidates[0]
            return candidates[0]
        if capturing():
            return candidates[0]
        errors = _tuning_errors()
        timings = {}
        for config in candidates:
            try:
                timings[config] = self.bench(lambda c=config: self.fn[grid](*args, **kwargs, **c.all_kwargs()))
            except errors:
                timings[config] = math.inf
        self.timings = timings
        self.cache[key] = min(timings, key=timings.get)
        return self.cache[key]


def autotune(configs: list, key: list[str], rows: tuple[str, ...] = ("M",), prune_configs_by: dict | None = None):
    """Decorator: `@autotune(configs=..., key=[...])` above `@triton.jit`, in place of triton.autotune
    (see Autotuned: row-count keys bucketed, no timing during a CUDA-graph capture)."""
    def wrap(fn):
        return Autotuned(fn, configs, key, rows, prune_configs_by)
    return wrap
