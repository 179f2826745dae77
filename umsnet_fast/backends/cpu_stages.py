"""Streaming steps of the `cpu` backend: stage 1 and stages 2-3 on modules packed once.

The cpu backend's whole forward is one C++ call over its packed engine, and its coarse ops
(`lsr_module`, `encoder_layer`) pack their weights on every call (they exist to test each kernel). A
stream calls the two steps of the forward every hop, so here every LSR module, encoder layer and the
two plain Linears are packed once per change of the weights and the OpSet's ops look them up; the op
sequence stays umsnet_fast.forward's (run_slice_features / run_window_head).
"""
from __future__ import annotations

from ..forward import OpSet, Stages
from . import cpu


def stages(prepared: cpu.CpuWeights) -> Stages:
    """Stages over the fp32 ModelWeights of `prepare`'s result, with their modules packed here."""
    w = prepared.weights
    ext = cpu._ext()
    modules = {id(m): cpu.pack_module(m) for m in (*w.sensors, w.fusion)}
    layers = {id(lw): cpu.pack_layer(lw) for lw in w.layers}
    linears = {id(w.token_weight): cpu.pack_linear(w.token_weight, w.token_bias),
               id(w.head_weight): cpu.pack_linear(w.head_weight, w.head_bias)}

    # Weights these steps did not pack (none in run_slice_features / run_window_head) pack per call.
    def lsr_module(x, w):
        packed = modules.get(id(w))
        return ext.lsr_module(x, packed) if packed is not None else cpu.lsr_module(x, w)

    def encoder_layer(x, w):
        packed = layers.get(id(w))
        return ext.encoder_layer(x, packed) if packed is not None else cpu.encoder_layer(x, w)

    def linear(x, weight, bias):
        packed = linears.get(id(weight))
        return ext.linear(x, packed) if packed is not None else cpu.linear(x, weight, bias)

    ops = OpSet("cpu-stages", lsr_module=lsr_module, encoder_layer=encoder_layer, linear=linear,
                layer_norm=cpu.layer_norm)
    return Stages(ops, w)
