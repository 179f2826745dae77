"""`umsnet-fast` (also `python -m umsnet_fast`): one subcommand per module.

Each module named in COMMANDS defines `add_arguments(parser)` and `run(args) -> int`.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
COMMANDS = {
    "info": ("umsnet_fast.info", "model size and cost beside the paper's figures; backends available here"),
    "train": ("umsnet_fast.har.train_command",
              "train UMSNet on MHEALTH, HHAR (leave-one-subject-out) or BasicMotions; metrics and checkpoints"),
    "evaluate": ("umsnet_fast.har.evaluate_command", "accuracy and macro-F1 of a checkpoint, run by the fast model"),
    "annotate": ("umsnet_fast.har.annotate_command",
                 "replay a recording through a stream of a checkpoint: per-hop predictions (CSV) and a timeline"),
    "bench": ("umsnet_fast.bench.cli",
              "latency and throughput: eager reference vs the fast model vs torch.compile / ONNX Runtime"),
}


def add_model_arguments(p: argparse.ArgumentParser, slices_default: int | None = 24,
                        slices_help: str = "slices per window (default 24)") -> None:
    """--variant, --preset, --slices: the model a command describes or measures (info, bench)."""
    from .config import VARIANTS
    from .presets import PRESETS

    p.add_argument("--variant", default="A", type=str.upper, choices=sorted(VARIANTS), help="model variant (default A)")
    p.add_argument("--preset", default="hhar", type=str.lower, choices=sorted(PRESETS),
                   help="dataset preset (default hhar)")
    p.add_argument("--slices", default=slices_default, type=int, metavar="K", help=slices_help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="umsnet-fast", description="UMSNet inference engine")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return importlib.import_module(args._module).run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
