"""Run directories: `--resume auto` never starts over a run it cannot resume, and a failed
start leaves nothing that blocks the corrected command (issue 22)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alexnet.engine.checkpoint import load_checkpoint, save_checkpoint, weights_checkpoint
from alexnet.engine.rundir import holds_run, resume_point
from alexnet.errors import UserError
from alexnet.models import create_model

from .conftest import SMALL_MODEL

ONE_STEP = ("--epochs", "1", "--max-steps", "1", "--workers", "0")


def _hashes(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden ones too) -> its SHA-256."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_resume_auto_with_nothing_resumable_is_refused_and_changes_nothing(
    run_cli, one_line_error, tiny_data, tmp_path, small_config, train_argv
):
    """last.pt truncated, best.pt without optimizer state: exit 1, one line naming both
    and why, every file byte-identical; `--resume auto --overwrite` then starts over."""
    out = tmp_path / "run"
    argv = train_argv(small_config, tiny_data, out, "--epochs", "1", "--max-steps", "2")
    r = run_cli(*argv)
    assert r.returncode == 0, r.stderr
    last = out / "checkpoints" / "last.pt"
    with open(last, "r+b") as f:
        f.truncate(last.stat().st_size // 2)
    before = _hashes(out)
    assert {"config.yaml", "metrics.jsonl", "checkpoints/best.pt"} <= set(before)
    r = run_cli(*argv, "--resume", "auto")
    assert r.returncode == 1, r.stderr
    err = one_line_error(r)
    assert f"--out {out} holds a run but no checkpoint that can be resumed" in err
    assert "last.pt is truncated or corrupt" in err
    assert "best.pt has no optimizer state" in err
    assert "pass --overwrite to start over" in err
    assert _hashes(out) == before  # nothing written, nothing removed
    r = run_cli(*argv, "--resume", "auto", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(last)["step"] == 2  # a new run, started over


def test_resume_auto_in_an_absent_or_empty_directory_starts_fresh(tmp_path):
    """The documented fresh start: no run there, no checkpoint to look for."""
    assert resume_point(tmp_path / "absent") == (None, None)
    (tmp_path / "empty").mkdir()
    assert resume_point(tmp_path / "empty") == (None, None)
    leftovers = tmp_path / "leftovers"  # what a failed start of an older version left
    (leftovers / "checkpoints").mkdir(parents=True)
    (leftovers / "plots").mkdir()
    (leftovers / "config.yaml").write_text("epochs: 1\n")
    (leftovers / "checkpoints" / "last.pt.tmp-99").write_bytes(b"partial")
    assert not holds_run(leftovers)
    assert resume_point(leftovers) == (None, None)


def _other_model_checkpoint(path: Path) -> Path:
    """A tiny alexnet_bn weights file: --init-from it with --model alexnet is refused."""
    model = create_model("alexnet_bn", num_classes=3, **SMALL_MODEL)
    state = weights_checkpoint(
        "alexnet_bn", SMALL_MODEL, model.state_dict(), ["circle", "square", "stripes"],
        {"input_size": 227}, {"source": "test"},
    )  # fmt: skip
    return save_checkpoint(state, path)


def _failed_starts(tmp_path: Path, tiny_data: Path) -> list[tuple[list[str], str]]:
    """(the flags that replace --data's, what the one-line error says) for each start-up
    failure of issue 22 that this machine can produce."""
    no_val = tmp_path / "no-val"
    shutil.copytree(tiny_data / "train", no_val / "train")
    other = _other_model_checkpoint(tmp_path / "bn.pt")
    cases = [
        (["--data", str(tiny_data), "--batch-size", "100"], "fewer than --batch-size 100"),
        (["--data", str(no_val)], "no val/ folder: add one, or pass --val-split"),
        (["--data", str(tiny_data), "--model", "alexnet", "--init-from", str(other)],
         "holds model 'alexnet_bn'"),
    ]  # fmt: skip
    if not torch.cuda.is_available():
        cases += [
            (["--data", str(tiny_data), "--amp", "fp16"], "--amp fp16 needs a CUDA device"),
            (["--data", str(tiny_data), "--device", "cuda"], "CUDA is not available"),
        ]
    return cases


def test_a_failed_start_leaves_nothing_that_blocks_the_corrected_command(
    run_cli, one_line_error, tiny_data, tmp_path, small_config
):
    """Each start-up failure is one line and leaves no --out behind (nor the parents it
    would have made); the corrected command then trains into the same --out, without
    --overwrite."""
    out = tmp_path / "runs" / "x"
    base = ["train", "--config", str(small_config), "--out", str(out), *ONE_STEP]
    for flags, says in _failed_starts(tmp_path, tiny_data):
        r = run_cli(*base, *flags)
        assert says in one_line_error(r), flags
        assert r.returncode == 2, flags  # configuration errors, all of them
        assert not (tmp_path / "runs").exists(), flags
    r = run_cli(*base, "--data", str(tiny_data))
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 1
    assert not (out / "report.html").exists()  # small_config's `report: false`
    assert (out / "plots" / "curves.png").is_file()  # the curves are drawn all the same


def test_an_empty_out_or_a_failed_starts_leftovers_do_not_hold_a_run(
    run_cli, one_line_error, tiny_data, tmp_path, small_config
):
    """A directory the user made empty stays as it was after a failed start; the config.yaml
    and empty folders an older version's failed start left do not count as a run."""
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["train", "--config", str(small_config), *ONE_STEP]
    r = run_cli(*base, "--out", str(empty), "--data", str(tiny_data), "--batch-size", "100")
    assert "fewer than --batch-size" in one_line_error(r)
    assert list(empty.iterdir()) == []
    old = tmp_path / "old"
    for d in ("checkpoints", "plots"):
        (old / d).mkdir(parents=True)
    (old / "config.yaml").write_text("batch_size: 100\n")
    (old / ".alexnet.lock").write_text('{"pid": 1}\n')  # a SIGKILLed holder's record
    r = run_cli(*base, "--out", str(old), "--data", str(tiny_data))
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(old / "checkpoints" / "last.pt")["step"] == 1


@settings(
    max_examples=25, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    files=st.dictionaries(
        st.sampled_from(["last.pt", "best.pt", "epoch3.pt", "last.pt.tmp-7"]),
        st.binary(max_size=64).map(lambda b: b"PK\x03\x04" + b) | st.binary(max_size=64),
        min_size=1,
    )
)
def test_resume_point_on_junk_checkpoints_refuses_in_one_line(tmp_path_factory, files):
    """Any bytes under checkpoints/: a fresh start where there is no run (only a partial
    write), else one UserError line naming every *.pt tried; no file changed."""
    out = tmp_path_factory.mktemp("junk")
    (out / "checkpoints").mkdir()
    for name, data in files.items():
        (out / "checkpoints" / name).write_bytes(data)
    before = _hashes(out)
    tried = sorted(n for n in files if n.endswith(".pt"))
    if not tried:
        assert resume_point(out) == (None, None)
    else:
        with pytest.raises(UserError) as e:
            resume_point(out)
        msg = str(e.value)
        assert "\n" not in msg and "holds a run but no checkpoint" in msg
        assert all(f"{n} " in msg or f"{n}:" in msg for n in tried), msg
    assert resume_point(out, overwrite=True) == (None, None)
    assert _hashes(out) == before


def test_resume_auto_takes_the_newest_resumable_beside_corrupt_and_partial_files(tmp_path):
    """last.pt corrupt, best.pt without optimizer state, a partial write: epoch3.pt."""
    ckdir = tmp_path / "checkpoints"
    good = {"model": {}, "model_name": "alexnet", "step": 3, "optimizer": {}}
    save_checkpoint(good, ckdir / "epoch3.pt")
    save_checkpoint(dict(good, optimizer=None), ckdir / "best.pt")
    (ckdir / "last.pt").write_bytes(b"PK\x03\x04garbage")
    (ckdir / "last.pt.tmp-999").write_bytes(b"partial")
    path, state = resume_point(tmp_path)
    assert path == ckdir / "epoch3.pt" and state["step"] == 3
