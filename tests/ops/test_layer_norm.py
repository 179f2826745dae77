"""layer_norm (over the last axis; the Transformer's norms and the head's) on every implementation."""
from __future__ import annotations

import pytest
import torch.nn as nn

from umsnet_fast.ops import layer_norm_ref
from umsnet_fast.testing import check_op, randomize_

from op_cases import make_input, op_cases, with_layout

# 2-D and 3-D, a single row, odd widths, the Transformer's d = 256
SHAPES = [(3, 7, 24), (5, 10), (1, 1, 256), (4, 3), (2, 3, 17), (7, 37), (2, 25, 256), (1, 1, 5)]


@pytest.mark.parametrize("impl,dtype,shape,layout", op_cases("layer_norm", SHAPES))
def test_layer_norm(impl, dtype, shape, layout):
    norm = randomize_(nn.LayerNorm(shape[-1], eps=1e-6).double(), 6)
    params = (norm.weight.detach(), norm.bias.detach(), norm.eps)
    x = make_input(shape, 6) * 3 + 1
    out = check_op(with_layout(impl, layout), layer_norm_ref, (x, *params), dtype=dtype, device=impl.device)
    assert out.dtype == dtype
    # the [class] token of the Transformer: tokens[:, 0], rows strided by (K + 1) * d
    check_op(lambda t, *a: impl(t[:, 0], *a), lambda t, *a: layer_norm_ref(t[:, 0], *a),
             (make_input((3, 5, shape[-1]), 7), *params), dtype=dtype, device=impl.device)
