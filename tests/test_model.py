"""The drop-in fast model: state_dict compatibility, backend selection, eval outputs vs the reference."""
import pytest
import torch

import umsnet_fast
from umsnet_fast import SensorSpec, UMSNet, available_backends, presets, reference
from umsnet_fast.testing import check_model, randomize_


def make_pair(preset=presets.HHAR, k=6, seed=0, **kwargs):
    ref = randomize_(reference.UMSNet(**preset.model_kwargs(k), **kwargs), seed)
    return ref, UMSNet.from_reference(ref, backend="reference")


def test_same_constructor_and_state_dict_keys():
    ref = reference.UMSNet(**presets.MHEALTH.model_kwargs(12), variant="B")
    fast = UMSNet(**presets.MHEALTH.model_kwargs(12), variant="B")
    assert list(ref.state_dict()) == list(fast.state_dict())
    fast.load_state_dict(ref.state_dict())           # strict, both directions
    ref.load_state_dict(randomize_(fast).state_dict())
    for (k, a), b in zip(ref.state_dict().items(), fast.state_dict().values()):
        assert torch.equal(a, b), k


def test_from_reference_copies_config_weights_dtype_and_mode():
    ref = randomize_(reference.UMSNet(**presets.HHAR.model_kwargs(6), variant="C", dims=(8, 16, 24, 40)))
    ref = ref.double().eval()
    fast = UMSNet.from_reference(ref)
    assert fast.config == ref.config
    assert not fast.training
    assert next(fast.parameters()).dtype == torch.float64
    for a, b in zip(ref.state_dict().values(), fast.state_dict().values()):
        assert torch.equal(a, b)


def test_state_dict_errors_name_the_keys():
    ref = reference.UMSNet(**presets.HHAR.model_kwargs(6))
    fast = UMSNet(**presets.HHAR.model_kwargs(6))
    sd = ref.state_dict()
    missing = dict(sd)
    del missing["head.bias"]
    with pytest.raises(RuntimeError, match="head.bias"):
        fast.load_state_dict(missing)
    extra = dict(sd, **{"bogus.weight": torch.zeros(1)})
    with pytest.raises(RuntimeError, match="bogus.weight"):
        fast.load_state_dict(extra)
    other = reference.UMSNet(**presets.HHAR.model_kwargs(12))  # pos_embed is (1, K+1, d)
    with pytest.raises(RuntimeError, match="pos_embed"):
        fast.load_state_dict(other.state_dict())
    with pytest.raises(RuntimeError, match="pos_embed"):
        ref.load_state_dict(UMSNet(**presets.HHAR.model_kwargs(12)).state_dict())


CASES = [
    # (id, preset, K, batch, constructor overrides)
    ("hhar-A-K6", presets.HHAR, 6, 3, {}),
    ("hhar-B-K1-b1", presets.HHAR, 1, 1, {"variant": "B"}),
    ("mhealth-A-K4", presets.MHEALTH, 4, 2, {}),
    ("mhealth-C-K2", presets.MHEALTH, 2, 2, {"variant": "C"}),
    ("odd-widths", presets.HHAR, 3, 2, {"dims": (12, 20, 36, 52), "fusion_dims": (24, 40, 44, 60),
                                        "embed_dim": 48, "num_heads": 4, "mlp_dim": 72, "kernel_size": 5}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_reference_backend_matches_reference_model(case, dtype):
    _, preset, k, batch, kwargs = case
    ref, fast = make_pair(preset, k, **kwargs)
    check_model(fast, ref, preset.example_inputs(batch, k), dtype=dtype)


@pytest.mark.parametrize("length", [8, 9, 13, 25])
def test_odd_and_minimal_slice_lengths(length):
    sensors = [SensorSpec("a", 3), SensorSpec("b", 2)]
    ref = randomize_(reference.UMSNet(sensors, 4, 3))
    fast = UMSNet.from_reference(ref)
    xs = [torch.randn(2, 3, 3 * length), torch.randn(2, 2, 3 * length)]
    check_model(fast, ref, xs)


def test_non_contiguous_input():
    ref, fast = make_pair(presets.HHAR, 4)
    big = torch.randn(3, 8, 4 * 25 * 2)
    xs = [big[:, 0:6:2, ::2], big[:, 5:8, 1::2]]  # strided in channels and time
    assert not xs[0].is_contiguous()
    check_model(fast, ref, xs)
    assert torch.equal(fast.eval()(xs), fast([x.contiguous() for x in xs]))


def test_dict_input_equals_list_input():
    ref, fast = make_pair()
    xs = presets.HHAR.example_inputs(2, 6)
    fast.eval()
    assert torch.equal(fast(xs), fast({"gyro": xs[1], "acc": xs[0]}))


def test_batch_zero_returns_empty_logits():
    for cls in (reference.UMSNet, UMSNet):
        m = cls(**presets.HHAR.model_kwargs(6)).eval()
        out = m(presets.HHAR.example_inputs(0, 6))
        assert out.shape == (0, 6)


def test_training_mode_runs_autograd_like_the_reference():
    ref, fast = make_pair()
    ref.train(), fast.train()
    xs = presets.HHAR.example_inputs(2, 6)
    out_f, out_r = fast(xs), ref(xs)
    torch.testing.assert_close(out_f, out_r)
    out_f.sum().backward()
    assert fast.head.weight.grad is not None


def test_eval_output_follows_parameter_changes():
    ref, fast = make_pair()
    fast.eval()
    xs = presets.HHAR.example_inputs(2, 6)
    first = fast(xs)
    with torch.no_grad():
        fast.fusion.stages[0][0].gamma.mul_(3.0)  # in place: the packed weights must be refreshed
    second = fast(xs)
    assert not torch.allclose(first, second)
    fast.load_state_dict(ref.state_dict())
    torch.testing.assert_close(fast(xs), first)


def test_backends_listing_and_selection():
    infos = available_backends()
    assert "reference" in infos and infos["reference"].available
    for info in infos.values():
        assert info.available or info.reason, info  # every unavailable backend says why
    m = UMSNet(**presets.HHAR.model_kwargs(6))
    assert m.backend == "auto"
    assert m.active_backend("cpu") in [n for n, i in infos.items() if i.available]
    m.backend = "reference"
    assert m.active_backend("cpu") == "reference"
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        m.backend = "tensorrt"
    with pytest.raises(ValueError, match="unknown backend"):
        UMSNet(**presets.HHAR.model_kwargs(6), backend="nope")
    for name, info in infos.items():
        if not info.available:
            with pytest.raises(RuntimeError, match="unavailable"):
                m.backend = name


def test_public_api():
    assert umsnet_fast.UMSNet is UMSNet
    assert umsnet_fast.reference.UMSNet is reference.UMSNet
    assert set(umsnet_fast.BACKEND_NAMES) == set(available_backends())


def test_extension_loader_reasons(monkeypatch):
    from umsnet_fast import _extensions

    def missing(name, *args):
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    # A missing module is "not built", whatever an earlier build recorded.
    monkeypatch.setattr(_extensions.importlib, "import_module", missing)
    monkeypatch.setattr(_extensions, "build_info", lambda: {"torch": "0.0.1", "extensions": ["_x"]})
    module, reason = _extensions.load_extension("_x")
    assert module is None and "umsnet_fast._x is not built" in reason and "--no-build-isolation" in reason

    def broken(name, *args):
        raise ImportError("undefined symbol: _ZN3c10")

    monkeypatch.setattr(_extensions.importlib, "import_module", broken)
    assert "built for torch 0.0.1, you have" in _extensions.load_extension("_x")[1]
    monkeypatch.setattr(_extensions, "build_info", lambda: {"torch": torch.__version__, "extensions": ["_x"]})
    assert "failed to load: undefined symbol" in _extensions.load_extension("_x")[1]


# -- never stale: writes that bypass autograd's version counter (umsnet_fast.weight_watch) ----------------
def _ema_update(model, decay=0.9):
    """The everyday case: an EMA of another model's weights, written through .data."""
    source = randomize_(UMSNet(**model.config.constructor_kwargs()), seed=11)
    with torch.no_grad():
        for e, p in zip(model.parameters(), source.parameters()):
            e.data.mul_(decay).add_(p.data, alpha=1 - decay)
        for e, b in zip(model.buffers(), source.buffers()):
            e.data.copy_(b.data)


def _numpy_write(model):
    a = model.sensor_encoders["acc"].stem.conv.weight.detach().numpy()
    a *= 0.5


BYPASSING_WRITES = {
    "p.data.add_": lambda m: m.head.bias.data.add_(1.0),
    "p.data.copy_": lambda m: m.token_proj.weight.data.copy_(torch.randn_like(m.token_proj.weight)),
    "buffer.data.mul_": lambda m: m.fusion.downsamples[0].norm.running_var.data.mul_(3.0),
    "numpy": _numpy_write,
    "last element via numpy": lambda m: m.head.weight.detach().numpy().__setitem__((-1, -1), 4.0),
    "ema": _ema_update,
}


def _fresh_copy(model):
    """A new fast model with `model`'s current weights: what a model that is not stale answers."""
    fresh = UMSNet(**model.config.constructor_kwargs(), backend=model.backend)
    fresh.load_state_dict(model.state_dict())
    return fresh.eval()


@pytest.mark.parametrize("write", BYPASSING_WRITES.values(), ids=BYPASSING_WRITES.keys())
def test_writes_behind_autograds_back_are_picked_up(write):
    model = randomize_(UMSNet(**presets.HHAR.model_kwargs(4)), seed=3).eval()
    xs = presets.HHAR.example_inputs(2, 4)
    before = model(xs)
    versions = [t._version for t in [*model.parameters(), *model.buffers()]]
    write(model)
    assert versions == [t._version for t in [*model.parameters(), *model.buffers()]]  # bypassed indeed
    after = model(xs)
    assert not torch.equal(after, before)
    assert torch.equal(after, _fresh_copy(model)(xs))


@torch.no_grad()
def _scale_in_place(m):
    m.fusion.stages[0][0].gamma.mul_(3.0)  # through the version counter


def _replace_data(m):
    m.head.weight.data = m.head.weight.data.clone()  # same values, a new pointer


def _replace_parameter(m):
    m.head.bias = torch.nn.Parameter(m.head.bias.detach().clone())


WATCHED_CHANGES = {
    **BYPASSING_WRITES,
    "in place under no_grad": _scale_in_place,
    "p.data = ...": _replace_data,
    "new Parameter": _replace_parameter,
    "load_state_dict": lambda m: m.load_state_dict(randomize_(UMSNet(**m.config.constructor_kwargs()), seed=2)
                                                   .state_dict()),
}


@pytest.mark.parametrize("change", WATCHED_CHANGES.values(), ids=WATCHED_CHANGES.keys())
def test_native_weight_watch_sees_what_the_python_one_sees(change):
    from umsnet_fast.weight_watch import WeightWatch, _PyTensorWatch

    model = randomize_(UMSNet(**presets.HHAR.model_kwargs(4)), seed=3).eval()
    native, python = WeightWatch(model), WeightWatch(model, native=False)
    assert isinstance(python.watch, _PyTensorWatch)
    if isinstance(native.watch, _PyTensorWatch):
        pytest.skip("umsnet_fast._cpu is not built: WeightWatch falls back to the Python watch")
    UMSNet(**presets.HHAR.model_kwargs(4))  # another model registers modules: both re-gather, nothing changed
    assert not native.changed() and not python.changed()
    change(model)
    assert native.changed() and python.changed()
    assert native.changed()  # still, until accept()
    native.accept(), python.accept()
    assert not native.changed() and not python.changed()


def test_refresh_repacks_what_the_probe_cannot_see():
    from umsnet_fast.weight_watch import probe_offsets

    model = randomize_(UMSNet(**presets.HHAR.model_kwargs(4)), seed=3).eval()
    xs = presets.HHAR.example_inputs(2, 4)
    before = model(xs)
    w = model.head.weight
    probed = set(((probe_offsets(w) - w.data_ptr()) // w.element_size()).tolist())
    unprobed = next(i for i in range(w.numel()) if i not in probed)
    w.data.view(-1)[unprobed] += 1.0  # one element between the probed ones, behind autograd's back
    assert torch.equal(model(xs), before)  # documented: not detected
    model.refresh()
    after = model(xs)
    assert not torch.equal(after, before) and torch.equal(after, _fresh_copy(model)(xs))


def test_nan_weights_do_not_repack_on_every_call(monkeypatch):
    model = UMSNet(**presets.HHAR.model_kwargs(4)).eval()
    with torch.no_grad():
        model.head.bias[0] = float("nan")
    xs = presets.HHAR.example_inputs(1, 4)
    model(xs)
    packs = []
    monkeypatch.setattr(type(model._watch), "accept", lambda self: packs.append(1))
    model(xs)
    assert packs == []  # the probe compares bits: NaN equals itself


# -- built or loaded under torch.inference_mode ----------------------------------------------------------
@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_built_under_inference_mode(backend):
    ref = randomize_(reference.UMSNet(**presets.HHAR.model_kwargs(4)), seed=5).eval()
    xs = presets.HHAR.example_inputs(2, 4)
    expected = _fresh_copy(UMSNet.from_reference(ref, backend=backend))(xs)
    with torch.inference_mode():
        built = UMSNet.from_reference(ref, backend=backend)  # parameters are inference tensors
        loaded = UMSNet(**presets.HHAR.model_kwargs(4), backend=backend).eval()
        loaded.load_state_dict(ref.state_dict())
        for model in (built, loaded):
            assert torch.equal(model(xs), expected)
            check_model(model, ref, xs)
    for model in (built, loaded):  # and called outside it afterwards
        assert torch.equal(model(xs), expected)
    with torch.inference_mode():  # an in-place change under inference mode (no version counter) is seen
        built.head.bias.add_(1.0)
    torch.testing.assert_close(built(xs), expected + 1.0, rtol=1e-5, atol=1e-5)
