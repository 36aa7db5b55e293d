"""alexnet bench: the table's structure on a tiny run (never its timings)."""

from __future__ import annotations

import json

import pytest

from alexnet.cli import main
from alexnet.errors import UserError
from alexnet.outputs.bench import format_table, run_bench


def test_rows_and_ratios():
    rows = run_bench(
        models=["alexnet", "torchvision"],
        modes=["infer"],
        amps=["off"],
        formats=["nchw"],
        batch_size=2,
        steps=1,
        warmup=0,
        rounds=1,
    )
    by = {r.model: r for r in rows}
    assert set(by) == {"alexnet", "torchvision"}
    assert by["torchvision"].vs_torchvision == 1.0
    assert by["alexnet"].images_per_second > 0 and by["alexnet"].vs_torchvision > 0
    for r in rows:  # inference: 2 x MACs per image (alexnet.outputs.summary: 0.72 G and 0.71 G)
        macs = 724_406_816 if r.model == "alexnet" else r.gflops * 1e9 / 2 / r.images_per_second
        assert 0.70e9 < macs < 0.73e9
        assert r.gflops == pytest.approx(2 * macs * r.images_per_second / 1e9, rel=1e-3)
        assert r.peak_share == pytest.approx(r.gflops / r.peak_gflops, rel=1e-2)
    table = format_table(rows)
    assert "alexnet" in table and "vs tv" in table and "GFLOP/s" in table and "peak" in table


def test_cli_json(capsys):
    assert (
        main(
            [
                "bench",
                "--models",
                "alexnet_owt",
                "--modes",
                "train",
                "--amp",
                "bf16",
                "--formats",
                "channels_last",
                "--batch-size",
                "2",
                "--steps",
                "1",
                "--rounds",
                "1",
                "--warmup",
                "0",
                "--device",
                "cpu",
                "--json",
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    keys = {(r["model"], r["mode"], r["amp"], r["format"]) for r in rows}
    assert ("alexnet_owt", "train", "bf16", "channels_last") in keys
    assert ("torchvision", "train", "off", "nchw") in keys  # the baseline is always measured


def test_bad_values():
    with pytest.raises(UserError, match="unknown model 'vgg'"):
        run_bench(models=["vgg"], batch_size=2)


def test_store_feeding_from_a_packed_store(tiny_data, tmp_path, capsys):
    from alexnet.data import prepare_store
    from alexnet.outputs.bench import store_feeding

    store = tmp_path / "store"
    prepare_store(tiny_data, store, size=64)
    r = store_feeding(
        str(store), batch_size=2, steps=1, rounds=1, workers=0, amp="off", channels_last="off"
    )
    assert r.store_images_per_second > 0 and r.memory_images_per_second > 0
    assert r.to_dict()["ratio"] == round(r.ratio, 3) and r.amp == "off" and not r.channels_last
    assert r.augment_on == "loader"  # stored at 64, resized to 256 per image in the loader
    argv = ["bench", "--store", str(tiny_data), "--batch-size", "2", "--steps", "1"]
    assert main([*argv, "--rounds", "1", "--workers", "0", "--amp", "off", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["data"] == str(tiny_data) and out["ratio"] > 0
    assert out["augment_on"] == "loader"  # a folder: augmented per image in the loader


def test_cli_table_names_the_machine_and_its_peak(capsys):
    argv = ["bench", "--models", "torchvision", "--modes", "infer", "--amp", "off"]
    argv += ["--formats", "nchw", "--batch-size", "1", "--steps", "1", "--rounds", "1"]
    assert main([*argv, "--warmup", "0", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "device: " in out and "threads" in out
    assert "matmul peak (torch.mm 2048x2048, best of the rounds): fp32 " in out
    assert "GFLOP/s" in out


def test_the_torchvision_baseline_row_has_its_flops_when_not_asked_for(capsys):
    """``--models alexnet`` measures torchvision's row as the ratios' baseline: it has its
    GFLOP/s and peak share too (2 x its MACs per image, as when it is asked for)."""
    argv = ["bench", "--models", "alexnet", "--modes", "infer", "--amp", "off"]
    argv += ["--formats", "nchw", "--batch-size", "1", "--steps", "1", "--rounds", "1"]
    assert main([*argv, "--warmup", "0", "--device", "cpu", "--json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    tv = rows["torchvision"]
    macs = tv["gflops"] * 1e9 / 2 / tv["images_per_second"]
    assert 0.70e9 < macs < 0.72e9  # torchvision's alexnet at 224: 0.71 GMACs
    assert tv["peak_share"] == pytest.approx(tv["gflops"] / tv["peak_gflops"], rel=1e-2)
    assert main([*argv, "--warmup", "0", "--device", "cpu"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("torchvision"))
    gflops, share = line.split()[-2:]
    assert float(gflops) > 0 and share.endswith("%")


def test_profile_layers_script_runs():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[2] / "benchmarks" / "profile_layers.py"
    argv = ["--mode", "infer", "--amp", "off", "--batch", "1", "--steps", "1", "--top", "3"]
    out = subprocess.run(
        [sys.executable, str(script), *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert "alexnet:" in out and "torchvision:" in out and " ms  aten::" in out
