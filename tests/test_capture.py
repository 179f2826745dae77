"""umsnet_fast.compile: the captured forward (CUDA graphs on a GPU, the same API without a graph on CPU)."""
import copy

import pytest
import torch

import umsnet_fast
from umsnet_fast import presets
from umsnet_fast.backends import available_backends
from umsnet_fast.reference import UMSNet as ReferenceUMSNet
from umsnet_fast.testing import assert_matches_oracle, randomize_

HHAR = presets.HHAR
K = 3
L = HHAR.slice_length


def _model(device="cpu", backend="auto", seed=0):
    model = umsnet_fast.UMSNet(**HHAR.model_kwargs(K), variant="A", backend=backend)
    return randomize_(model, seed).to(device).eval()


def _inputs(batch, dtype=torch.float32, device="cpu", seed=1):
    g = torch.Generator().manual_seed(seed)
    return HHAR.example_inputs(batch, K, generator=g, dtype=dtype, device=device)


# -- everywhere ----------------------------------------------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where CUDA is missing")
def test_cuda_without_cuda_raises_clearly():
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        umsnet_fast.compile(_model(), 1, slice_length=L, device="cuda")


def test_needs_fast_model_and_slice_length():
    ref = ReferenceUMSNet(**HHAR.model_kwargs(K))
    with pytest.raises(TypeError, match="from_reference"):
        umsnet_fast.compile(ref, 1, slice_length=L)
    with pytest.raises(TypeError, match="slice_length"):
        umsnet_fast.compile(_model(), 1)
    with pytest.raises(ValueError, match="'gyro'.*>= 8"):
        umsnet_fast.compile(_model(), 1, slice_length={"acc": 25, "gyro": 7})
    with pytest.raises(ValueError, match="on_new_batch"):
        umsnet_fast.compile(_model(), 1, slice_length=L, on_new_batch="sometimes")


def test_cpu_path_matches_model_and_captures_new_batches():
    model = _model()
    compiled = umsnet_fast.compile(model, 2, slice_length=L)
    assert not compiled.graphed and compiled.batch_sizes == (2,)
    for batch in (2, 1, 5):
        xs = _inputs(batch)
        torch.testing.assert_close(compiled(xs), model(xs), rtol=0, atol=0)
    assert compiled.batch_sizes == (1, 2, 5)
    assert compiled(_inputs(0)).shape == (0, HHAR.num_classes)


def test_refuses_new_batch_dtype_device_and_length():
    compiled = umsnet_fast.compile(_model(), 2, slice_length=L, on_new_batch="raise")
    with pytest.raises(ValueError, match=r"batch sizes \[2\], got batch 3"):
        compiled(_inputs(3))
    with pytest.raises(TypeError, match="computes in torch.float32.*torch.float64"):
        compiled(_inputs(2, torch.float64))
    xs = HHAR.example_inputs(2, K)
    short = [x[:, :, : K * 9] for x in xs]
    with pytest.raises(ValueError, match=r"compiled for windows of shape \(batch, 3, 75\)"):
        compiled(short)
    with pytest.raises(ValueError, match="expected 2 input tensors"):
        compiled(xs[:1])


def test_weight_changes_are_picked_up_never_stale():
    model = _model()
    compiled = umsnet_fast.compile(model, 2, slice_length=L)
    xs = _inputs(2)
    before = compiled(xs)
    with torch.no_grad():  # in-place update (an optimizer step, load_state_dict, copy_)
        model.head.bias.add_(1.0)
    after = compiled(xs)
    torch.testing.assert_close(after, before + 1.0, rtol=1e-5, atol=1e-5)
    # Replacing a parameter object (not in place) is picked up too.
    model.head.weight = torch.nn.Parameter(torch.zeros_like(model.head.weight))
    torch.testing.assert_close(compiled(xs), model.head.bias.detach().expand(2, -1), rtol=0, atol=0)
    # So is a whole new state_dict.
    other = _model(seed=7)
    model.load_state_dict(other.state_dict())
    torch.testing.assert_close(compiled(xs), other(xs), rtol=0, atol=0)
    # And .to() (new storage, same versions): weights re-packed from the float64 copies, still fp32.
    with torch.no_grad():
        model.head.bias.add_(0.5)
    model.to(torch.float64)
    out = compiled(xs)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, model(xs), rtol=0, atol=0)
    torch.testing.assert_close(out, other(xs) + 0.5, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("route", ["p.data.add_", "p.data.copy_", "buffer.data.mul_", "numpy", "ema"])
def test_writes_behind_autograds_back_are_never_replayed_stale(route):
    from test_model import BYPASSING_WRITES, _fresh_copy

    model = _model()
    compiled = umsnet_fast.compile(model, 2, slice_length=L)
    xs = _inputs(2)
    before = compiled(xs)
    BYPASSING_WRITES[route](model)
    after = compiled(xs)
    assert not torch.equal(after, before)
    assert torch.equal(after, _fresh_copy(model)(xs))


def test_refresh_recaptures_with_the_current_weights():
    model = _model()
    compiled = umsnet_fast.compile(model, 2, slice_length=L)
    xs = _inputs(2)
    before = compiled(xs)
    calls = []
    compiled._watch.changed = lambda: calls.append(1) or False  # as if the check missed the write
    model.head.bias.data.add_(1.0)
    assert torch.equal(compiled(xs), before) and calls
    compiled.refresh()
    torch.testing.assert_close(compiled(xs), before + 1.0, rtol=1e-5, atol=1e-5)


# -- CUDA ----------------------------------------------------------------------------------------------
def _cuda_backends():
    return [n for n, i in available_backends().items() if i.available and "cuda" in i.device_types]


CUDA_DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.mark.cuda
@pytest.mark.parametrize("backend", _cuda_backends())
@pytest.mark.parametrize("dtype", CUDA_DTYPES, ids=str)
def test_cuda_graph_meets_the_contract(backend, dtype):
    if dtype not in umsnet_fast.backends.get_backend(backend).dtypes:
        pytest.skip(f"backend {backend} does not run {dtype}")
    model = _model("cuda", backend)
    ref = ReferenceUMSNet(**HHAR.model_kwargs(K), variant="A")
    ref.load_state_dict(model.state_dict())
    compiled = umsnet_fast.compile(model, 3, dtype, slice_length=L)
    assert compiled.graphed and compiled.backend == backend
    xs = _inputs(3, dtype, "cuda")
    out = compiled(xs)
    with torch.no_grad():
        ref_p = copy.deepcopy(ref).to("cuda", dtype).eval()(xs)
        oracle = copy.deepcopy(ref).to("cuda", torch.float64).eval()([x.double() for x in xs])
    assert out.dtype == dtype
    assert_matches_oracle(out, ref_p, oracle)
    # the graph is replayed, not re-run: fresh inputs through the same graph
    xs2 = _inputs(3, dtype, "cuda", seed=5)
    torch.testing.assert_close(compiled(xs2), model(xs2))


@pytest.mark.cuda
def test_cuda_recaptures_on_new_batch_and_weights():
    model = _model("cuda")
    compiled = umsnet_fast.compile(model, 2, slice_length=L)
    xs2, xs5 = _inputs(2, device="cuda"), _inputs(5, device="cuda")
    torch.testing.assert_close(compiled(xs5), model(xs5))
    assert compiled.batch_sizes == (2, 5)
    before = compiled(xs2)
    with torch.no_grad():
        model.head.bias.add_(1.0)
    torch.testing.assert_close(compiled(xs2), before + 1.0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(compiled(xs5), model(xs5))
    strict = umsnet_fast.compile(model, 2, slice_length=L, on_new_batch="raise")
    with pytest.raises(ValueError, match="got batch 5"):
        strict(xs5)
    with pytest.raises(ValueError, match="runs on cuda"):
        strict(_inputs(2))


@pytest.mark.cuda
def test_cuda_output_buffers():
    model = _model("cuda")
    fresh = umsnet_fast.compile(model, 2, slice_length=L)
    a, b = fresh(_inputs(2, device="cuda", seed=1)), fresh(_inputs(2, device="cuda", seed=2))
    assert not torch.equal(a, b)  # the first result was not overwritten by the second call
    static = umsnet_fast.compile(model, 2, slice_length=L, copy_output=False)
    a = static(_inputs(2, device="cuda", seed=1))
    b = static(_inputs(2, device="cuda", seed=2))
    assert a.data_ptr() == b.data_ptr()  # documented: the static buffer, overwritten by the next call


def test_warmup_must_be_a_count():
    with pytest.raises(ValueError, match="warmup must be an int >= 0, got -1"):
        umsnet_fast.compile(_model(), 1, slice_length=L, warmup=-1)
    assert umsnet_fast.compile(_model(), 1, slice_length=L, warmup=0)(_inputs(1)).shape == (1, HHAR.num_classes)


@pytest.mark.cuda
@pytest.mark.parametrize("backend", _cuda_backends())
def test_cuda_capture_with_no_warmup(backend):
    """warmup=0 on a model that never ran: compilation and autotuning happen before the capture, not in it."""
    model = _model("cuda", backend, seed=3)
    compiled = umsnet_fast.compile(model, 4, slice_length=L, warmup=0)
    xs = _inputs(4, device="cuda", seed=9)
    torch.testing.assert_close(compiled(xs), model(xs))
    assert compiled(_inputs(6, device="cuda")).shape == (6, HHAR.num_classes)  # a new batch size: a new bucket


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
@pytest.mark.parametrize("backend", _cuda_backends())
def test_cuda_capture_on_a_device_that_is_not_current(backend):
    model = _model("cuda:1", backend)
    with torch.cuda.device(0):
        compiled = umsnet_fast.compile(model, 2, slice_length=L)
        xs = _inputs(2, device="cuda:1")
        torch.testing.assert_close(compiled(xs), model(xs))
