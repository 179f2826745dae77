"""encoder_layer (a pre-norm Transformer encoder layer) on every implementation that runs it as one op;
16-bit dtypes with a module's tolerance (testing.module_atol)."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from umsnet_fast.forward import REFERENCE_OPS
from umsnet_fast.testing import check_op, module_atol, randomize_
from umsnet_fast.weights import EncoderLayerWeights

from op_cases import make_input, op_cases, with_layout

# (batch, tokens, d, heads, mlp): UMSNet's (K + 1 = 25 tokens, d = 256, 8 heads, 512), odd sizes,
# K = 1 (2 tokens), batch 1
SHAPES = [(2, 25, 256, 8, 512), (2, 2, 36, 3, 50), (1, 9, 40, 5, 72), (3, 13, 24, 1, 24)]


@pytest.mark.parametrize("impl,dtype,shape,layout", op_cases("encoder_layer", SHAPES))
def test_encoder_layer(impl, dtype, shape, layout):
    batch, tokens, d, heads, mlp = shape
    layer = nn.TransformerEncoderLayer(d, heads, mlp, 0.0, activation="gelu", layer_norm_eps=1e-6,
                                       batch_first=True, norm_first=True)
    w = EncoderLayerWeights.from_module(randomize_(layer).double().eval()).map(torch.Tensor.detach)
    x = make_input((batch, tokens, d))
    out = check_op(with_layout(lambda x, w: impl(x, w.to(device=x.device, dtype=x.dtype)), layout),
                   lambda x, w: REFERENCE_OPS.encoder_layer(x, w.to(device=x.device, dtype=x.dtype)),
                   (x, w), dtype=dtype, device=impl.device, atol=module_atol(dtype, REFERENCE_OPS.encoder_layer(x, w)))
    assert out.dtype == dtype
