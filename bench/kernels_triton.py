"""Per-kernel GPU benchmark of the Triton kernels against their *_ref, in the same process.

    python -m umsnet_fast.bench.kernels_triton [--batch 1 256 4096] [--dtype fp32 fp16 bf16]
                                              [--kernel lsr_block ...] [--out bench/results/kernels_triton.csv]

Shapes are UMSNet-A's on HHAR (K = 24 slices of L = 25; sensor modules at widths 16/32/64/128 over
lengths 25/12/6/3, the fusion module at 64/128 over the K slices, the Transformer at d = 256, mlp 512).
Each op runs as the Triton kernel (for lsr_block: fused, split and auto; for the module kernels
lsr_module and encoder_layer also the per-block kernels) and as its *_ref on the same inputs; times
come from triton.testing.do_bench (median, p20, p80, in microseconds; the first call of each shape,
which autotunes, is not timed). Rows are printed as a table and appended to a CSV with
the device name, torch/triton versions, commit and date. Needs a CUDA GPU: it exits with a message
otherwise (the interpreter's timings would mean nothing).
"""
from __future__ import annotations

import argparse
import csv
import datetime
import os
import sys
from pathlib import Path

import torch

from umsnet_fast.bench.common import DTYPES, git_commit

K, L = 24, 25
SENSOR_STAGES = [(L, 16), (L // 2, 32), (L // 4, 64), (L // 8, 128)]  # (length, width) per stage
FUSION_STAGES = [(K, 64), (K, 128)]
FIELDS = ["kernel", "shape", "dtype", "impl", "median_us", "p20_us", "p80_us", "ref_over_impl", "device",
          "torch", "triton", "commit", "date"]


def _rand(*shape, dtype, scale=1.0):
    return torch.randn(*shape, device="cuda", dtype=torch.float32).mul_(scale).to(dtype)


def cases(batch: int, dtype: torch.dtype):
    """(kernel name, shape text, {impl: zero-argument callable}) for UMSNet-A/HHAR at this batch.

    The callables close over loop variables: consume each case before asking for the next."""
    from umsnet_fast import ops
    from umsnet_fast.kernels import downsample, layer_norm, linear_layernorm, lsr_block, mlp_residual
    from umsnet_fast.kernels import dwconv_layernorm as dwln

    n = batch * K
    rows = [(n, length, c) for length, c in SENSOR_STAGES] + [(batch, length, c) for length, c in FUSION_STAGES]
    for nb, length, c in rows:
        x = _rand(nb, length, c, dtype=dtype)
        dw, lnw, lnb = _rand(c, 3, dtype=dtype, scale=0.5), _rand(c, dtype=dtype), _rand(c, dtype=dtype)
        w1, b1 = _rand(4 * c, c, dtype=dtype, scale=c ** -0.5), _rand(4 * c, dtype=dtype, scale=0.1)
        w2, b2 = _rand(c, 4 * c, dtype=dtype, scale=(4 * c) ** -0.5), _rand(c, dtype=dtype, scale=0.1)
        gamma = _rand(c, dtype=dtype)
        blk = (x, dw, lnw, lnb, w1, b1, w2, b2, gamma, 1e-6)
        shape = f"({nb}, {length}, {c})"
        yield "lsr_block", shape, {
            "triton_fused": lambda: lsr_block.lsr_block(*blk, mode="fused"),
            "triton_split": lambda: lsr_block.lsr_block(*blk, mode="split"),
            "triton_auto": lambda: lsr_block.lsr_block(*blk, mode="auto"),
            "ref": lambda: ops.lsr_block_ref(*blk)}
        yield "dwconv_layernorm", shape, {
            "triton": lambda: dwln.dwconv_layernorm(x, dw, lnw, lnb, 1e-6),
            "ref": lambda: ops.dwconv_layernorm_ref(x, dw, lnw, lnb, 1e-6)}
        yield "mlp_residual", shape, {
            "triton": lambda: mlp_residual.mlp_residual(x, w1, b1, w2, b2, gamma, x),
            "ref": lambda: ops.mlp_residual_ref(x, w1, b1, w2, b2, gamma, x)}
    for (l_in, c_in), (_, c_out) in zip(SENSOR_STAGES, SENSOR_STAGES[1:]):
        x = _rand(n, l_in, c_in, dtype=dtype)
        w, b = _rand(c_out, 2 * c_in, dtype=dtype, scale=(2 * c_in) ** -0.5), _rand(c_out, dtype=dtype)
        yield "downsample", f"({n}, {l_in}, {c_in}) -> {c_out}", {
            "triton": lambda: downsample.downsample(x, w, b, 2), "ref": lambda: ops.downsample_ref(x, w, b, 2)}
    for nb, length, c_in, c_out in [(n, L, 3, 16), (batch, K, 2 * 128, 64)]:
        x = _rand(nb, length, c_in, dtype=dtype)
        args = (x, _rand(c_out, c_in, dtype=dtype, scale=c_in ** -0.5), _rand(c_out, dtype=dtype),
                _rand(c_out, dtype=dtype), _rand(c_out, dtype=dtype), 1e-6)
        yield "linear_layernorm", f"({nb}, {length}, {c_in}) -> {c_out}", {
            "triton": lambda: linear_layernorm.linear_layernorm(*args),
            "ref": lambda: ops.linear_layernorm_ref(*args)}
    tokens = _rand(batch, K + 1, 256, dtype=dtype)
    lnp = (_rand(256, dtype=dtype), _rand(256, dtype=dtype), 1e-6)
    yield "layer_norm", f"({batch}, {K + 1}, 256)", {
        "triton": lambda: layer_norm.layer_norm(tokens, *lnp), "ref": lambda: ops.layer_norm_ref(tokens, *lnp)}
    mw = (_rand(512, 256, dtype=dtype, scale=1 / 16), _rand(512, dtype=dtype),
          _rand(256, 512, dtype=dtype, scale=512 ** -0.5), _rand(256, dtype=dtype))
    yield "mlp_residual", f"({batch}, {K + 1}, 256) h=512", {
        "triton": lambda: mlp_residual.mlp_residual(tokens, *mw, None, tokens),
        "ref": lambda: ops.mlp_residual_ref(tokens, *mw, None, tokens)}
    # The module kernels: a whole sensor module (pooled) / the fusion module, one encoder layer; against
    # the per-block triton kernels (run_lsr_module / run_encoder_layer with the triton backend's ops).
    from umsnet_fast.backends.triton import BACKEND
    from umsnet_fast.forward import run_encoder_layer, run_lsr_module
    from umsnet_fast.kernels import encoder_layer, lsr_module
    from umsnet_fast.reference import LSRModule
    from umsnet_fast.weights import EncoderLayerWeights, LSRModuleWeights
    per_block = BACKEND.ops()
    for nb, length, c_in, dims, stride, pool in [(n, L, 3, (16, 32, 64, 128), 2, True),
                                                 (batch, K, 256, (64, 64, 64, 128), 1, False)]:
        mw = LSRModuleWeights.from_module(LSRModule(c_in, dims, (2,) * 4, downsample_kernel=stride)).to("cuda", dtype)
        packed, x = lsr_module.pack_lsr_module(mw), _rand(nb, length, c_in, dtype=dtype)
        yield "lsr_module", f"({nb}, {length}, {c_in}) {'pool' if pool else ''}", {
            "triton": lambda: lsr_module.lsr_module(x, packed, pool),
            "per_block": lambda: run_lsr_module(per_block, x, mw).mean(1) if pool else run_lsr_module(per_block, x, mw),
            "ref": lambda: ops.lsr_module_ref(x, mw, pool)}
    layer = torch.nn.TransformerEncoderLayer(256, 8, 512, dropout=0.0, activation="gelu", batch_first=True,
                                             norm_first=True, layer_norm_eps=1e-6)
    lw = EncoderLayerWeights.from_module(layer).to("cuda", dtype)
    yield "encoder_layer", f"({batch}, {K + 1}, 256)", {
        "triton": lambda: encoder_layer.encoder_layer(tokens, lw),
        "per_block": lambda: run_encoder_layer(per_block, tokens, lw),
        "ref": lambda: ops.encoder_layer_ref(tokens, lw)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 256, 4096])
    p.add_argument("--dtype", nargs="+", choices=sorted(DTYPES), default=["fp32", "fp16", "bf16"])
    p.add_argument("--kernel", nargs="+", default=None, help="only these kernels (default: all)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "kernels_triton.csv")
    args = p.parse_args(argv)

    if not torch.cuda.is_available():
        sys.exit("kernels_triton: needs a CUDA GPU (torch.cuda.is_available() is False); nothing was measured")
    if os.environ.get("TRITON_INTERPRET") == "1":
        sys.exit("kernels_triton: TRITON_INTERPRET=1 is set; unset it, interpreter timings mean nothing")
    import triton
    import triton.testing
    from rich.console import Console
    from rich.table import Table

    meta = dict(device=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__,
                commit=git_commit(), date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    table = Table(title=f"Triton kernels vs *_ref on {meta['device']} (torch {meta['torch']}, "
                        f"triton {meta['triton']}, {meta['commit']}); microseconds")
    for col in ("kernel", "shape", "dtype", "impl", "median", "p20", "p80", "ref / impl"):
        table.add_column(col, justify="right" if col in ("median", "p20", "p80", "ref / impl") else "left")
    out_rows = []
    with torch.no_grad():
        for batch in args.batch:
            for dname in args.dtype:
                for kernel, shape, impls in cases(batch, DTYPES[dname]):
                    if args.kernel and kernel not in args.kernel:
                        continue
                    times = {}
                    for impl, fn in impls.items():
                        fn()  # compile, autotune, pick fused/split: not timed
                        torch.cuda.synchronize()
                        times[impl] = [1e3 * t for t in
                                       triton.testing.do_bench(fn, warmup=25, rep=100, quantiles=[0.5, 0.2, 0.8])]
                    for impl, (med, p20, p80) in times.items():
                        ratio = times["ref"][0] / med
                        row = dict(kernel=kernel, shape=shape, dtype=dname, impl=impl, median_us=f"{med:.1f}",
                                   p20_us=f"{p20:.1f}", p80_us=f"{p80:.1f}", ref_over_impl=f"{ratio:.2f}", **meta)
                        out_rows.append(row)
                        table.add_row(kernel, shape, dname, impl, row["median_us"], row["p20_us"], row["p80_us"],
                                      row["ref_over_impl"])
                    table.add_section()
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    new = not args.out.exists()
    with args.out.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            w.writeheader()
        w.writerows(out_rows)
    print(f"appended {len(out_rows)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
