"""Every option of every command (and every subcommand) says what it does in --help."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from alexnet.cli import build_parser, main


def _undocumented(parser: argparse.ArgumentParser, prog: str) -> Iterator[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helped = {a.dest for a in action._choices_actions if a.help}
            for name, sub in action.choices.items():
                if name not in helped:
                    yield f"{prog} {name} (the command itself)"
                yield from _undocumented(sub, f"{prog} {name}")
        elif not isinstance(action, argparse._HelpAction) and not action.help:
            yield f"{prog} {'/'.join(action.option_strings) or action.dest}"


def test_every_option_of_every_command_has_help():
    missing = list(_undocumented(build_parser(), "alexnet"))
    assert not missing, "options without help: " + ", ".join(missing)


def test_the_walk_reaches_nested_commands_and_finds_a_gap():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    figures = next(
        a for a in sub.choices["visualize"]._actions if isinstance(a, argparse._SubParsersAction)
    )
    figures.choices["predictions"].add_argument("--undocumented-flag")
    assert list(_undocumented(parser, "alexnet")) == [
        "alexnet visualize predictions --undocumented-flag"
    ]


def test_debug_is_taken_after_a_figure_too(capsys):
    """`alexnet visualize predictions ... --debug` as the docs write it (the traceback
    goes with the one-line error)."""
    args = ["visualize", "predictions", "missing.pt", "--data", "demo", "--debug"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("alexnet: error:")
