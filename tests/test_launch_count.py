"""How many GPU kernels one triton-backend forward launches (issue 16: <= 12 for UMSNet-A, HHAR, K = 24).

The count is what a CUDA graph of the forward would hold, measured without a GPU:
- Triton launches: a counter wrapped around the launch entry point (JITFunction.run on a GPU,
  InterpretedFunction.run under the interpreter; every kernel[grid](...) goes through it; an
  autotuner's benchmarking would too, which is why the forward is warmed up before counting);
- torch ops: a TorchDispatchMode sees every aten op after the composite ones are decomposed, i.e.
  the ops that own a device kernel. Views and allocations (no kernel) are not counted; everything
  else (copies, GEMMs, elementwise, cat...) counts as one launch, which on CUDA is a lower bound
  (a cuBLAS GEMM can be two). Our custom ops (umsnet_fast::*) are opaque to the mode, so the counter
  runs their Python implementation with the mode still active: torch ops inside them count too.
"""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

pytest.importorskip("triton")

from umsnet_fast import UMSNet  # noqa: E402
from umsnet_fast.backends import get_backend  # noqa: E402
from umsnet_fast.kernels import _common, encoder_layer, layer_norm, lsr_module  # noqa: E402
from umsnet_fast.presets import HHAR  # noqa: E402
from umsnet_fast.reference import UMSNet as ReferenceUMSNet  # noqa: E402
from umsnet_fast.testing import randomize_  # noqa: E402

NO_KERNEL = {"aten.empty.memory_format", "aten.empty_strided.default", "aten.empty_like.default",
             "aten.detach.default", "aten.alias.default", "aten.lift_fresh.default"}

# umsnet_fast custom ops -> their implementation (run with the counting mode active)
_IMPLS = {
    "umsnet_fast.triton_lsr_module_out.default": lambda x4, packed, layout, eps, pool, out, allow_tf32=None:
        lsr_module.launch_lsr_module(x4, packed, lsr_module.ModuleLayout.from_list(layout, eps), out, pool,
                                     allow_tf32),
    "umsnet_fast.triton_encoder_layer.default": encoder_layer.launch_encoder_layer,
    "umsnet_fast.triton_layer_norm.default": layer_norm.layer_norm,
}


def _is_view(func) -> bool:
    return any(r.alias_info is not None and not r.alias_info.is_write for r in func._schema.returns)


class LaunchCounter(TorchDispatchMode):
    """torch ops that launch a device kernel (`aten`, by name) and Triton launches (`triton`, by kernel)."""

    def __init__(self, monkeypatch):
        super().__init__()
        self.aten: list[str] = []
        self.triton: list[str] = []
        self._in_launch = 0  # torch ops the launcher itself runs (the interpreter copies tensors) are its own
        from triton.runtime.interpreter import InterpretedFunction
        from triton.runtime.jit import JITFunction
        cls = InterpretedFunction if _common.INTERPRET else JITFunction
        original = cls.run

        def run(fn, *args, **kwargs):
            self.triton.append(getattr(fn, "__name__", None) or fn.fn.__name__)
            self._in_launch += 1
            try:
                return original(fn, *args, **kwargs)
            finally:
                self._in_launch -= 1
        monkeypatch.setattr(cls, run.__name__, run)

    @property
    def total(self) -> int:
        return len(self.aten) + len(self.triton)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func)
        if name.startswith("umsnet_fast."):
            if name not in _IMPLS:
                raise AssertionError(f"LaunchCounter: add {name}'s implementation to _IMPLS")
            with self:
                return _IMPLS[name](*args, **kwargs)
        if not self._in_launch and name not in NO_KERNEL and not _is_view(func):
            self.aten.append(name)
        return func(*args, **kwargs)


def test_counter_counts_torch_ops_and_triton_launches(monkeypatch):
    device = _common.runnable_device() or pytest.skip("needs a CUDA GPU or TRITON_INTERPRET=1")
    x = torch.randn(3, 8, device=device)
    w, b = torch.ones(8, device=device), torch.zeros(8, device=device)
    counter = LaunchCounter(monkeypatch)
    with counter:
        y = x.t().t().reshape(-1)        # views: nothing
        z = torch.empty_like(x)          # allocation: nothing
        z = (x + 1).t().contiguous()     # add, copy: 2
        layer_norm.layer_norm_op(x, w, b, 1e-6)  # one Triton launch, through a custom op
    assert counter.aten == ["aten.add.Tensor", "aten.clone.default"], counter.aten
    assert counter.triton == ["_layer_norm_kernel"]
    assert y.shape == (24,) and z.shape == (8, 3)


def test_umsnet_a_hhar_forward_launches_at_most_12_kernels(monkeypatch):
    device = _common.runnable_device() or pytest.skip("needs a CUDA GPU or TRITON_INTERPRET=1")
    ref = randomize_(ReferenceUMSNet(HHAR.sensors, HHAR.num_classes, num_slices=24, variant="A"), seed=3).eval()
    fast = UMSNet.from_reference(ref, backend="triton").to(device).eval()
    backend = get_backend("triton")
    weights = fast._weights_for(backend, torch.device(device), torch.float32)
    xs = [x.to(device) for x in HHAR.example_inputs(1, 24)]
    with torch.no_grad():
        expected = backend.ops().forward(weights, xs, 24)  # warm-up (JIT; no autotuning on this path)
        counter = LaunchCounter(monkeypatch)
        with counter:
            logits = backend.ops().forward(weights, xs, 24)  # what umsnet_fast.compile captures
    torch.testing.assert_close(logits, expected)
    assert counter.triton == ["_lsr_module_kernel"] * 3 + ["_encoder_layer_kernel"] * 3, counter.triton
    assert counter.aten == [], counter.aten
    assert counter.total <= 12
    torch.testing.assert_close(logits, ref(xs), atol=1e-3, rtol=1e-3)
