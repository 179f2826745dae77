"""`umsnet-fast` (also `python -m umsnet_fast`): one subcommand per module.

Each module named in COMMANDS defines `add_arguments(parser)` and `run(args) -> int`.

A user's mistake never ends in a traceback: a bad argument is refused by the parser, a bad file or a
combination of arguments that cannot work by the command raising `CommandError` (or SystemExit with a
message); `main` prints either as one line on stderr, `umsnet-fast COMMAND: error: ...`, and exits 2.
An OSError (a file that cannot be read or written) is reported the same way. Anything else is a bug
and keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import math
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


class CommandError(Exception):
    """A user's mistake (an argument, a file): `main` prints the message as one line and exits 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # one line instead of the whole usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def int_at_least(low: int):
    """argparse type: an int >= low."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value
    return parse


def number_in(low: float = -math.inf, high: float = math.inf, *, low_open: bool = False, high_open: bool = False):
    """argparse type: a finite float in the interval from low to high (each end closed unless *_open)."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if (not math.isfinite(value) or value < low or value > high or (low_open and value == low)
                or (high_open and value == high)):
            raise argparse.ArgumentTypeError(f"expected a finite number in {interval}, got {text}")
        return value
    return parse


def ints_at_least(low: int):
    """argparse type: comma-separated ints, each >= low."""
    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
        if any(v < low for v in values):
            raise argparse.ArgumentTypeError(f"expected comma-separated integers >= {low}, got {text!r}")
        return values
    return parse


def torch_device(text: str) -> str:
    """argparse type: a torch device that exists in this process ('cpu', 'cuda', 'cuda:1', ...)."""
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError) as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a torch device ({str(e).splitlines()[0]})") from None
    if device.type == "cpu":
        return text
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: CUDA is not available here (torch.cuda.is_available() "
                                             "is False)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text!r}: there are {torch.cuda.device_count()} CUDA devices")
        return text
    module = getattr(torch, device.type, None)
    if module is None or not getattr(module, "is_available", lambda: False)():
        raise argparse.ArgumentTypeError(f"{text!r}: device type {device.type!r} is not available here")
    return text


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
    parser = _Parser(prog="umsnet-fast", description="UMSNet inference engine")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return importlib.import_module(args._module).run(args) or 0
    except SystemExit as e:
        if not isinstance(e.code, str):
            raise
        message = e.code
    except OSError as e:
        message = f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e)
    except CommandError as e:
        message = str(e)
    print(f"umsnet-fast {args.command}: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
