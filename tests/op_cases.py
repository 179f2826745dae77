"""What every op test (tests/ops/test_<op>.py) shares: who implements an op, in which dtypes and on which device;
one list of awkward shapes per op; the memory layouts; the inputs.

An op's implementations are found, not listed: every backend whose OpSet overrides the op (the cpu
backend once per instruction-set build this CPU runs, triton on CUDA or under the interpreter, cuda on a
GPU), the reference ops themselves, and for `lsr_block` the CUDA kernels' device code run on the CPU by
the emulation of tests/cuda_emulation. A new backend gets every case of every op it overrides for free.
Each case runs the implementation at a dtype the backend declares and checks it against the op's *_ref
through umsnet_fast.testing (at the same dtype, and in float64 as the oracle).
"""
from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import torch

from umsnet_fast import _extensions, backends
from umsnet_fast.forward import PRIMITIVE_OPS, REFERENCE_OPS

FP32, FP16, BF16 = torch.float32, torch.float16, torch.bfloat16
LAYOUTS = ("contiguous", "transposed", "strided", "padded")
FILL = float("nan")  # what strided / padded layouts hold between and after the elements: any leak shows


def dtype_id(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def relayout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """x's values in another memory layout: contiguous; transposed (channel stride != 1, as a
    channels-first tensor's transpose); strided (every other element of a bigger buffer); padded
    (rows of a wider buffer). The gaps hold FILL."""
    if layout == "contiguous":
        return x.contiguous()
    if layout == "transposed":
        return x.transpose(-1, -2).contiguous().transpose(-1, -2) if x.dim() > 1 else x
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    c = x.shape[-1]
    width, cut = (2 * c + 1, slice(1, None, 2)) if layout == "strided" else (c + 23, slice(0, c))
    out = torch.full((*x.shape[:-1], width), FILL, dtype=x.dtype, device=x.device)[..., cut]
    return out.copy_(x)


def with_layout(op: Callable, layout: str, which=(0,)) -> Callable:
    """op, with its tensor arguments at positions `which` re-laid out (after check_op's dtype cast,
    which makes them contiguous)."""
    def run(*args, **kwargs):
        return op(*[relayout(a, layout) if i in which else a for i, a in enumerate(args)], **kwargs)
    return run


def make_input(shape: tuple, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ---------------------------------------------------------------------------------------------------
# implementations


@dataclass(frozen=True)
class Impl:
    """One implementation of an op: `fn` has the op's *_ref signature, runs on `device` in `dtypes`."""

    name: str
    fn: Callable | None
    device: str = "cpu"
    dtypes: tuple[torch.dtype, ...] = (FP32,)
    marks: tuple = ()
    # set-up around each call (the cpu backend's instruction-set switch)
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    # slow implementations (the CUDA emulation) run each shape in one dtype, cycling, not all of them
    sparse: bool = False
    accepts: Callable[[tuple], bool] = field(default=lambda shape: True)

    def __call__(self, *args, **kwargs):
        with self.context():
            return self.fn(*args, **kwargs)


def _skipped(name: str, reason: str) -> Impl:
    return Impl(name, None, marks=(pytest.mark.skip(reason=reason),))


def _cpu_impls(fn: Callable, dtypes) -> Iterator[Impl]:
    """The cpu backend's op once per instruction-set build this CPU runs (the portable one included)."""
    ext, _ = _extensions.load_extension("_cpu")

    def isa_context(isa):
        @contextlib.contextmanager
        def use():
            ext.set_isa(isa)
            try:
                yield
            finally:
                ext.set_isa("auto")
        return use

    for isa in ext.supported_isas():
        yield Impl(f"cpu-{isa}", fn, "cpu", dtypes, context=isa_context(isa))


def _backend_impls(op: str) -> Iterator[Impl]:
    """Every backend whose OpSet replaces `op` with its own kernel."""
    info = backends.available_backends()
    for name in backends.BACKEND_NAMES:
        if name == "reference":
            continue
        backend = backends.backend_instance(name)
        if backend is None:
            yield _skipped(name, f"{name} backend does not import: {info[name].reason}")
            continue
        ops = backend.ops()
        fn = getattr(ops, op)
        if op not in ops.overridden or fn is getattr(REFERENCE_OPS, op):
            continue  # the default composition or the reference op itself: nothing of the backend's own
        if "cpu" not in backend.device_types and not torch.cuda.is_available():
            # a GPU backend on a machine without one: its cases are listed and skipped (tests/conftest.py)
            yield Impl(name, fn, "cuda", backend.dtypes, (pytest.mark.cuda,))
        elif not info[name].available:
            yield _skipped(name, f"{name} backend unavailable: {info[name].reason}")
        elif name == "cpu":
            yield from _cpu_impls(fn, backend.dtypes)
        else:  # triton: on the GPU, or on CPU tensors under TRITON_INTERPRET=1
            device = "cuda" if "cuda" in backend.device_types and torch.cuda.is_available() else "cpu"
            yield Impl(name, fn, device, backend.dtypes)


def implementations(op: str) -> list[Impl]:
    """The reference op (checks dtype, shape and layout handling of the oracle itself), every backend's
    kernel for op, and for lsr_block the emulated CUDA kernels."""
    impls = [Impl("reference", getattr(REFERENCE_OPS, op), "cpu", (FP32, BF16))]
    impls += _backend_impls(op)
    if op == "lsr_block":
        impls += _cuda_emulation_impls()
    return impls


def _cuda_emulation_impls() -> list[Impl]:
    from cuda_emulation.emulator import MMA, SIMT, emulated_lsr_block, emulator_unavailable_reason

    reason = emulator_unavailable_reason()
    if reason is not None:
        return [_skipped("cuda-emulation", reason)]
    # what the kernels hold: C <= 128 (wider blocks run the reference op); few rows (the emulation is slow)
    small = lambda shape: shape[2] <= 128 and shape[0] * shape[1] <= 200  # noqa: E731
    return [Impl("cuda-emulation-mma", emulated_lsr_block(MMA), "cpu", (FP16, BF16), sparse=True, accepts=small),
            Impl("cuda-emulation-simt", emulated_lsr_block(SIMT), "cpu", (FP32, FP16, BF16), sparse=True,
                 accepts=small)]


def op_cases(op: str, shapes: list[tuple]) -> list:
    """pytest params (impl, dtype, shape, layout) for `op`: every implementation x its dtypes x shapes,
    the layouts cycling over the shapes so that each implementation sees all of them."""
    params = []
    dtype_cycle = itertools.count()
    for impl in implementations(op):
        if impl.fn is None:
            params.append(pytest.param(impl, FP32, shapes[0], "contiguous", id=impl.name, marks=impl.marks))
            continue
        for i, shape in enumerate(shapes):
            if not impl.accepts(shape):
                continue
            layout = LAYOUTS[i % len(LAYOUTS)]
            dtypes = impl.dtypes
            if impl.sparse:
                dtypes = (dtypes[next(dtype_cycle) % len(dtypes)],)
            for dtype in dtypes:
                params.append(pytest.param(impl, dtype, shape, layout, marks=impl.marks,
                                           id=f"{impl.name}-{dtype_id(dtype)}-{shape}-{layout}"))
    return params


def primitive_ops() -> list[str]:
    return list(PRIMITIVE_OPS)
