"""lsr_block (dwconv + LayerNorm + Linear/GELU + Linear + LayerScale + residual) on every implementation."""
from __future__ import annotations

import pytest

from umsnet_fast.ops import lsr_block_ref
from umsnet_fast.testing import check_op

from lsr_block_cases import block_args
from op_cases import op_cases, with_layout

# (batch, length, C, k): batch 1; L = 8, odd L and L = 1 (the fusion module at K = 1); widths that are
# not powers of 2 (37, 24, 100, 1) and UMSNet's widest (128); many rows spanning several tiles with a
# ragged last one; depthwise kernels of 1, 3, 5 and 7 taps.
SHAPES = [(1, 25, 16, 3), (3, 8, 37, 3), (2, 1, 24, 3), (2, 13, 128, 3), (40, 5, 24, 3), (2, 9, 24, 5),
          (3, 10, 36, 7), (5, 3, 40, 1), (2, 7, 64, 7), (1, 9, 1, 3), (1, 1, 48, 5), (19, 25, 100, 3)]


@pytest.mark.parametrize("impl,dtype,shape,layout", op_cases("lsr_block", SHAPES))
def test_lsr_block(impl, dtype, shape, layout):
    n, length, c, k = shape
    out = check_op(with_layout(impl, layout), lsr_block_ref, block_args(n, length, c, k), dtype=dtype,
                   device=impl.device)
    assert out.dtype == dtype
