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
registered a parameter, buffer or submodule (torch's global registration hooks), reads the counters with
C-level getters (39 us on the same machine); the probe reads its ~4800 elements in 4 to 10 us, measured on
the same machine under load (see _Probe).
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
        self.held = []  # aliases that keep the probed memory allocated
        addresses: dict[int, list[np.ndarray]] = {}
        for t in tensors:
            a = probe_offsets(t)
            if a is not None:
                self.held.append(t.detach())
                addresses.setdefault(t.element_size(), []).append(a)
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


class WeightWatch:
    """Watches the parameters and buffers of `model` (see the module docstring for what is detected)."""

    def __init__(self, model: torch.nn.Module):
        _install_hooks()
        self.model = model
        self.accept()

    def _gather(self) -> None:
        self.generation = _generation
        self.tensors = [*self.model.parameters(), *self.model.buffers()]
        # Inference tensors (made under torch.inference_mode) have no version counter; only the probe
        # sees their changes (in-place writes to them are refused outside inference mode anyway).
        self.versioned = [t for t in self.tensors if not t.is_inference()]

    def _counters(self) -> tuple[list[int], list[int]]:
        if self.generation != _generation:
            self._gather()
        return [*map(_pointer_of, self.tensors)], [*map(_version_of, self.versioned)]

    def changed(self) -> bool:
        """True when some parameter or buffer changed since the last accept()."""
        # the probe is read only once every pointer is known unchanged (see _Probe)
        return self._counters() != self.counters or not self.probe.matches()

    def accept(self) -> None:
        """Take the current weights as the reference for changed()."""
        self._gather()
        self.counters = self._counters()
        self.probe = _Probe(self.tensors)
