"""The ``alexnet`` command: one parser, one module per subcommand.

Each module in ``SUBCOMMANDS`` defines ``NAME``, ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``; they import heavy libraries inside ``run`` so that
``alexnet --help`` stays fast. The CLI only parses and calls library functions.

Exit codes (docs/cli.md): 0 success; 1 a failure while running (``alexnet: error: ...``);
2 a wrong command, found before anything is created (usage, values, missing files,
devices); 130 interrupted by SIGINT, 143 by SIGTERM (shell convention).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from alexnet.errors import UserError

SUBCOMMANDS = [
    "summary",
    "train",
    "evaluate",
    "predict",
    "demo_data",
    "prepare",
    "visualize",
    "report",
    "export",
    "import_torchvision",
    "import_caffe",
    "features",
    "reproduce",
    "bench",
]


def _version() -> str:
    from alexnet import __version__

    return __version__


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, as every other error (argparse prints the whole usage,
    50 lines for train, before the message)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="alexnet",
        description="The 2012 AlexNet paper's network and method: train, evaluate, "
        "predict, prepare data, summarise, export and visualise.",
    )
    parser.add_argument("--version", action="version", version=f"alexnet {_version()}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show full tracebacks for errors (also ALEXNET_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for modname in SUBCOMMANDS:
        mod = importlib.import_module(f"alexnet.cli.{modname}")
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.__doc__)
        p.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show full tracebacks for errors",
        )
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _one_line(e: UserError) -> str:
    """The message; for an error re-raised by a DataLoader worker (its text carries the
    worker's traceback), the original message from its last line."""
    msg = str(e)
    if "Original Traceback" in msg:
        last = msg.strip().splitlines()[-1]
        msg = last.split(": ", 1)[1] if ": " in last else last
    return msg.encode("utf-8", "backslashreplace").decode("utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    debug = getattr(args, "debug", False) or os.environ.get("ALEXNET_DEBUG") == "1"
    try:
        return int(args._run(args) or 0)
    except UserError as e:
        if debug:
            traceback.print_exc()
        print(f"alexnet: error: {_one_line(e)}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # `alexnet ... | head`
        return 0
    except OSError as e:  # the environment: a full disk, a missing or unwritable path
        if debug:
            traceback.print_exc()
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        print(f"alexnet: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("alexnet: interrupted", file=sys.stderr)
        return 130
