"""The `cpu` backend (csrc/cpu, umsnet_fast._cpu): the whole model against the reference (numerics
contract of DESIGN.md section 3), every instruction-set build this CPU runs (the portable one included),
repacking after parameter changes, and the fallback when the extension is missing or was built for
another torch. Each op against its *_ref on every ISA build:
tests/ops."""
from __future__ import annotations

import copy
import functools
import math
import warnings

import pytest
import torch
import torch.nn as nn

import umsnet_fast
from umsnet_fast import UMSNet, _extensions, backends, presets
from umsnet_fast.reference import LSRModule
from umsnet_fast.reference import UMSNet as ReferenceUMSNet
from umsnet_fast.testing import check_model, randomize_
from umsnet_fast.weights import LSRModuleWeights

_EXT, _REASON = _extensions.load_extension("_cpu")
needs_ext = pytest.mark.skipif(_EXT is None, reason=f"cpu extension unavailable: {_REASON}")
ISAS = _EXT.supported_isas() if _EXT is not None else []
BF16 = torch.bfloat16

if _EXT is not None:
    from umsnet_fast.backends import cpu as C


@pytest.fixture(params=ISAS or ["none"])
def isa(request):
    """Run the test under each instruction-set build this CPU supports, then restore `auto`."""
    if _EXT is None:
        pytest.skip(f"cpu extension unavailable: {_REASON}")
    _EXT.set_isa(request.param)
    yield request.param
    _EXT.set_isa("auto")


def _noncontig(x: torch.Tensor) -> torch.Tensor:
    """The same values as x, as a strided view of a bigger tensor."""
    big = torch.zeros(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype)
    big[..., ::2] = x
    return big[..., ::2]


# ---- single ops: tests/ops/test_<op>.py runs every op on every ISA build (and every backend)

@needs_ext
def test_bad_input_names_the_shape():
    blk = C.pack_block(LSRModuleWeights.from_module(LSRModule(3, (16,), [1], downsample_kernel=2)).stages[0][0])
    with pytest.raises(RuntimeError, match=r"expected x \(batch, length, 16\)"):
        _EXT.lsr_block(torch.randn(2, 5, 17), blk)
    with pytest.raises(RuntimeError, match="expected float32"):
        _EXT.lsr_block(torch.randn(2, 5, 16, dtype=torch.float64), blk)
    with pytest.raises(RuntimeError, match="not supported|unknown"):
        _EXT.set_isa("sse9")


@needs_ext
def test_isa_selection_follows_the_cpu():
    """AMX only where the CPU reports amx_tile and amx_bf16 (it would fault elsewhere); auto takes the best
    build this CPU runs, and names its bf16 path."""
    supported = _EXT.supported_isas()
    _EXT.set_isa("auto")
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            flags = {w for line in f if line.startswith("flags") for w in line.split()}
    except OSError:
        pass
    if "amx" in supported:
        assert not flags or {"amx_tile", "amx_bf16"} <= flags
    else:
        with pytest.raises(RuntimeError, match="not supported"):
            _EXT.set_isa("amx")
    if flags and "avx512_bf16" not in flags:
        assert "avx512bf16" not in supported
    assert _EXT.isa() == supported[0]
    assert _EXT.bf16_path() in backends.get_backend("cpu").summary


# ---- whole model --------------------------------------------------------------------------------

def _pair(preset, k, variant="A"):
    ref = randomize_(ReferenceUMSNet(**preset.model_kwargs(k), variant=variant)).eval()
    return UMSNet.from_reference(ref, backend="cpu").eval(), ref


@functools.cache
def _shared_pair(preset_name, k, variant="A"):
    """A (fast, reference) pair built once per session, for tests that do not change the weights
    (check_model works on copies)."""
    return _pair(presets.get_preset(preset_name), k, variant)


@needs_ext
@pytest.mark.parametrize("preset", [presets.HHAR, presets.MHEALTH], ids=lambda p: p.name)
@pytest.mark.parametrize("variant", ["A", "B", "C"])
def test_model_variants(preset, variant):
    k = 2 if preset is presets.HHAR else 1  # MHEALTH: eight sensor modules; K = 1 covers that case too
    fast, ref = _shared_pair(preset.name, k, variant)
    xs = preset.example_inputs(1, k)
    fast(xs)  # packed weights cached: check_model's deepcopy must still work
    check_model(fast, ref, xs)


@needs_ext
@pytest.mark.parametrize("preset", [presets.HHAR, presets.MHEALTH], ids=lambda p: p.name)
@pytest.mark.parametrize("variant", ["A", "B", "C"])
def test_model_variants_bf16(preset, variant):
    """A bf16 model with bf16 inputs: bf16 weights packed once (VNNI pairs), logits in bf16."""
    k = 2 if preset is presets.HHAR else 1
    fast, ref = _shared_pair(preset.name, k, variant)
    out = check_model(fast, ref, preset.example_inputs(1, k), dtype=torch.bfloat16)
    assert out.dtype == torch.bfloat16


@needs_ext
def test_model_bf16_all_isas(isa):
    """The whole bf16 model under each build: vdpbf16ps (avx512bf16), the portable widening path (the
    others), AMX where present; batch 3 over odd slice lengths, non-contiguous inputs."""
    fast, ref = _shared_pair("hhar", 3)
    xs = [_noncontig(x) for x in presets.HHAR.example_inputs(3, 3)]
    check_model(fast, ref, xs, dtype=torch.bfloat16)


@needs_ext
def test_model_bf16_odd_widths_and_lengths():
    sensors = [umsnet_fast.SensorSpec("a", 3), umsnet_fast.SensorSpec("b", 2)]
    ref = randomize_(ReferenceUMSNet(sensors, 5, 3, "A", dims=(12, 20, 36, 52), fusion_dims=(24, 40, 40, 56),
                                     embed_dim=48, num_heads=3, mlp_dim=80)).eval()
    fast = UMSNet.from_reference(ref, backend="cpu").eval()
    check_model(fast, ref, [torch.randn(9, s.channels, 3 * 11) for s in sensors], dtype=torch.bfloat16)


@needs_ext
@pytest.mark.parametrize("batch", [1, 257])
def test_model_batch(batch):
    fast, ref = _shared_pair("hhar", 3)
    check_model(fast, ref, presets.HHAR.example_inputs(batch, 3))


@needs_ext
def test_model_all_isas(isa):
    fast, ref = _shared_pair("hhar", 3)
    check_model(fast, ref, presets.HHAR.example_inputs(2, 3))


@needs_ext
@pytest.mark.parametrize("k,length", [(3, 11), (1, 8)])
def test_model_odd_widths_and_lengths(k, length):
    sensors = [umsnet_fast.SensorSpec("a", 3), umsnet_fast.SensorSpec("b", 2), umsnet_fast.SensorSpec("c", 1)]
    ref = randomize_(ReferenceUMSNet(sensors, 5, k, "A", dims=(12, 20, 36, 52), fusion_dims=(24, 40, 40, 56),
                                     embed_dim=48, num_heads=3, mlp_dim=80)).eval()
    fast = UMSNet.from_reference(ref, backend="cpu").eval()
    xs = [torch.randn(3, s.channels, k * length) for s in sensors]
    check_model(fast, ref, xs)


@needs_ext
@pytest.mark.parametrize("depths,num_layers", [((1, 0, 2, 1), 1), ((2, 1, 1, 0), 0), ((0, 0, 0, 0), 2)])
def test_model_depths(depths, num_layers):
    """The engine's shortcuts at the ends: the sensor modules' last block yields only its mean over
    length, the last encoder layer runs only the class token; both also when that block or layer is absent."""
    ref = randomize_(ReferenceUMSNet(list(presets.HHAR.sensors), 6, 3, "A", depths=depths,
                                     fusion_depths=depths, num_layers=num_layers)).eval()
    fast = UMSNet.from_reference(ref, backend="cpu").eval()
    check_model(fast, ref, presets.HHAR.example_inputs(3, 3))


@needs_ext
def test_model_noncontiguous_input():
    fast, ref = _shared_pair("hhar", 3)
    xs = [x.transpose(1, 2).contiguous().transpose(1, 2) for x in presets.HHAR.example_inputs(2, 3)]
    xs[0] = _noncontig(presets.HHAR.example_inputs(2, 3)[0])
    assert not xs[0].is_contiguous() and not xs[1].is_contiguous()
    out = check_model(fast, ref, xs)
    torch.testing.assert_close(out, fast(xs), rtol=0, atol=0)  # and the same as a second call


@needs_ext
def test_repacks_after_parameter_changes():
    fast, ref = _pair(presets.HHAR, 2)
    xs = presets.HHAR.example_inputs(2, 2)
    with torch.no_grad():
        before = fast(xs)
        other = randomize_(copy.deepcopy(ref), seed=1)
        fast.load_state_dict(other.state_dict())         # load_state_dict: in-place copies
        torch.testing.assert_close(fast(xs), other(xs), rtol=1e-4, atol=1e-4)
        assert not torch.allclose(fast(xs), before)
        fast.sensor_encoders["acc"].stages[3][1].gamma.mul_(3.0)  # in-place edit of one parameter
        other.sensor_encoders["acc"].stages[3][1].gamma.mul_(3.0)
        torch.testing.assert_close(fast(xs), other(xs), rtol=1e-4, atol=1e-4)
        new_head = nn.Parameter(torch.randn_like(fast.head.weight))  # a new Parameter object
        fast.head.weight = new_head
        other.head.weight = nn.Parameter(new_head.detach().clone())
        torch.testing.assert_close(fast(xs), other(xs), rtol=1e-4, atol=1e-4)


# ---- availability and fallback --------------------------------------------------------------------

@pytest.fixture
def fresh_registry(monkeypatch):
    """The backend registry with nothing cached, restored afterwards."""
    monkeypatch.setattr(backends, "_loaded", {})
    monkeypatch.setattr(backends, "_warned", set())


def test_missing_extension_falls_back_to_reference(monkeypatch, fresh_registry):
    reason = "extension umsnet_fast._cpu is not built (install with torch present: pip install --no-build-isolation .)"
    monkeypatch.setattr(_extensions, "load_extension", lambda name: (None, reason))
    info = umsnet_fast.available_backends()["cpu"]
    assert not info.available and info.reason == reason
    model = UMSNet(**presets.HHAR.model_kwargs(2), variant="A").eval()
    with pytest.warns(RuntimeWarning, match="'cpu' is unavailable"):
        assert model.active_backend("cpu", torch.float32) == "reference"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert model(presets.HHAR.example_inputs(1, 2)).shape == (1, 6)
    with pytest.raises(RuntimeError, match="not built"):
        model.backend = "cpu"


def test_extension_built_for_another_torch(monkeypatch, fresh_registry):
    real_import = _extensions.importlib.import_module

    def fail(name, *args):
        if name == "umsnet_fast._cpu":
            raise ImportError("undefined symbol: _ZN3c104impl3cow11cow_deleterEPv")
        return real_import(name, *args)
    monkeypatch.setattr(_extensions.importlib, "import_module", fail)
    monkeypatch.setattr(_extensions, "build_info", lambda: {"torch": "0.0.1", "extensions": ["_cpu"]})
    reason = umsnet_fast.available_backends()["cpu"].reason
    assert f"built for torch 0.0.1, you have {torch.__version__}" in reason
    model = UMSNet(**presets.HHAR.model_kwargs(2), variant="A").eval()
    with pytest.warns(RuntimeWarning, match="built for torch 0.0.1"):
        assert model.active_backend() == "reference"


@needs_ext
def test_auto_picks_cpu_for_float32_and_bfloat16():
    model = UMSNet(**presets.HHAR.model_kwargs(2), variant="A")
    assert model.active_backend("cpu", torch.float32) == "cpu"
    assert model.active_backend("cpu", torch.bfloat16) == "cpu"
    assert model.active_backend("cpu", torch.float64) == "reference"
    assert model.active_backend("cpu", torch.float16) == "reference"
    assert umsnet_fast.available_backends()["cpu"].available


# ---- the bf16 packed layout (VNNI pairs, the operand of vdpbf16ps and of AMX tiles)

def _w(*shape):
    return torch.randn(*shape, dtype=torch.float64) / math.sqrt(shape[-1])


@needs_ext
def test_bf16_weights_are_packed_as_bf16():
    assert C.pack_linear(_w(70, 33).to(BF16), (0.1 * torch.randn(70, dtype=torch.float64)).to(BF16)).bf16
    assert not C.pack_linear(_w(70, 33).float(), (0.1 * torch.randn(70, dtype=torch.float64)).float()).bf16


@needs_ext
@pytest.mark.parametrize("n,k", [(70, 33), (16, 1), (32, 64)])
def test_vnni_layout(n, k):
    """make_linear's bf16 layout (csrc/cpu/kernels.h): panel p, pair kk, column j, t = W[32p + j, 2kk + t]
    rounded once to bf16, zero past n and k, k padded to the extension's K_ALIGN."""
    w = _w(n, k)
    packed = C.pack_linear(w.to(BF16), None).packed
    panel, align = _EXT.PANEL, _EXT.K_ALIGN
    panels, kp = -(-n // panel), -(-k // align) * align
    assert packed.dtype == BF16 and packed.shape == (panels, kp // 2, panel, 2)
    expected = torch.zeros(panels * panel, kp, dtype=BF16)
    expected[:n, :k] = w.to(BF16)
    expected = expected.view(panels, panel, kp // 2, 2).permute(0, 2, 1, 3)
    assert torch.equal(packed, expected)
    fp32 = C.pack_linear(w.float(), None).packed
    assert fp32.dtype == torch.float32 and fp32.shape == (panels, k, panel)
    assert torch.equal(fp32.transpose(1, 2).reshape(panels * panel, k)[:n], w.float())


@needs_ext
def test_kernels_flush_denormals_only_while_they_run():
    """The engine's threads read and write denormals as zero (vec.h FlushDenormals), and the caller's
    floating-point state is back when a call returns: torch ops on the same OpenMP threads keep them."""
    ref = randomize_(ReferenceUMSNet(**presets.HHAR.model_kwargs(6)), seed=4).eval()
    fast = UMSNet.from_reference(ref, backend="cpu").eval()
    xs = presets.HHAR.example_inputs(2, 6)
    tiny = torch.full((1 << 20,), 1e-39)  # denormal; big enough for torch to split the product over threads
    assert torch.count_nonzero(tiny * 1.5) == tiny.numel()
    check_model(fast, ref, xs)
    with torch.no_grad():
        fast(xs)
    assert torch.count_nonzero(tiny * 1.5) == tiny.numel()
    # inside, a product below the smallest normal float is zero: 16 terms of 1e-40 sum to 0, not 1.6e-39
    w = _EXT.make_linear(torch.full((16, 16), 1e-20), torch.zeros(16))
    assert torch.count_nonzero(_EXT.linear(torch.full((4, 16), 1e-20), w)) == 0
    assert torch.count_nonzero(torch.full((4, 16), 1e-20) @ torch.full((16, 16), 1e-20)) == 64  # torch keeps them
