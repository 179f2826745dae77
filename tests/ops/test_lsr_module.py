"""lsr_module (stem + stages of LSR blocks + downsamples; a whole sensor or fusion module) on every
implementation that runs it as one op; 16-bit dtypes with a module's tolerance (testing.module_atol)."""
from __future__ import annotations

import pytest
import torch

from umsnet_fast.forward import REFERENCE_OPS
from umsnet_fast.reference import LSRModule
from umsnet_fast.testing import check_op, module_atol, randomize_
from umsnet_fast.weights import LSRModuleWeights

from op_cases import make_input, op_cases, with_layout

# (batch, length, C_in, dims, depths, downsample kernel, depthwise kernel): a sensor module of UMSNet-A
# (L = 25), odd widths and length, L = 8 (the shortest a sensor module takes), the fusion module's
# stride 1 at K = 1, depths 0 and 1, depthwise kernels 5 and 7
SHAPES = [(2, 25, 3, (16, 32, 64, 128), (2, 2, 2, 2), 2, 3), (1, 11, 3, (12, 20, 36, 52), (1, 2, 1, 1), 2, 5),
          (3, 8, 2, (8, 16, 24, 40), (1, 0, 1, 1), 2, 7), (2, 1, 70, (24, 24, 40), (2, 1, 1), 1, 3),
          (2, 5, 40, (24, 24, 40), (1, 1, 2), 1, 5)]


def _weights(shape) -> LSRModuleWeights:
    _, _, c_in, dims, depths, down, k = shape
    module = randomize_(LSRModule(c_in, dims, list(depths), kernel_size=k, downsample_kernel=down).double()).eval()
    return LSRModuleWeights.from_module(module).map(torch.Tensor.detach)


@pytest.mark.parametrize("impl,dtype,shape,layout", op_cases("lsr_module", SHAPES))
def test_lsr_module(impl, dtype, shape, layout):
    n, length, c_in = shape[:3]
    x, w = make_input((n, length, c_in)), _weights(shape)
    out = check_op(with_layout(lambda x, w: impl(x, w.to(device=x.device, dtype=x.dtype)), layout),
                   lambda x, w: REFERENCE_OPS.lsr_module(x, w.to(device=x.device, dtype=x.dtype)),
                   (x, w), dtype=dtype, device=impl.device, atol=module_atol(dtype, REFERENCE_OPS.lsr_module(x, w)))
    assert out.dtype == dtype
