"""Has a model's weights changed? What the fast model's packed-weights cache and `umsnet_fast.compile` ask
before every call, so that neither answers with weights the model no longer has.

Three signals, each cheap enough for batch 1:
- the data pointer of every parameter and buffer: `p.data = ...`, `.to()`, a replaced Parameter;
- its version counter: every in-place update through autograd's view of the tensor (an optimizer step,
  `load_state_dict`, `p.copy_()` / `p.add_()` under no_grad);
- a content probe of the CPU tensors: up to `PROBE_SAMPLES` elements per tensor, spread evenly over
  it, compared bitwise with their values when the weights were last accepted. It catches the writes
  that bypass the version counter (`p.data.add_()`, `p.data.copy_()`, `buffer.data.mul_()`, a write
  through `p.detach().numpy()`, the EMA update `ema.data.mul_(d).add_(p.data, alpha=1 - d)`) whenever
  they change a sampled element: any write to the whole tensor, or to a stretch longer than
  1/PROBE_SAMPLES of it. A write to a few elements between the samples is not seen: call `refresh()`.
  Tensors on a GPU are not probed (reading them would synchronise the device): there, writes that bypass
  the version counter need `refresh()` too.

Walking the module tree on every call costs 570 us for UMSNet-A (311 tensors) on the 2-core
development machine. `WeightWatch` keeps the tensor list and walks again only after some module
registered a parameter, buffer or submodule (torch's global registration hooks). The counters and the
probe are then read in one C++ call (`umsnet_fast._cpu.TensorWatch`, csrc/weight_watch.cpp): a few us
where the Python loop over the counters plus the numpy probe (`_PyTensorWatch`, the reference and the
fallback when the extension is not built) took 45 to 50 us on the same machine.
"""
from __future__ import annotations

import ctypes
import operator

import numpy as np
import torch

__all__ = ["WeightWatch", "PROBE_SAMPLES"]

PROBE_SAMPLES = 16  # elements probed per tensor (all of a tensor with at most this many)

# Bumped whenever any module registers or replaces a parameter, buffer or submodule (torch's global
# registration hooks). Until it moves, a model's tensors are the same objects, and the fingerprint can
# be taken from a cached list instead of walking the module tree.
_generation = 0
_hooks_installed = False


def _bump(*_args) -> None:
    global _generation
    _generation += 1


def _install_hooks() -> None:
    global _hooks_installed
    if not _hooks_installed:
        from torch.nn.modules import module as m
        m.register_module_parameter_registration_hook(_bump)
        m.register_module_buffer_registration_hook(_bump)
        m.register_module_module_registration_hook(_bump)
        _hooks_installed = True


_version_of = operator.attrgetter("_version")
_pointer_of = torch.Tensor.data_ptr
# Probed elements are compared as unsigned integers of their size: bitwise, so a NaN weight equals itself.
_UINT_OF_SIZE = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def probe_offsets(t: torch.Tensor) -> np.ndarray | None:
    """Byte addresses of up to PROBE_SAMPLES elements of `t`, spread evenly over the memory it covers, the
    first and the last included (None: not probed, i.e. not on the CPU, empty, or of an odd element size)."""
    size = t.element_size()
    if t.device.type != "cpu" or t.numel() == 0 or size not in _UINT_OF_SIZE or t.data_ptr() % size:
        return None
    span = 1 + sum((n - 1) * stride for n, stride in zip(t.shape, t.stride()))  # elements t covers
    return t.data_ptr() + size * np.linspace(0, span - 1, min(span, PROBE_SAMPLES)).round().astype(np.int64)


def probe_addresses(tensors: list[torch.Tensor]) -> tuple[list[torch.Tensor], dict[int, list[np.ndarray]]]:
    """Aliases of the probed tensors (they keep the probed memory allocated) and, per element size, the
    byte addresses of each one's probed elements (probe_offsets)."""
    held, addresses = [], {}
    for t in tensors:
        a = probe_offsets(t)
        if a is not None:
            held.append(t.detach())
            addresses.setdefault(t.element_size(), []).append(a)
    return held, addresses


class _Probe:
    """The probed elements of a list of CPU tensors and the values they held when it was made.

    Reading ~5000 elements of 300 tensors one tensor at a time (torch.cat or np.concatenate over per-tensor
    views) costs 30 to 800 us; here each element size has one numpy view of the address range its tensors
    span (no copy: a pointer and a length) and one `take` of the precomputed indices reads every probed
    element (4 to 10 us for UMSNet-A). Safe because the probe holds an alias of every probed tensor, so their
    memory cannot be freed or reused, and it is read only after the caller saw every tensor at the data
    pointer it had when the probe was made (torch's resize_ moves a storage to a new address).
    """

    def __init__(self, tensors: list[torch.Tensor]):
        self.held, addresses = probe_addresses(tensors)
        self.groups = []
        for size, parts in addresses.items():
            a = np.concatenate(parts)
            low, high = int(a.min()), int(a.max()) + size
            memory = (ctypes.c_char * (high - low)).from_address(low)
            self.groups.append((np.frombuffer(memory, dtype=_UINT_OF_SIZE[size]), (a - low) // size))
        self.values = self.read()

    def read(self) -> list[np.ndarray]:
        return [view.take(index) for view, index in self.groups]

    def matches(self) -> bool:
        return all(map(np.array_equal, self.read(), self.values))


def _counters(tensors: list[torch.Tensor], versioned: list[torch.Tensor]) -> tuple[list[int], list[int]]:
    return [*map(_pointer_of, tensors)], [*map(_version_of, versioned)]


class _PyTensorWatch:
    """Has any of `tensors` changed since this was made? Pointers and versions, then the probe."""

    def __init__(self, tensors: list[torch.Tensor], versioned: list[torch.Tensor]):
        self.tensors, self.versioned = tensors, versioned
        self.counters = _counters(tensors, versioned)
        self.probe = _Probe(tensors)

    def changed(self) -> bool:
        # the probe is read only once every pointer is known unchanged (see _Probe)
        return _counters(self.tensors, self.versioned) != self.counters or not self.probe.matches()


def _native_tensor_watch(tensors: list[torch.Tensor], versioned: list[torch.Tensor]):
    """The same watch in one C++ call (umsnet_fast._cpu.TensorWatch), or None without the extension."""
    from ._extensions import load_extension

    native = getattr(load_extension("_cpu")[0], "TensorWatch", None)
    if native is None:
        return None
    held, by_size = probe_addresses(tensors)
    addresses = [a for parts in by_size.values() for a in parts]
    sizes = [np.full(len(a), size, np.int64) for size, parts in by_size.items() for a in parts]
    addresses, sizes = (torch.from_numpy(np.concatenate(p) if p else np.zeros(0, np.int64)) for p in (addresses, sizes))
    is_versioned = {id(t) for t in versioned}
    return native(tensors, [id(t) in is_versioned for t in tensors], held, addresses, sizes)


class WeightWatch:
    """Watches the parameters and buffers of `model` (see the module docstring for what is detected).

    native=False uses the Python reference of the C++ watch (for tests; also the fallback without it).
    """

    def __init__(self, model: torch.nn.Module, native: bool = True):
        _install_hooks()
        self.model, self.native = model, native
        self.accept()

    def _gather(self) -> list[torch.Tensor]:
        return [*self.model.parameters(), *self.model.buffers()]

    def changed(self) -> bool:
        """True when some parameter or buffer changed since the last accept()."""
        if self.generation != _generation:  # some module registered something: is it one of ours?
            tensors = self._gather()
            if len(tensors) != len(self.tensors) or any(map(operator.is_not, tensors, self.tensors)):
                return True  # and again on every call until accept()
            self.generation = _generation
        return self.watch.changed()

    def accept(self) -> None:
        """Take the current weights as the reference for changed()."""
        self.generation = _generation
        self.tensors = self._gather()
        # Inference tensors (made under torch.inference_mode) have no version counter; only the probe
        # sees their changes (in-place writes to them are refused outside inference mode anyway).
        versioned = [t for t in self.tensors if not t.is_inference()]
        self.watch = (self.native and _native_tensor_watch(self.tensors, versioned)) or \
            _PyTensorWatch(self.tensors, versioned)
