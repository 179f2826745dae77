"""downsample (folded BatchNorm + kernel-s stride-s conv) on every implementation."""
from __future__ import annotations

import pytest

from umsnet_fast.ops import downsample_ref
from umsnet_fast.reference import Downsample
from umsnet_fast.testing import check_op, randomize_
from umsnet_fast.weights import DownsampleWeights

from op_cases import make_input, op_cases, with_layout

# (batch, length, C_in, C_out, stride): odd lengths drop their tail; stride 1 is the fusion module's
# (L = 1 there is K = 1); C_out 200 spans two column blocks; odd widths.
SHAPES = [(2, 9, 24, 40, 2), (3, 8, 10, 20, 2), (2, 5, 24, 24, 1), (2, 1, 12, 200, 1), (1, 3, 16, 32, 2),
          (3, 25, 16, 32, 2), (3, 8, 37, 70, 2), (3, 24, 64, 64, 1)]


@pytest.mark.parametrize("impl,dtype,shape,layout", op_cases("downsample", SHAPES))
def test_downsample(impl, dtype, shape, layout):
    n, length, c_in, c_out, stride = shape
    d = DownsampleWeights.from_module(randomize_(Downsample(c_in, c_out, stride).double(), 5))
    args = (make_input((n, length, c_in), 5), d.weight.detach(), d.bias.detach(), stride)
    out = check_op(with_layout(impl, layout), downsample_ref, args, dtype=dtype, device=impl.device)
    assert out.dtype == dtype
