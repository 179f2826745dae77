"""The drop-in fast UMSNet: the reference's modules and state_dict, a kernel backend in eval mode."""
from __future__ import annotations

import threading

import torch

from . import reference
from .backends import BACKEND_NAMES, Backend, get_backend, resolve_backend
from .backends.base import device_guard
from .inputs import check_finite as _check_finite
from .inputs import validate_inputs
from .weight_watch import WeightWatch
from .weights import ModelWeights


class UMSNet(reference.UMSNet):
    """Same constructor and state_dict as `umsnet_fast.reference.UMSNet`, plus `backend`.

    In training mode it runs the reference's autograd ops, so it trains like the reference. In eval
    mode it runs the chosen backend's kernels without autograd, on weights gathered and packed once
    per (backend, device, dtype) and re-packed when a parameter or buffer changes, as far as
    `umsnet_fast.weight_watch` detects it: every in-place update autograd sees, a new tensor, and on
    the CPU any write through `.data` or `p.detach().numpy()` that changes a probed element (whole-tensor
    writes such as an EMA update always do). After writing a few elements behind autograd's back, or
    such writes to a model on a GPU, call `refresh()`. It computes in the input's dtype.
    """

    def __init__(self, sensors, num_classes: int, num_slices: int = 24, variant: str = "A", *,
                 backend: str = "auto", **kwargs):
        super().__init__(sensors, num_classes, num_slices, variant, **kwargs)
        self._packed: dict[tuple, ModelWeights] = {}
        self._watch: WeightWatch | None = None
        self._lock = threading.Lock()  # one thread checks and re-packs at a time
        self.backend = backend

    @classmethod
    def from_reference(cls, ref: reference.UMSNet, *, backend: str = "auto") -> UMSNet:
        """A fast model with the reference's configuration, weights, device, dtype and mode."""
        model = cls(**ref.config.constructor_kwargs(), backend=backend)
        p = next(ref.parameters())
        model.to(device=p.device, dtype=p.dtype)
        model.load_state_dict(ref.state_dict())
        return model.train(ref.training)

    @property
    def backend(self) -> str:
        """The requested backend: 'auto' or one of BACKEND_NAMES. Settable."""
        return self._backend

    @backend.setter
    def backend(self, name: str) -> None:
        if name != "auto":
            get_backend(name)  # unknown -> ValueError, unavailable -> RuntimeError with the reason
        self._backend = name

    def active_backend(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> str:
        """The backend that an eval-mode call with tensors of this device and dtype runs."""
        return resolve_backend(self._backend, torch.device(device), dtype).name

    def forward(self, xs, check_finite: bool = False) -> torch.Tensor:
        tensors = validate_inputs(self.config, xs)
        if check_finite:
            _check_finite([s.name for s in self.config.sensors], tensors)
        x0 = tensors[0]
        if x0.shape[0] == 0:
            return x0.new_zeros(0, self.config.num_classes)
        if self.training:
            logits = self._forward_tensors(tensors)
        else:
            backend = resolve_backend(self._backend, x0.device, x0.dtype)
            weights = self._weights_for(backend, x0.device, x0.dtype)
            with torch.no_grad(), device_guard(x0.device):  # launch on the inputs' device, not the current one
                logits = backend.ops().forward(weights, tensors, self.config.num_slices)
        if check_finite:
            _check_finite(["logits"], [logits], what="output")
        return logits

    def stream(self, hop_slices: int = 1, *, slice_length=None, normalization=None, dtype=None, device=None,
               backend=None, graphs=None, max_graph_batch: int = 1024):
        """A stream over this model (eval mode): `stream.push(chunk)` -> logits per completed hop.

        Output t is the model on the window that starts at slice t * hop_slices (umsnet_fast.streaming).
        slice_length: samples per slice L_i (an int, or one per sensor as a list or dict); required, as
            for umsnet_fast.compile: the configuration does not fix it (presets.HHAR.slice_length = 25).
        normalization: {sensor: {"mean": [C_i], "std": [C_i]}} applied to the samples as they arrive
            (a HAR checkpoint's meta["normalization"]); default none.
        dtype, device, backend: default the parameters' dtype and device and the model's backend.
        graphs: CUDA graphs per bucket of batch sizes (default: on CUDA); max_graph_batch: largest bucket.
        """
        from .streaming import Stream
        return Stream(self, hop_slices, slice_length=slice_length, normalization=normalization, dtype=dtype,
                      device=device, backend=backend, graphs=graphs, max_graph_batch=max_graph_batch)

    def refresh(self) -> None:
        """Re-pack the weights on the next eval call, whatever the change detection saw (see the class
        docstring: needed after writes that bypass autograd's version counter and miss every probed
        element, and after such writes on a GPU)."""
        with self._lock:
            self._packed, self._watch = {}, None

    def _weights_for(self, backend: Backend, device: torch.device, dtype: torch.dtype) -> ModelWeights:
        key = (backend.name, device, dtype)
        with self._lock:
            if self._watch is None:
                self._watch = WeightWatch(self)
            elif self._watch.changed():
                self._packed = {}
                self._watch.accept()
            weights = self._packed.get(key)
            if weights is None:
                weights = self._packed[key] = backend.prepare(ModelWeights.from_model(self), device, dtype)
            return weights

    def __getstate__(self):
        # copy.deepcopy / pickle: leave the packed weights behind (a backend's packed form need not be
        # copyable, e.g. the cpu backend's C++ objects); the copy packs its own on its first call.
        state = self.__dict__.copy()
        state["_packed"], state["_watch"] = {}, None
        del state["_lock"]
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._lock = threading.Lock()

    def _apply(self, fn, *args, **kwargs):
        # .to() / .cuda() / .half() replace the parameters: drop weights packed from the old ones.
        self.refresh()
        return super()._apply(fn, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"backend={self._backend!r}"


__all__ = ["UMSNet", "BACKEND_NAMES"]
