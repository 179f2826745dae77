"""The `triton` backend: registry behaviour, and the whole fast model on it against the reference.

Without a GPU the model runs on CPU tensors through Triton's interpreter (tests/conftest.py sets
TRITON_INTERPRET=1), on small configurations; the `@pytest.mark.cuda` tests run UMSNet-A itself.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

pytest.importorskip("triton")

from umsnet_fast import SensorSpec, UMSNet  # noqa: E402
from umsnet_fast.backends import BACKEND_NAMES, get_backend, resolve_backend  # noqa: E402
from umsnet_fast.kernels import _common  # noqa: E402
from umsnet_fast.ops import mlp_residual_ref  # noqa: E402
from umsnet_fast.presets import HHAR  # noqa: E402
from umsnet_fast.reference import UMSNet as ReferenceUMSNet  # noqa: E402
from umsnet_fast.testing import check_model, randomize_  # noqa: E402

DTYPES = [pytest.param(d, id=str(d).removeprefix("torch.")) for d in (torch.float32, torch.float16, torch.bfloat16)]
RUNS_ON_GPU = True  # the unmarked tests run on CUDA where there is a GPU (conftest.py: --gpu-suite keeps them)

# Small configurations for the interpreter: widths not powers of 2, two blocks in a stage, odd and
# minimal slice lengths, K = 1, batch 1.
SMALL = dict(dims=(12, 20, 24, 40), fusion_dims=(24, 24, 24, 40), depths=(1, 2, 1, 1), fusion_depths=(1, 1, 1, 1),
             num_layers=1, embed_dim=48, num_heads=2, mlp_dim=80)
CONFIGS = {
    # name: (sensors, num_slices, batch, slice lengths)
    "two_sensors_K3_L9": ([SensorSpec("acc", 3), SensorSpec("ecg", 2)], 3, 2, (9, 9)),
    "one_sensor_K1_L8_batch1": ([SensorSpec("mag", 5)], 1, 1, (8,)),
}


def device_under_test() -> str:
    return _common.runnable_device() or pytest.skip("needs a CUDA GPU, or TRITON_INTERPRET=1 set before "
                                                    "triton is imported")


def test_registered_before_reference():
    assert BACKEND_NAMES.index("triton") < BACKEND_NAMES.index("reference")
    b = get_backend("triton") if _common.runnable_device() else None
    if b is not None:
        assert b.auto_device_types == ("cuda",)
        assert set(b.ops().overridden) >= {"linear_layernorm", "lsr_block", "downsample", "layer_norm",
                                           "mlp_residual"}
        assert "float64" in b.input_unsupported_reason(torch.device("cpu"), torch.float64)


def test_auto_never_picks_triton_on_cpu():
    assert resolve_backend("auto", torch.device("cpu"), torch.float32).name != "triton"


def test_unavailable_without_gpu_or_interpreter_says_why():
    """A process with no GPU and no TRITON_INTERPRET: the backend says what to do, in words."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    code = textwrap.dedent("""
        import torch
        from umsnet_fast.backends import available_backends
        from umsnet_fast.backends.triton import BACKEND
        info = available_backends()["triton"]
        print(info.available)
        print(info.reason)
        print(BACKEND.input_unsupported_reason(torch.device("cpu"), torch.float32))
    """)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    available, reason, cpu_reason = out.stdout.strip().splitlines()
    assert available == "False"
    assert "no CUDA GPU" in reason and "TRITON_INTERPRET=1" in reason
    assert "TRITON_INTERPRET=1" in cpu_reason


def test_too_wide_rows_run_the_reference_op_with_a_warning():
    device = device_under_test()
    c, hidden = 520, 8  # wider than the MLP kernel's register tile (MAX_C = 512)
    g = torch.Generator().manual_seed(0)
    args = [torch.randn(s, generator=g).to(device) for s in ((3, c), (hidden, c), (hidden,), (c, hidden), (c,))]
    residual = torch.randn(3, c, generator=g).to(device)
    mlp = get_backend("triton").ops().mlp_residual
    with pytest.warns(RuntimeWarning, match="reference op"):
        out = mlp(*args, None, residual)
    torch.testing.assert_close(out, mlp_residual_ref(*args, None, residual))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_model_matches_reference(config, dtype):
    device = device_under_test()
    sensors, k, batch, lengths = CONFIGS[config]
    ref = randomize_(ReferenceUMSNet(sensors, 5, num_slices=k, **SMALL), seed=11).eval()
    fast = UMSNet.from_reference(ref, backend="triton").eval()
    g = torch.Generator().manual_seed(12)
    # the first sensor's window is a transposed view (time-major storage): non-contiguous input
    xs = [torch.randn(batch, k * length, s.channels, generator=g, dtype=torch.float64).transpose(1, 2)
          if i == 0 else torch.randn(batch, s.channels, k * length, generator=g, dtype=torch.float64)
          for i, (s, length) in enumerate(zip(sensors, lengths))]
    assert fast.active_backend(device, dtype) == "triton"
    out = check_model(fast, ref, [x.to(device) for x in xs], dtype=dtype, device=device)
    assert out.shape == (batch, 5)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_umsnet_a_hhar_cuda(dtype):
    ref = randomize_(ReferenceUMSNet(HHAR.sensors, HHAR.num_classes, num_slices=24, variant="A"), seed=13).eval()
    fast = UMSNet.from_reference(ref, backend="triton").eval()
    xs = [x.cuda() for x in HHAR.example_inputs(3, 24)]
    check_model(fast, ref, xs, dtype=dtype, device="cuda")


@pytest.mark.cuda
def test_tf32_opt_in_cuda(monkeypatch):
    """UMSNET_FAST_ALLOW_TF32=1 compiles the kernels' TF32 path; results stay close to true fp32."""
    ref = randomize_(ReferenceUMSNet(HHAR.sensors, HHAR.num_classes, num_slices=24, variant="A"), seed=14).eval()
    fast = UMSNet.from_reference(ref, backend="triton").cuda().eval()
    xs = [x.cuda() for x in HHAR.example_inputs(2, 24)]
    exact = fast(xs)
    monkeypatch.setenv(_common.TF32_ENV, "1")
    torch.testing.assert_close(fast(xs), exact, atol=5e-2, rtol=5e-2)


@pytest.mark.cuda
def test_cuda_graph_capture():
    """After a warm-up (autotuning, the fused/split choice), the forward captures into a CUDA graph."""
    ref = randomize_(ReferenceUMSNet(HHAR.sensors, HHAR.num_classes, num_slices=24, variant="A"), seed=15).eval()
    fast = UMSNet.from_reference(ref, backend="triton").cuda().eval()
    xs = [x.cuda() for x in HHAR.example_inputs(2, 24)]
    eager = fast(xs)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fast(xs)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = fast(xs)
    for x in xs:
        x.mul_(0.5)
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(captured, fast(xs), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(captured, eager)


def test_compiled_forward_runs_the_module_kernels_and_sees_weight_updates(recwarn):
    """umsnet_fast.compile over the triton backend (a CUDA graph on a GPU, the plain forward on CPU):
    the module kernels' packed weights are re-packed when a parameter changes, never stale."""
    import umsnet_fast
    from umsnet_fast.forward import REFERENCE_OPS
    from umsnet_fast.weights import ModelWeights

    device = device_under_test()
    sensors, k, batch, lengths = CONFIGS["two_sensors_K3_L9"]
    ref = randomize_(ReferenceUMSNet(sensors, 5, num_slices=k, **SMALL), seed=16).eval()
    fast = UMSNet.from_reference(ref, backend="triton").to(device).eval()
    compiled = umsnet_fast.compile(fast, batch_size=batch, slice_length=lengths[0], backend="triton",
                                   device=device, warmup=1)
    g = torch.Generator().manual_seed(17)
    xs = [torch.randn(batch, s.channels, k * n, generator=g).to(device) for s, n in zip(sensors, lengths)]

    def expected():
        return REFERENCE_OPS.forward(ModelWeights.from_model(fast), xs, k)

    torch.testing.assert_close(compiled(xs), expected(), atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        next(p for n, p in fast.named_parameters() if "stem" in n and n.endswith("bias")).add_(0.5)
    torch.testing.assert_close(compiled(xs), expected(), atol=1e-4, rtol=1e-4)
    assert not [w for w in recwarn if "per-block kernels" in str(w.message)]  # the module kernels ran


def test_modules_beyond_the_module_kernel_run_per_block_with_one_warning():
    """Five stages (the module kernel holds four): the sensor and fusion modules run on the per-block
    kernels, each reason warned about once, and the model still meets the contract."""
    import warnings

    device = device_under_test()
    config = dict(SMALL, dims=(12, 12, 16, 16, 20), depths=(1, 0, 1, 0, 1), fusion_dims=(24, 24, 24, 24, 40),
                  fusion_depths=(1, 0, 0, 0, 1))
    sensors = [SensorSpec("acc", 3)]
    ref = randomize_(ReferenceUMSNet(sensors, 5, num_slices=2, **config), seed=18).eval()
    fast = UMSNet.from_reference(ref, backend="triton").to(device).eval()
    xs = [torch.randn(1, 3, 2 * 16, generator=torch.Generator().manual_seed(19)).to(device)]
    get_backend("triton")._warned.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_model(fast, ref, xs, device=device)
        fast(xs)
    messages = [str(w.message) for w in caught if "per-block kernels" in str(w.message)]
    assert len(messages) == 2 and all("5 stages" in m for m in messages), messages
    assert "a sensor module" in messages[0] and "the fusion module" in messages[1]


def test_env_switch_runs_the_per_block_kernels(monkeypatch):
    """UMSNET_FAST_TRITON_MODULES=0 (read per call): no module kernel runs, same results."""
    from umsnet_fast.backends import triton as triton_backend
    from umsnet_fast.kernels import encoder_layer, lsr_module

    device = device_under_test()
    sensors, k, batch, lengths = CONFIGS["one_sensor_K1_L8_batch1"]
    ref = randomize_(ReferenceUMSNet(sensors, 5, num_slices=k, **SMALL), seed=20).eval()
    fast = UMSNet.from_reference(ref, backend="triton").to(device).eval()
    g = torch.Generator().manual_seed(21)
    xs = [torch.randn(batch, sensors[0].channels, k * lengths[0], generator=g).to(device)]
    modules = fast(xs)

    def refuse(*args, **kwargs):
        raise AssertionError("a module kernel ran")
    monkeypatch.setattr(lsr_module, "launch_lsr_module", refuse)
    monkeypatch.setattr(encoder_layer, "launch_encoder_layer", refuse)
    monkeypatch.setenv(triton_backend.MODULES_ENV, "0")
    torch.testing.assert_close(fast(xs), modules, atol=1e-4, rtol=1e-4)
    monkeypatch.delenv(triton_backend.MODULES_ENV)
    with pytest.raises(AssertionError, match="a module kernel ran"):
        fast(xs)


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_model_on_a_gpu_that_is_not_current():
    """Triton launches on the current device: the model makes its inputs' device current for the forward."""
    ref = randomize_(ReferenceUMSNet(HHAR.sensors, HHAR.num_classes, num_slices=2, variant="A"), seed=16).eval()
    fast = UMSNet.from_reference(ref, backend="triton").to("cuda:1").eval()
    xs = [x.to("cuda:1") for x in HHAR.example_inputs(2, 2)]
    with torch.cuda.device(0):
        out = fast(xs)
    assert out.device == torch.device("cuda:1")
    torch.testing.assert_close(out, ref.to("cuda:1")(xs), atol=1e-4, rtol=1e-4)
