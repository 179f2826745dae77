"""attention (multi-head self-attention from a packed q/k/v projection) on every implementation."""
from __future__ import annotations

import pytest

from umsnet_fast.ops import attention_ref
from umsnet_fast.testing import check_op

from op_cases import make_input, op_cases, with_layout

# (batch, tokens, d, heads): UMSNet's K + 1 = 25 tokens at d = 256 with 8 heads; odd token counts and
# head sizes; one token (K = 0 slices plus the class token cannot happen, but K = 1 gives 2); one head
SHAPES = [(2, 25, 256, 8), (3, 17, 24, 3), (1, 1, 32, 2), (1, 40, 48, 1), (2, 2, 36, 3)]


@pytest.mark.parametrize("impl,dtype,shape,layout", op_cases("attention", SHAPES))
def test_attention(impl, dtype, shape, layout):
    batch, tokens, d, heads = shape
    out = check_op(with_layout(impl, layout), attention_ref, (2 * make_input((batch, tokens, 3 * d)), heads),
                   dtype=dtype, device=impl.device)
    assert out.dtype == dtype
