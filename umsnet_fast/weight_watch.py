"""Has a model's weights changed? The data pointer and version of every parameter and buffer, read
cheaply (the fast model's packed-weights cache and the captured path both key on them).

Walking the module tree on every call costs 570 us for UMSNet-A (311 tensors) on the 2-core
development machine. `WeightWatch` keeps the tensor list and walks again only after some module
registered a parameter, buffer or submodule (torch's global registration hooks), and reads the
counters with C-level getters: 39 us on the same machine.
"""
from __future__ import annotations

import operator

import torch

__all__ = ["WeightWatch"]

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


class WeightWatch:
    """Data pointer and version of every parameter and buffer of `model`, over a tensor list cached
    while no module registered a parameter, buffer or submodule."""

    def __init__(self, model: torch.nn.Module):
        _install_hooks()
        self.model = model
        self.accept()

    def current(self) -> tuple:
        if self.generation != _generation:
            self.generation = _generation
            self.tensors = [*self.model.parameters(), *self.model.buffers()]
        return [*map(_pointer_of, self.tensors)], [*map(_version_of, self.tensors)]

    def changed(self) -> bool:
        return self.current() != self.fingerprint

    def accept(self) -> None:
        """Take the current weights as the reference for changed()."""
        self.generation = _generation
        self.tensors = [*self.model.parameters(), *self.model.buffers()]
        self.fingerprint = self.current()
