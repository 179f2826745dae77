"""linear (token projection, q/k/v and output projections, head) on every implementation."""
from __future__ import annotations

import math

import pytest

from umsnet_fast.ops import linear_ref
from umsnet_fast.testing import check_op

from op_cases import make_input, op_cases, with_layout

# (rows, C_in, C_out, bias): the head (6 classes from 256), odd sizes without bias, a qkv projection
# with rows spanning several tiles, a single row
SHAPES = [(1, 128, 6, True), (25, 33, 70, False), (257, 256, 768, True), (3, 9, 1, True)]


@pytest.mark.parametrize("impl,dtype,shape,layout", op_cases("linear", SHAPES))
def test_linear(impl, dtype, shape, layout):
    m, k, n, bias = shape
    args = (make_input((m, k), 1), make_input((n, k), 2) / math.sqrt(k), 0.1 * make_input((n,), 3) if bias else None)
    out = check_op(with_layout(impl, layout), linear_ref, args, dtype=dtype, device=impl.device)
    assert out.dtype == dtype
