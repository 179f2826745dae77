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
    "train": ("umsnet_fast.train", "train UMSNet on MHEALTH, HHAR (leave-one-subject-out) or BasicMotions; metrics and checkpoints"),
    "evaluate": ("umsnet_fast.evaluate", "accuracy and macro-F1 of a checkpoint, run by the fast model"),
    "bench": ("umsnet_fast.bench_cli", "latency and throughput: eager reference vs the fast model vs torch.compile / ONNX Runtime"),
}


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
