"""Numerics harness (DESIGN.md section 3, CONVENTIONS.md "Tests"), shared by every test of a kernel.

Three outputs: the kernel at precision p, the reference at precision p, and the reference in float64
on upcast copies. The kernel passes when  max|kernel - fp64| <= 2 * max|ref_p - fp64| + atol(p).
"""
from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn

# atol of the contract per dtype
ATOL = {torch.float64: 1e-5, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 1e-2}


def contract_atol(dtype: torch.dtype) -> float:
    return ATOL[dtype]


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and buffer a random value that keeps activations O(1).

    LayerScale gammas and norm weights land around 1 (with the default gamma of 1e-6 every block is
    nearly the identity and a broken kernel would still pass); BatchNorm running stats are moved away
    from 0 and 1; matrices get variance 1 / fan_in; biases are small but not zero.
    """
    g = torch.Generator().manual_seed(seed)

    def rand(shape, lo, hi):
        return torch.rand(shape, generator=g, dtype=torch.float64) * (hi - lo) + lo

    def randn(shape, std):
        return torch.randn(shape, generator=g, dtype=torch.float64) * std

    for name, p in list(model.named_parameters()) + list(model.named_buffers()):
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            continue
        if leaf == "gamma" or (leaf == "weight" and p.dim() == 1):  # LayerScale, norm weights
            new = rand(p.shape, 0.5, 1.5)
        elif leaf == "running_mean":
            new = randn(p.shape, 0.5)
        elif leaf == "running_var":
            new = rand(p.shape, 0.5, 2.0)
        elif p.dim() == 1 or leaf in ("cls_token", "pos_embed"):  # biases, tokens
            new = randn(p.shape, 0.1 if p.dim() == 1 else 0.5)
        else:  # weight matrices and conv kernels: fan_in is everything but the output axis
            fan_in = p[0].numel()
            new = randn(p.shape, 1.0 / math.sqrt(fan_in))
        p.copy_(new.to(p.dtype))
    return model


def module_atol(dtype: torch.dtype, expected: torch.Tensor) -> float:
    """atol for a whole module (many ops in a row): the contract's, plus for 16-bit dtypes 2^-5 of the
    largest expected output (8 bf16 ulps of it). The reference at bf16 rounds at other points than any
    fused kernel, so over six blocks and three downsamples 2 x its error is too tight for every fused
    path (the per-block one included); a wrong offset or mask still gives errors of O(1)."""
    scale = expected.abs().max().item() if expected.numel() else 0.0
    return contract_atol(dtype) + (2 ** -5 * scale if dtype in (torch.float16, torch.bfloat16) else 0.0)


def mismatch_report(actual: torch.Tensor, expected: torch.Tensor, tol: float, limit: int = 5) -> str:
    """How many elements differ by more than tol, and the worst few with their indices."""
    diff = (actual.double() - expected.double()).abs()
    bad = diff > tol
    n_bad = int(bad.sum())
    lines = [f"{n_bad} of {diff.numel()} elements differ by more than {tol:.3g} "
             f"(max {diff.max().item():.3g})"]
    if n_bad:
        flat = diff.flatten()
        for i in flat.topk(min(limit, n_bad)).indices.tolist():
            idx = tuple(int(j) for j in torch.unravel_index(torch.tensor(i), diff.shape))
            lines.append(f"  at {idx}: got {actual[idx].item():.6g}, expected {expected[idx].item():.6g}")
    return "\n".join(lines)


def assert_matches_oracle(out: torch.Tensor, ref: torch.Tensor, oracle: torch.Tensor,
                          atol: float | None = None, what: str = "output") -> None:
    """The contract: max|out - oracle| <= 2 * max|ref - oracle| + atol (atol from out's dtype)."""
    if out.shape != oracle.shape:
        raise AssertionError(f"{what}: shape {tuple(out.shape)}, expected {tuple(oracle.shape)}")
    atol = contract_atol(out.dtype) if atol is None else atol
    out_err = (out.double() - oracle.double()).abs().max().item() if out.numel() else 0.0
    ref_err = (ref.double() - oracle.double()).abs().max().item() if ref.numel() else 0.0
    tol = 2 * ref_err + atol
    if not out_err <= tol:  # also catches NaN
        raise AssertionError(
            f"{what} ({out.dtype}): max error {out_err:.3g} vs the float64 oracle exceeds "
            f"2 x reference error {ref_err:.3g} + atol {atol:.3g}\n" + mismatch_report(out, oracle, tol))


def _cast(obj, dtype, device=None):
    if isinstance(obj, torch.Tensor) and obj.dtype.is_floating_point:
        return obj.to(device=device, dtype=dtype)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cast(o, dtype, device) for o in obj)
    if isinstance(obj, dict):
        return {k: _cast(v, dtype, device) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and hasattr(obj, "map"):  # umsnet_fast.weights dataclasses
        return obj.map(lambda t: _cast(t, dtype, device))
    return obj


def check_op(kernel: Callable, reference: Callable, args: Sequence, kwargs: dict | None = None, *,
             dtype: torch.dtype = torch.float32, device=None, atol: float | None = None) -> torch.Tensor:
    """Run an op's kernel and its *_ref at `dtype` and the *_ref in float64; assert the contract.

    args/kwargs hold the master inputs (any float dtype); tensors are cast per run, other values pass
    through. Returns the kernel's output.
    """
    kwargs = kwargs or {}
    out = kernel(*_cast(args, dtype, device), **_cast(kwargs, dtype, device))
    ref = reference(*_cast(args, dtype, device), **_cast(kwargs, dtype, device))
    oracle = reference(*_cast(args, torch.float64, device), **_cast(kwargs, torch.float64, device))
    assert_matches_oracle(out, ref, oracle.to(out.device), atol)
    return out


@torch.no_grad()
def check_model(fast_model: nn.Module, reference_model: nn.Module, xs: Sequence[torch.Tensor], *,
                dtype: torch.dtype = torch.float32, device=None, atol: float | None = None) -> torch.Tensor:
    """Whole-model contract: the fast model at `dtype` against reference_model at `dtype` and in float64.

    The models must hold the same weights; both are copied, so the caller's models are left as they are.
    """
    device = device or xs[0].device
    fast = copy.deepcopy(fast_model).to(device=device, dtype=dtype).eval()
    ref = copy.deepcopy(reference_model).to(device=device, dtype=dtype).eval()
    oracle_model = copy.deepcopy(reference_model).to(device=device, dtype=torch.float64).eval()
    out = fast(_cast(list(xs), dtype, device))
    assert_matches_oracle(out, ref(_cast(list(xs), dtype, device)),
                          oracle_model(_cast(list(xs), torch.float64, device)), atol)
    return out
