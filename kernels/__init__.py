"""Triton kernels (installed as umsnet_fast.kernels). One module per op, each holding its @triton.jit
kernel(s), the host launcher and the torch.library custom op, and re-exporting the op's *_ref:

    dwconv_layernorm   depthwise conv + LayerNorm (+ GELU)
    mlp_residual       Linear + GELU + Linear + LayerScale + residual, hidden dim streamed
    lsr_block          the whole LSR block in one kernel, or the two above (chosen per shape)
    linear_layernorm   the stem (Linear + LayerNorm); its gathered-row GEMM also serves
    downsample         BatchNorm folded into the stride-s conv
    layer_norm         LayerNorm over the last axis
    lsr_module         a whole LSR module (stem, blocks, downsamples, optional mean) in one kernel
    encoder_layer      a whole Transformer encoder layer (+ token embedding / final LayerNorm + head)
    aot_check          compiles all of them for a GPU architecture without a GPU

Importing a module imports triton. Set TRITON_INTERPRET=1 before that to run the kernels on CPU
tensors through Triton's interpreter (for tests). Shared pieces: _common.py.
"""
