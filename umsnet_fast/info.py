"""`umsnet-fast info`: parameters and multiply-adds per stage beside the paper, then the backends."""
from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .backends import available_backends
from .cli import add_model_arguments
from .presets import get_preset
from .reference import UMSNet
from .stats import attention_macs, model_costs


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)


def _m(n: float) -> str:
    return f"{n / 1e6:.3f}M"


def run(args: argparse.Namespace) -> int:
    if args.slices < 1:
        raise SystemExit(f"--slices must be >= 1, got {args.slices}")
    preset = get_preset(args.preset)
    model = UMSNet(**preset.model_kwargs(args.slices), variant=args.variant)
    rows = model_costs(model, {s.name: preset.slice_length for s in preset.sensors})
    paper_params = dict(preset.paper_params).get(args.variant)
    paper_macs = dict(preset.paper_mult_adds).get(args.variant)
    console = Console()

    window = args.slices * preset.slice_seconds
    table = Table(title=f"UMSNet-{args.variant} on {preset.name.upper()}: K={args.slices} slices of "
                        f"{preset.slice_length} samples ({window:g} s at {preset.sample_rate_hz:g} Hz), "
                        f"{len(preset.sensors)} sensors, {preset.num_classes} classes")
    table.add_column("stage")
    table.add_column("parameters", justify="right")
    table.add_column("mult-adds / window", justify="right")
    for r in rows:
        table.add_row(r.name, f"{r.params:,}", _m(r.macs))
    total_params = sum(r.params for r in rows)
    total_macs = sum(r.macs for r in rows)
    lsr_macs = total_macs - rows[-1].macs
    table.add_section()
    table.add_row("total", f"{total_params:,}", _m(total_macs))
    attn = attention_macs(model.config)
    table.add_row("  of which attention products (QK^T, AV)", "", _m(attn))
    table.add_row("total without attention products", "", _m(total_macs - attn))
    table.add_row("total without the Transformer part", f"{total_params - rows[-1].params:,}", _m(lsr_macs))
    if paper_params is not None and args.slices == 24:
        table.add_section()
        table.add_row(f"paper (Table {3 if preset.name == 'hhar' else 5}, K=24)", _m(paper_params),
                      _m(paper_macs))
        table.add_row("ours vs paper", f"{100 * (total_params / paper_params - 1):+.1f}%",
                      f"{100 * (lsr_macs / paper_macs - 1):+.1f}% without Transformer")
    elif paper_params is not None:
        table.caption = "The paper gives sizes for K=24 only."
    console.print(table)

    bt = Table(title="Backends")
    bt.add_column("backend")
    bt.add_column("runs here")
    bt.add_column("devices")
    bt.add_column("notes")
    for info in available_backends().values():
        bt.add_row(info.name, "[green]yes[/]" if info.available else "[red]no[/]",
                   ", ".join(info.device_types) or "-", escape(info.summary if info.available else info.reason))
    console.print(bt)
    return 0
