"""What `alexnet train` prints where its output is a log file (a real process, stderr a
file): one plain line per --log-interval steps instead of a bar, a line for each long
step, what --resume did; and every configuration error at once, exit 2, nothing created."""

from __future__ import annotations

import re

import pytest

NARROW = 0.0625  # tests/conftest.py's NARROW

SMALL = ["--device", "cpu", "--amp", "off", "--channels-last", "off", "--normalize", "channel"]
SMALL += ["-j", "0", "-b", "4", "--lr", "0.001", "--seed", "3", "--width", str(NARROW)]
STEP = re.compile(r"^epoch (\d+) step (\d+)/(\d+) loss [\d.]+ lr [\d.e-]+ \d+ img/s eta \d+s$")


def test_a_log_file_gets_plain_step_lines_and_a_resume_says_where_it_continued(
    run_cli, tiny_data, tmp_path
):
    out = tmp_path / "run"
    r = run_cli("train", "--data", str(tiny_data), "--output", str(out), "--epochs", "1", *SMALL)
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr  # no bar redrawn into the log
    steps = [m.groups() for m in map(STEP.match, r.stderr.splitlines()) if m]
    # 24 images / batch 4 = 6 steps; the default interval 6 // 20 -> every step
    assert steps == [("1", str(i), "6") for i in range(1, 7)], r.stderr
    assert re.search(r"^report: 6/6 section \(100%\)", r.stderr, re.M), r.stderr
    # --log-interval 4: step 4 and the epoch's last; the resume names its checkpoint
    r = run_cli(
        "train", "--data", str(tiny_data), "--out", str(out), "--epochs", "2",
        "--resume", "auto", "--log-interval", "4", *SMALL,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"resumed {out / 'checkpoints' / 'last.pt'} at epoch 1 step 6" in r.stderr
    steps = [m.groups() for m in map(STEP.match, r.stderr.splitlines()) if m]
    assert steps == [("2", "4", "6"), ("2", "6", "6")], r.stderr
    # --quiet: nothing within an epoch, still the epoch's line
    r = run_cli(
        "train", "--data", str(tiny_data), "--out", str(tmp_path / "q"), "--epochs", "1",
        "--quiet", *SMALL,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert not any(map(STEP.match, r.stderr.splitlines())), r.stderr
    assert "epoch 1: train loss" in r.stderr and "report:" not in r.stderr


def test_three_mistakes_are_reported_together_with_exit_2_and_nothing_created(run_cli, tmp_path):
    out = tmp_path / "runs" / "x"
    r = run_cli(
        "train", "--data", str(tmp_path / "no-such-data"), "--init-from",
        str(tmp_path / "w.safetensors"), "--amp", "fp16", "--device", "cpu",
        "--resume", str(tmp_path / "last.pt"), "--out", str(out),
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    for says in (
        f"--resume {tmp_path / 'last.pt'}: no such file",
        f"--init-from {tmp_path / 'w.safetensors'}: no such file",
        "no-such-data: no such directory",
        "--amp fp16 needs a CUDA device",
    ):
        assert says in r.stderr, says
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_device_and_data_layout_errors_are_configuration_errors(run_cli, tiny_data, tmp_path):
    no_val = tmp_path / "no-val"
    (no_val / "train").mkdir(parents=True)
    r = run_cli("train", "--data", str(no_val), "--device", "cuda", "--out", str(tmp_path / "o"))
    assert r.returncode == 2, r.stderr
    assert "CUDA is not available" in r.stderr and "no val/ folder" in r.stderr
    r = run_cli("train", "--data", str(tiny_data), "--val-split", "0.2", "--print-config")
    assert r.returncode == 2
    assert "--val-split: " in r.stderr and "has a val/ folder already" in r.stderr
    assert not (tmp_path / "o").exists()


def test_timm_and_torchvision_names_set_the_same_settings(run_cli, tiny_data, tmp_path):
    import yaml

    r = run_cli(
        "train", "--data", str(tiny_data), "-b", "8", "-j", "1", "--output", str(tmp_path / "o"),
        "--model", "alexnet", "--epochs", "3", "--lr", "0.02", "--momentum", "0.8",
        "--weight-decay", "0.001", "--keep-best", "2", "--print-config",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load(r.stdout)
    assert (cfg["batch_size"], cfg["workers"], cfg["out"]) == (8, 1, str(tmp_path / "o"))
    assert (cfg["epochs"], cfg["lr"], cfg["momentum"]) == (3, 0.02, 0.8)
    assert (cfg["weight_decay"], cfg["keep_best"]) == (0.001, 2)
