"""linear_layernorm (the stem: pointwise conv + LayerNorm) on every implementation."""
from __future__ import annotations

import pytest

from umsnet_fast.ops import linear_layernorm_ref
from umsnet_fast.reference import Stem
from umsnet_fast.testing import check_op, randomize_

from op_cases import make_input, op_cases, with_layout

# (batch, length, C_in, C_out): sensor stems (3 axes; 2 for ECG), a fusion-like stem (70 in), batch 1,
# L = 1, L = 8 and odd L, odd widths.
SHAPES = [(2, 9, 3, 24), (3, 1, 70, 10), (1, 25, 2, 16), (2, 8, 3, 40), (2, 25, 3, 16), (2, 9, 2, 20),
          (5, 7, 6, 37)]


@pytest.mark.parametrize("impl,dtype,shape,layout", op_cases("linear_layernorm", SHAPES))
def test_linear_layernorm(impl, dtype, shape, layout):
    n, length, c_in, c_out = shape
    stem = randomize_(Stem(c_in, c_out).double(), 4)
    args = (make_input((n, length, c_in), 4), stem.conv.weight[:, :, 0].detach(), stem.conv.bias.detach(),
            stem.norm.weight.detach(), stem.norm.bias.detach(), stem.norm.eps)
    out = check_op(with_layout(impl, layout), linear_layernorm_ref, args, dtype=dtype, device=impl.device)
    assert out.dtype == dtype
