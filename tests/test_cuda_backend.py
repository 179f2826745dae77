"""The `cuda` backend: the fused LSR block kernel's own cases (its SIMT path for fp16/bf16, widths beyond
it, bad input; every other case is in tests/ops/test_lsr_block.py), the whole model on it, and, on any
machine, the Python side (availability reasons, `auto`, explicit selection).

The `@pytest.mark.cuda` tests need a CUDA GPU and the built extension (umsnet_fast._cuda); elsewhere
they are skipped with the reason (tests/conftest.py).
"""
from __future__ import annotations

import functools
import warnings
from pathlib import Path

import pytest
import torch

from umsnet_fast import UMSNet, available_backends, presets
from umsnet_fast.backends import BACKEND_NAMES
from umsnet_fast.backends import cuda as cuda_backend
from umsnet_fast.ops import lsr_block_ref
from umsnet_fast.reference import UMSNet as ReferenceUMSNet
from umsnet_fast.testing import check_model, check_op, randomize_

from lsr_block_cases import block_args

DTYPES = [pytest.param(d, id=str(d).removeprefix("torch.")) for d in (torch.float32, torch.float16, torch.bfloat16)]


def cuda_unavailable_reason() -> str | None:
    return available_backends()["cuda"].reason


needs_backend = pytest.mark.skipif(cuda_unavailable_reason() is not None and torch.cuda.is_available(),
                                   reason=f"cuda backend unavailable: {cuda_unavailable_reason()}")


# ----------------------------------------------------------------------------- the kernel, on a GPU

@pytest.mark.cuda
@needs_backend
@pytest.mark.parametrize("dtype", [DTYPES[1], DTYPES[2]])
@pytest.mark.parametrize("shape", [(2, 9, 24), (3, 25, 128)], ids=str)
def test_lsr_block_simt_path_for_half_types(dtype, shape):
    # The fp32-compute path that bf16 takes on sm_75, exercised on whatever GPU runs the tests.
    check_op(functools.partial(cuda_backend.lsr_block, tensor_cores=False), lsr_block_ref, block_args(*shape),
             dtype=dtype, device="cuda")


@pytest.mark.cuda
@needs_backend
def test_lsr_block_wider_than_kernel_runs_reference():
    check_op(cuda_backend.lsr_block, lsr_block_ref, block_args(2, 5, 136), dtype=torch.float32, device="cuda")


@pytest.mark.cuda
@needs_backend
def test_lsr_block_empty_batch():
    args = [a.to("cuda", torch.float32) if isinstance(a, torch.Tensor) else a for a in block_args(1, 4, 16)]
    out = cuda_backend.lsr_block(args[0][:0], *args[1:])
    assert out.shape == (0, 4, 16)


@pytest.mark.cuda
@needs_backend
def test_lsr_block_bad_input_names_shapes():
    x, dw, lnw, lnb, w1, b1, w2, b2, gamma, eps = [
        a.to("cuda", torch.float32) if isinstance(a, torch.Tensor) else a for a in block_args(2, 5, 16)]
    with pytest.raises(RuntimeError, match=r"w2 must have shape \[16, 64\].*got \[64, 16\]"):
        cuda_backend.lsr_block(x, dw, lnw, lnb, w1, b1, w2.t().contiguous(), b2, gamma, eps)
    with pytest.raises(TypeError, match="gamma must have x's dtype"):
        cuda_backend.lsr_block(x, dw, lnw, lnb, w1, b1, w2, b2, gamma.half(), eps)
    with pytest.raises(RuntimeError, match="must be on x's device"):
        cuda_backend.lsr_block(x, dw, lnw, lnb, w1, b1, w2, b2, gamma.cpu(), eps)
    with pytest.raises(RuntimeError, match="kernel size k must be odd"):
        cuda_backend.lsr_block(x, torch.zeros(16, 2, device="cuda"), lnw, lnb, w1, b1, w2, b2, gamma, eps)
    with pytest.raises(RuntimeError, match=r"x must be \(batch, length, C\)"):
        cuda_backend.lsr_block(x[0], dw, lnw, lnb, w1, b1, w2, b2, gamma, eps)
    with pytest.raises(ValueError, match="must be on a CUDA device"):
        cuda_backend.lsr_block(x.cpu(), dw, lnw, lnb, w1, b1, w2, b2, gamma, eps)


@pytest.mark.cuda
@needs_backend
def test_lsr_block_path_names():
    ext = cuda_backend._extension()
    major, _ = torch.cuda.get_device_capability()
    assert ext.lsr_block_path("float32") == "simt-fp32"
    assert ext.lsr_block_path("float16") == ("mma.m16n8k16" if major >= 8 else "mma.m16n8k8")
    assert ext.lsr_block_path("bfloat16") == ("mma.m16n8k16" if major >= 8 else "simt-fp32")


# ----------------------------------------------------------------------------- the model, on a GPU

MODEL_CASES = [
    pytest.param(dict(variant="A"), 2, 4, id="hhar-A"),
    pytest.param(dict(variant="A", dims=(12, 24, 40, 100), fusion_dims=(20, 36, 52, 136)), 1, 1, id="odd-widths-K1"),
]


@pytest.mark.cuda
@needs_backend
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs,batch,k", MODEL_CASES)
def test_model_on_cuda_backend(dtype, kwargs, batch, k):
    p = presets.HHAR
    ref = randomize_(ReferenceUMSNet(p.sensors, p.num_classes, k, **kwargs), seed=3).eval()
    fast = UMSNet.from_reference(ref, backend="cuda")
    xs = p.example_inputs(batch, k, generator=torch.Generator().manual_seed(4))
    out = check_model(fast, ref, xs, dtype=dtype, device="cuda")
    assert out.shape == (batch, p.num_classes)


@pytest.mark.cuda
@needs_backend
def test_auto_picks_cuda_on_gpu_and_cuda_rejects_cpu_input():
    p = presets.HHAR
    model = UMSNet(p.sensors, p.num_classes, 2)
    infos = available_backends()
    ahead = [n for n in BACKEND_NAMES[:BACKEND_NAMES.index("cuda")] if infos[n].available]  # preferred to cuda
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        assert model.active_backend("cuda", dtype) in (*ahead, "cuda")
    model.backend = "cuda"
    with pytest.raises(ValueError, match="backend 'cuda' cannot run this input"):
        model.eval()(p.example_inputs(1, 2))


# ----------------------------------------------------------------------------- the Python side, anywhere

def test_available_backends_says_why_cuda_is_unavailable():
    info = available_backends()["cuda"]
    assert info.device_types == ("cuda",)
    assert info.dtypes == (torch.float32, torch.float16, torch.bfloat16)
    if info.available:
        pytest.skip("the cuda backend is available here")
    assert info.reason and ("CUDA" in info.reason or "umsnet_fast._cuda" in info.reason), info.reason
    if not torch.cuda.is_available():
        assert "CUDA" in info.reason  # the missing GPU / CUDA torch is named, not only the extension


def test_auto_on_cpu_never_picks_cuda():
    p = presets.HHAR
    model = randomize_(UMSNet(p.sensors, p.num_classes, 2)).eval()
    assert model.active_backend("cpu", torch.float32) != "cuda"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = model(p.example_inputs(1, 2))
    assert out.shape == (1, p.num_classes)
    # `auto` on CPU does not even consider cuda: no "cuda unavailable, falling back" warning
    assert not [w for w in caught if "'cuda'" in str(w.message)], [str(w.message) for w in caught]


@pytest.mark.skipif(cuda_unavailable_reason() is None, reason="the cuda backend is available here")
def test_explicit_cuda_backend_fails_with_the_reason():
    p = presets.HHAR
    reason = cuda_unavailable_reason()
    with pytest.raises(RuntimeError, match="backend 'cuda' is unavailable") as e:
        UMSNet(p.sensors, p.num_classes, 2, backend="cuda")
    assert reason in str(e.value)
    model = UMSNet(p.sensors, p.num_classes, 2)
    with pytest.raises(RuntimeError, match="backend 'cuda' is unavailable"):
        model.backend = "cuda"
    assert model.backend == "auto"


@pytest.mark.skipif(cuda_backend.load_extension("_cuda")[0] is not None, reason="the extension is built here")
def test_lsr_block_without_extension_says_why():
    with pytest.raises(RuntimeError, match="CUDA backend is unavailable: .*umsnet_fast._cuda"):
        cuda_backend.lsr_block(*block_args(1, 4, 16))


@pytest.mark.cuda
@needs_backend
@pytest.mark.parametrize("dtype", DTYPES)
def test_lsr_block_on_a_side_stream_and_under_torch_compile_reduce_overhead(dtype):
    """The kernel runs on the stream current at call time: a side stream, and under
    torch.compile(mode="reduce-overhead") the CUDA-graph capture's stream (not one traced as a constant)."""
    args = [a.to("cuda", dtype) if isinstance(a, torch.Tensor) else a for a in block_args(3, 25, 64)]
    expected = lsr_block_ref(*args)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        out = cuda_backend.lsr_block(*args)
    torch.cuda.current_stream().wait_stream(side)
    torch.testing.assert_close(out, expected, atol=5e-2, rtol=5e-2)

    compiled = torch.compile(lambda *a: cuda_backend.lsr_block(*a), mode="reduce-overhead", fullgraph=True)
    x = args[0]
    for step in range(4):  # cudagraph trees: warm-up, record, then replays
        x.normal_()
        torch.compiler.cudagraph_mark_step_begin()
        got = compiled(x, *args[1:]).clone()
        torch.testing.assert_close(got, cuda_backend.lsr_block(x, *args[1:]), atol=0, rtol=0,
                                   msg=f"call {step}")


def test_nvcc_flags_keep_true_fp32():
    """--use_fast_math (approximate division / sqrt, flushed denormals) would break the fp32 contract."""
    root = Path(__file__).resolve().parents[1]
    for name in ("setup.py", "CMakeLists.txt", "tests/test_cuda_compile.py"):
        text = "\n".join(line.split("#")[0] for line in (root / name).read_text().splitlines())
        assert "use_fast_math" not in text and "-ftz=true" not in text, name
