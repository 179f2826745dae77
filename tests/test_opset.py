"""OpSet: every backend's overrides have their reference's signature; a mismatch is a TypeError that
names the op and both signatures, raised when the OpSet is built."""
from __future__ import annotations

import pytest
import torch

from umsnet_fast import backends
from umsnet_fast.forward import REFERENCE_SIGNATURES, OpSet, op_signature, signature_mismatch
from umsnet_fast.ops import layer_norm_ref, lsr_block_ref


@pytest.mark.parametrize("name", backends.BACKEND_NAMES)
def test_every_backends_opset_matches_the_references(name):
    backend = backends.backend_instance(name)
    if backend is None:
        pytest.skip(f"{name} backend does not import here: {backends.available_backends()[name].reason}")
    ops = backend.ops()  # building the OpSet runs the check
    for op in ops.overridden:
        assert signature_mismatch(op, getattr(ops, op)) is None


def test_mismatch_names_the_op_and_both_signatures():
    with pytest.raises(TypeError, match=r"OpSet 'mine': op 'lsr_block' parameter 2 is 'w', expected 'dw_weight'; "
                                        r"it has signature \(x, w\), its reference \(x: 'torch.Tensor', dw_weight"):
        OpSet("mine", lsr_block=lambda x, w: x)


@pytest.mark.parametrize("fn,why", [
    (lambda x, weight, bias: x, "lacks parameter 'eps'"),
    (lambda x, weight, bias, epsilon: x, "parameter 4 is 'epsilon', expected 'eps'"),
    (lambda *args: args[0], r"takes \*args/\*\*kwargs where 'x' is expected"),
    (lambda x, weight, bias, eps, fast: x, "extra parameter 'fast' has no default"),
    (lambda x, weight, bias, *, eps: x, "parameter 4 is 'eps', expected 'eps'"),  # keyword-only where positional
])
def test_each_kind_of_mismatch(fn, why):
    with pytest.raises(TypeError, match=why):
        OpSet("mine", layer_norm=fn)


def test_compatible_overrides_pass():
    def extra_option(x, dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma, eps=1e-6, *, fast=True):
        return lsr_block_ref(x, dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma, eps)

    ops = OpSet("mine", lsr_block=extra_option, layer_norm=layer_norm_ref)
    assert ops.overridden == ("layer_norm", "lsr_block")
    with pytest.raises(TypeError, match="has no default"):  # the reference's eps has a default
        OpSet("mine", lsr_block=lambda x, dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma, eps: x)


def test_unknown_op():
    with pytest.raises(TypeError, match=r"unknown ops \['gelu'\]"):
        OpSet("mine", gelu=torch.nn.functional.gelu)


def test_custom_op_signature_comes_from_its_schema():
    @torch.library.custom_op("umsnet_fast_test::scaled_layer_norm", mutates_args=())
    def scaled(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float,
               scale: float = 1.0) -> torch.Tensor:
        return layer_norm_ref(x, weight, bias, eps) * scale

    assert list(op_signature(scaled).parameters) == ["x", "weight", "bias", "eps", "scale"]
    assert OpSet("mine", layer_norm=scaled).layer_norm is scaled


def test_coarse_ops_have_reference_signatures():
    assert list(REFERENCE_SIGNATURES["lsr_module"].parameters) == ["x", "w"]
    assert list(REFERENCE_SIGNATURES["forward"].parameters) == ["w", "xs", "num_slices"]
