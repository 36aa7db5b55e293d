"""The `alexnet` entry point: --help, --version, python -m alexnet."""

from __future__ import annotations

import subprocess
import sys

import pytest

import alexnet
from alexnet.cli import SUBCOMMANDS, main


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"alexnet {alexnet.__version__}"


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    import importlib

    for mod in SUBCOMMANDS:
        assert importlib.import_module(f"alexnet.cli.{mod}").NAME in out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: alexnet" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--model-kwargs", "{init: x"], "argument --model-kwargs: not YAML"),
        (["train", "--optimizer", "nesterov"], "invalid choice: 'nesterov'"),
        (["predict"], "the following arguments are required: CKPT, IMAGE"),
        (["nosuchcommand"], "invalid choice: 'nosuchcommand'"),
    ],
)
def test_usage_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and message in err, err
    assert err.startswith("alexnet") and err.rstrip().endswith("--help)")


def test_python_dash_m_and_console_script():
    r = subprocess.run(
        [sys.executable, "-m", "alexnet", "--version"], capture_output=True, text=True, check=True
    )
    assert r.stdout.startswith("alexnet ")


def test_a_closed_pipe_is_a_quiet_exit_0(monkeypatch, capsys):
    """`alexnet ... | head`: the reader went away; BrokenPipeError (an OSError) is not a
    disk or path error to report."""
    import alexnet.cli.summary as summary

    def closed(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(summary, "run", closed)
    assert main(["summary"]) == 0
    assert capsys.readouterr().err == ""
