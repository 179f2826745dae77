"""The inference forward pass as a sequence of ops over `ModelWeights`, channels-last throughout.

Each backend hands in an `OpSet`: the reference ops, with the ones it accelerates replaced. Coarse
ops (`lsr_module`, `encoder_layer`, `slice_features`, `window_head`, `forward`) are compositions of the
fine ones by default, so a backend can replace a single kernel or a whole module with one call.

The window forward is two steps: `slice_features` (stage 1, each slice alone) and `window_head`
(stages 2 and 3 over K slice features). Streaming (umsnet_fast.streaming) caches the first and calls
them separately, through `Stages`: a backend whose `forward` is one fused call still runs both steps
with its own ops (Backend.stages).
"""
from __future__ import annotations

import inspect

import torch

from . import ops as _ops
from .weights import EncoderLayerWeights, LSRModuleWeights, ModelWeights

# Fine-grained ops and their reference implementations (signatures: see umsnet_fast.ops).
PRIMITIVE_OPS = {
    "linear_layernorm": _ops.linear_layernorm_ref,
    "lsr_block": _ops.lsr_block_ref,
    "downsample": _ops.downsample_ref,
    "layer_norm": _ops.layer_norm_ref,
    "linear": _ops.linear_ref,
    "attention": _ops.attention_ref,
    "mlp_residual": _ops.mlp_residual_ref,
}


def run_lsr_module(ops: OpSet, x: torch.Tensor, w: LSRModuleWeights) -> torch.Tensor:
    """x: (batch, length, C_in) -> (batch, length', dims[-1])."""
    x = ops.linear_layernorm(x, w.stem_weight, w.stem_bias, w.stem_ln_weight, w.stem_ln_bias, w.stem_eps)
    for s, blocks in enumerate(w.stages):
        if s > 0:
            d = w.downsamples[s - 1]
            x = ops.downsample(x, d.weight, d.bias, d.stride)
        for b in blocks:
            x = ops.lsr_block(x, b.dw_weight, b.ln_weight, b.ln_bias, b.w1, b.b1, b.w2, b.b2, b.gamma, b.eps)
    return x


def run_encoder_layer(ops: OpSet, x: torch.Tensor, w: EncoderLayerWeights) -> torch.Tensor:
    """Pre-norm Transformer encoder layer. x: (batch, tokens, d) -> (batch, tokens, d)."""
    h = ops.layer_norm(x, w.norm1_weight, w.norm1_bias, w.eps)
    a = ops.attention(ops.linear(h, w.in_proj_weight, w.in_proj_bias), w.num_heads)
    x = x + ops.linear(a, w.out_proj_weight, w.out_proj_bias)
    h = ops.layer_norm(x, w.norm2_weight, w.norm2_bias, w.eps)
    return ops.mlp_residual(h, w.w1, w.b1, w.w2, w.b2, None, x)


def window_slices(xs: list[torch.Tensor], num_slices: int) -> list[torch.Tensor]:
    """Per-sensor windows (batch, C_i, K * L_i) -> per-sensor slices (batch * K, L_i, C_i), channels last."""
    out = []
    for x in xs:
        batch, c, t = x.shape
        out.append(x.reshape(batch, c, num_slices, t // num_slices).permute(0, 2, 3, 1)
                   .reshape(batch * num_slices, t // num_slices, c))
    return out


def run_slice_features(ops: OpSet, w: ModelWeights, slices: list[torch.Tensor]) -> torch.Tensor:
    """Stage 1, each slice alone: per-sensor slices (n, L_i, C_i) -> slice features (n, sum_i dims[-1]).

    Each sensor's LSR module, then the mean over the remaining length; sensors concatenated in order.
    """
    return torch.cat([ops.lsr_module(x, mw).mean(1) for mw, x in zip(w.sensors, slices)], -1)


def run_window_head(ops: OpSet, w: ModelWeights, features: torch.Tensor) -> torch.Tensor:
    """Stages 2 and 3: slice features of whole windows (batch, K, F) -> logits (batch, num_classes)."""
    return run_transformer(ops, w, ops.lsr_module(features, w.fusion))  # fusion: (batch, K, fusion_dims[-1])


def run_transformer(ops: OpSet, w: ModelWeights, h: torch.Tensor) -> torch.Tensor:
    """Stage 3: the fusion module's output h (batch, K, fusion_dims[-1]) -> logits (batch, num_classes)."""
    batch = h.shape[0]
    tokens = ops.linear(h, w.token_weight, w.token_bias)
    cls = w.cls_token.expand(batch, 1, -1)
    tokens = torch.cat([cls, tokens], 1) + w.pos_embed
    for lw in w.layers:
        tokens = ops.encoder_layer(tokens, lw)
    pooled = ops.layer_norm(tokens[:, 0], w.norm_weight, w.norm_bias, w.norm_eps)
    return ops.linear(pooled, w.head_weight, w.head_bias)


def run_model(ops: OpSet, w: ModelWeights, xs: list[torch.Tensor], num_slices: int) -> torch.Tensor:
    """xs: per-sensor (batch, C_i, K * L_i) -> logits (batch, num_classes): stage 1, then stages 2-3."""
    batch = xs[0].shape[0]
    features = ops.slice_features(w, window_slices(xs, num_slices))  # (batch * K, F)
    return ops.window_head(w, features.reshape(batch, num_slices, -1))


def _without_ops(fn) -> inspect.Signature:
    """The signature of a run_* composition without its leading `ops` parameter."""
    sig = inspect.signature(fn)
    return sig.replace(parameters=list(sig.parameters.values())[1:])


# The signature every override must have: the *_ref's for fine ops, the composition's for coarse ones.
REFERENCE_SIGNATURES = {op: inspect.signature(fn) for op, fn in PRIMITIVE_OPS.items()}
# Compositions a backend may replace whole; streaming calls slice_features and window_head.
COARSE_OPS = {"lsr_module": run_lsr_module, "encoder_layer": run_encoder_layer, "slice_features": run_slice_features,
              "window_head": run_window_head, "forward": run_model}
REFERENCE_SIGNATURES.update({op: _without_ops(fn) for op, fn in COARSE_OPS.items()})


def op_signature(fn) -> inspect.Signature:
    """fn's call signature; for a torch.library custom op (whose Python signature is *args, **kwargs),
    the one its schema declares."""
    schema = getattr(getattr(fn, "_opoverload", None), "_schema", None)
    if schema is None:
        return inspect.signature(fn)
    kinds = {False: inspect.Parameter.POSITIONAL_OR_KEYWORD, True: inspect.Parameter.KEYWORD_ONLY}
    return inspect.Signature([
        inspect.Parameter(a.name, kinds[a.kwarg_only],
                          default=a.default_value if a.has_default_value() else inspect.Parameter.empty)
        for a in schema.arguments])


def signature_mismatch(op: str, fn) -> str | None:
    """Why fn cannot stand in for op's reference, or None. The reference's parameters must come first,
    by name and kind, with a default wherever the reference has one; any further parameter of fn
    needs a default (the forward never passes it)."""
    ref = list(REFERENCE_SIGNATURES[op].parameters.values())
    try:
        got = list(op_signature(fn).parameters.values())
    except (TypeError, ValueError) as e:  # a builtin or object without a signature
        return f"its signature cannot be read ({e})"
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    for i, r in enumerate(ref):
        if i >= len(got):
            return f"it lacks parameter {r.name!r}"
        g = got[i]
        if g.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            return f"it takes *args/**kwargs where {r.name!r} is expected"
        if g.name != r.name or (r.kind in positional) != (g.kind in positional):
            return f"parameter {i + 1} is {g.name!r}, expected {r.name!r}"
        if r.default is not inspect.Parameter.empty and g.default is inspect.Parameter.empty:
            return f"parameter {r.name!r} has no default (the reference's is {r.default!r})"
    for g in got[len(ref):]:
        if g.default is inspect.Parameter.empty and g.kind not in (inspect.Parameter.VAR_POSITIONAL,
                                                                    inspect.Parameter.VAR_KEYWORD):
            return f"its extra parameter {g.name!r} has no default"
    return None


class OpSet:
    """The ops one backend runs. Unnamed ops are the reference ones; coarse ops default to compositions.

    Every override must be callable as its reference is (see signature_mismatch): a mismatch is a
    TypeError naming the op and both signatures, raised when the OpSet is built, not mid-forward.
    """

    def __init__(self, name: str, **overrides):
        unknown = set(overrides) - set(REFERENCE_SIGNATURES)
        if unknown:
            raise TypeError(f"unknown ops {sorted(unknown)}; known: {sorted(PRIMITIVE_OPS)} and "
                            f"{', '.join(COARSE_OPS)}")
        for op, fn in overrides.items():
            why = signature_mismatch(op, fn)
            if why is not None:
                raise TypeError(f"OpSet {name!r}: op {op!r} {why}; it has signature {_shown(fn)}, its reference "
                                f"{REFERENCE_SIGNATURES[op]}")
        self.name = name
        self.overridden = tuple(sorted(overrides))
        for op, fn in PRIMITIVE_OPS.items():
            setattr(self, op, overrides.get(op, fn))
        self.lsr_module = overrides.get("lsr_module", lambda x, w: run_lsr_module(self, x, w))
        self.encoder_layer = overrides.get("encoder_layer", lambda x, w: run_encoder_layer(self, x, w))
        self.slice_features = overrides.get("slice_features", lambda w, slices: run_slice_features(self, w, slices))
        self.window_head = overrides.get("window_head", lambda w, features: run_window_head(self, w, features))
        self.forward = overrides.get("forward", lambda w, xs, k: run_model(self, w, xs, k))

    def __repr__(self) -> str:
        return f"OpSet({self.name!r}, overridden={list(self.overridden)})"


def _shown(fn) -> str:
    try:
        return str(op_signature(fn))
    except (TypeError, ValueError):
        return "(unreadable)"


REFERENCE_OPS = OpSet("reference")


class Stages:
    """The two steps of the forward bound to one set of weights, for streaming.

    slice_features(slices): per-sensor (n, L_i, C_i) -> (n, F); window_head(features): (batch, K, F) ->
    logits (batch, num_classes). `weights` is what the steps were built from (identity tells a change).
    """

    def __init__(self, ops: OpSet, weights):
        self.ops, self.weights = ops, weights

    def slice_features(self, slices: list[torch.Tensor]) -> torch.Tensor:
        return self.ops.slice_features(self.weights, slices)

    def window_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.ops.window_head(self.weights, features)
