"""Op layer: every fused op's plain-PyTorch reference (`*_ref`); backends register kernels with the
same signatures (see umsnet_fast.forward.OpSet)."""
from .layers import attention_ref, downsample_ref, fold_batchnorm, layer_norm_ref, linear_layernorm_ref, linear_ref
from .lsr_block import dwconv_layernorm_ref, lsr_block_ref, mlp_residual_ref
from .lsr_module import encoder_layer_ref, lsr_module_ref

__all__ = [
    "attention_ref", "downsample_ref", "dwconv_layernorm_ref", "encoder_layer_ref", "fold_batchnorm", "layer_norm_ref",
    "linear_layernorm_ref", "linear_ref", "lsr_block_ref", "lsr_module_ref", "mlp_residual_ref",
]
