"""`alexnet demo-data` and `alexnet prepare`: the commands run the library and report
errors as one line."""

from __future__ import annotations

from alexnet.cli import main
from alexnet.data import PackedDataset, load_stats


def test_demo_data_command(tmp_path, capsys):
    args = ["demo-data", str(tmp_path / "d"), "--train-per-class", "2", "--val-per-class", "1"]
    assert main(args + ["--num-classes", "3", "--seed", "4"]) == 0
    assert "3 classes, 6 train + 3 val images" in capsys.readouterr().out
    assert len(list((tmp_path / "d" / "train").rglob("*.jpg"))) == 6


def test_prepare_command_and_stats(make_tree, tmp_path, capsys):
    root = make_tree()
    assert main(["prepare", str(root), str(tmp_path / "s"), "--size", "32", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "train: 7 images" in out and "PCA eigval" in out
    assert PackedDataset(tmp_path / "s").size == 32 and load_stats(tmp_path / "s") is not None
    assert main(["prepare", "--stats", str(root)]) == 0
    assert "statistics of 7 images written to" in capsys.readouterr().out
    assert (root / "stats.json").is_file()


def test_prepare_errors_are_one_line(make_tree, tmp_path, capsys):
    root = make_tree()
    (root / "val" / "dog" / "000.png").write_text("oops")
    assert main(["prepare", str(root), str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err  # progress lines, then the error
    assert err.splitlines()[-1].startswith("alexnet: error: ") and "val/dog/000.png" in err
    assert "Traceback" not in err and not (tmp_path / "s").exists()
    assert main(["prepare", str(root), str(tmp_path / "s"), "--skip-bad", "--no-stats"]) == 0
    assert "1 bad images skipped" in capsys.readouterr().out
    assert main(["prepare", str(tmp_path / "absent"), str(tmp_path / "t")]) == 1
    assert "no such directory" in capsys.readouterr().err
    assert main(["prepare", str(root)]) == 1
    assert "give DST" in capsys.readouterr().err
