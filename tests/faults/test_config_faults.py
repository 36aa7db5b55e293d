"""Bad configuration: reported (all together) before any work starts, with exit code 2."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--batch-size", "0"),
        ("--batch-size", "-4"),
        ("--epochs", "0"),
        ("--epochs", "-1"),
        ("--lr", "0"),
        ("--lr", "-0.1"),
    ],
)
def test_non_positive_values(run_cli, one_line_error, tiny_data, tmp_path, flag, value):
    r = run_cli("train", "--data", str(tiny_data), "--out", str(tmp_path / "o"), flag, value)
    assert r.returncode == 2
    assert flag in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()  # nothing was started


def test_every_error_is_reported_at_once(run_cli, tmp_path):
    r = run_cli(
        "train",
        "--data",
        str(tmp_path / "missing"),
        "--batch-size",
        "0",
        "--epochs",
        "0",
        "--lr",
        "-1",
        "--model",
        "resnet",
        "--workers",
        "-2",
        "--out",
        str(tmp_path / "o"),
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    for needle in (
        "--batch-size",
        "--epochs",
        "--lr",
        "--model 'resnet'",
        "--workers",
        "no such directory",
    ):
        assert needle in r.stderr, needle


def test_unknown_model_and_preset(run_cli, one_line_error, tiny_data, tmp_path):
    r = run_cli("train", "--preset", "imagenet-2030")
    assert r.returncode == 2 and "unknown preset" in one_line_error(r)
    r = run_cli("evaluate", "x.pt", "--data", str(tiny_data))
    assert "x.pt does not exist" in one_line_error(r)


def test_data_pointing_at_a_file(run_cli, tmp_path):
    f = tmp_path / "images.zip"
    f.write_bytes(b"PK")
    r = run_cli("train", "--data", str(f), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "is a file" in r.stderr


def test_output_directory_not_writable(run_cli, one_line_error, tiny_data, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")  # an --out below a regular file can never be created, even by root
    r = run_cli(
        "train", "--data", str(tiny_data), "--out", str(blocker / "run"), "--max-steps", "1"
    )
    assert r.returncode == 2
    assert "not writable" in one_line_error(r)


def test_run_directory_with_another_run(run_cli, one_line_error, tiny_data, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"epoch": 1}\n')
    r = run_cli("train", "--data", str(tiny_data), "--out", str(out), "--max-steps", "1")
    assert r.returncode == 2
    assert "already holds a run" in one_line_error(r)
    assert (out / "metrics.jsonl").read_text() == '{"epoch": 1}\n'  # untouched


def test_bad_yaml_config(run_cli, one_line_error, tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("epochs: [1,\n")
    assert "not valid YAML" in one_line_error(run_cli("train", "--config", str(bad)))
    bad.write_text("epochz: 3\n")
    assert "unknown setting(s) epochz" in one_line_error(run_cli("train", "--config", str(bad)))
