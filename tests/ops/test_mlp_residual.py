"""mlp_residual (residual + gamma * Linear(GELU(Linear(h)))) on every implementation."""
from __future__ import annotations

import math

import pytest

from umsnet_fast.ops import mlp_residual_ref
from umsnet_fast.testing import check_op

from op_cases import make_input, op_cases, with_layout

# (leading shape, C, hidden, gamma): the LSR block's (hidden 4C) and the Transformer's (256 -> 512, no
# gamma); several leading axes, a single row, rows spanning several tiles, odd sizes
SHAPES = [((2, 9), 24, 96, True), ((3,), 10, 40, False), ((1, 1), 16, 64, True), ((70,), 40, 160, True),
          ((2, 9), 40, 72, False), ((2, 9), 40, 72, True), ((2, 5), 256, 512, False)]


@pytest.mark.parametrize("impl,dtype,shape,layout", op_cases("mlp_residual", SHAPES))
def test_mlp_residual(impl, dtype, shape, layout):
    lead, c, h, with_gamma = shape
    args = (make_input((*lead, c), 1), make_input((h, c), 2) / math.sqrt(c), 0.1 * make_input((h,), 3),
            make_input((c, h), 4) / math.sqrt(h), 0.1 * make_input((c,), 5),
            0.5 + make_input((c,), 6).abs() if with_gamma else None, make_input((*lead, c), 7))
    out = check_op(with_layout(impl, layout, which=(0, 6)), mlp_residual_ref, args, dtype=dtype, device=impl.device)
    assert out.dtype == dtype
