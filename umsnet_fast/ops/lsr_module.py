"""Module-level references: a whole LSR module, a Transformer encoder layer, as compositions of the
reference ops (the fused module kernels of kernels/ are tested against these)."""
from __future__ import annotations

import torch


def lsr_module_ref(x: torch.Tensor, w, pool: bool = False) -> torch.Tensor:
    """Stem, every LSR block and the downsamples of one module (umsnet_fast.forward.run_lsr_module with
    the reference ops), then with pool=True the mean over length.

    x: (batch, length, C_in); w: an LSRModuleWeights
    out: (batch, length', dims[-1]), or (batch, dims[-1]) with pool
    """
    from ..forward import REFERENCE_OPS, run_lsr_module  # forward imports this package

    y = run_lsr_module(REFERENCE_OPS, x, w)
    return y.mean(1) if pool else y


def encoder_layer_ref(x: torch.Tensor, w) -> torch.Tensor:
    """One pre-norm Transformer encoder layer (umsnet_fast.forward.run_encoder_layer, reference ops).

    x: (batch, tokens, d); w: an EncoderLayerWeights. out: (batch, tokens, d)
    """
    from ..forward import REFERENCE_OPS, run_encoder_layer

    return run_encoder_layer(REFERENCE_OPS, x, w)
