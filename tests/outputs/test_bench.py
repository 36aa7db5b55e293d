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


def test_cli_json(capsys, tmp_path):
    saved = tmp_path / "bench.json"
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
                "--json-out",
                str(saved),
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert json.loads(saved.read_text()) == rows  # --json-out: the same rows, in a file
    keys = {(r["model"], r["mode"], r["amp"], r["format"]) for r in rows}
    assert ("alexnet_owt", "train", "bf16", "channels_last") in keys
    assert ("torchvision", "train", "off", "nchw") in keys  # the baseline is always measured


def test_bad_values():
    with pytest.raises(UserError, match="unknown model 'vgg'"):
        run_bench(models=["vgg"], batch_size=2)


def test_json_out_in_a_missing_folder_is_refused_before_measuring(tmp_path, monkeypatch, capsys):
    import alexnet.outputs.bench as bench

    monkeypatch.setattr(bench, "run_bench", lambda **kw: pytest.fail("measured anyway"))
    for path, why in ((tmp_path / "no" / "b.json", "no such directory"), (tmp_path, "directory")):
        assert main(["bench", "--device", "cpu", "--json-out", str(path)]) == 2
        err = capsys.readouterr().err
        assert why in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "no").exists()


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


def _targets(out, *argv: str) -> list[str]:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[2] / "benchmarks" / "gpu_targets.py"
    r = subprocess.run(
        [sys.executable, str(script), str(out), *argv], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def _bench_row(model: str, mode: str, amp: str, compiled: bool, ips: float, vs: float) -> dict:
    return dict(model=model, mode=mode, amp=amp, format="channels_last", compiled=compiled,
                batch_size=256, images_per_second=ips, vs_torchvision=vs)  # fmt: skip


def test_gpu_targets_reads_what_gpu_check_wrote(tmp_path):
    """benchmarks/gpu_targets.py: each target from triton.json, bench.json and metrics.jsonl
    as gpu_check.sh writes them; MET, MISSED, or not measured where a file is missing."""
    lines = _targets(tmp_path)  # nothing written: every target unmeasured
    assert len(lines) == 5 and all(s.startswith("not measured") for s in lines[1:])
    speed = [
        dict(
            tail="conv1",
            dtype="bfloat16",
            layout="channels_last",
            kernel=k,
            ms=0.5,
            gbs=2000.0 * share,
            of_relu=share,
        )
        for k, share in (("relu_lrn_pool forward", 0.8), ("relu_lrn_pool backward", 0.5))
    ]
    (tmp_path / "triton.json").write_text(json.dumps({"device": "NVIDIA H100", "speed": speed}))
    bench = [
        _bench_row("alexnet", "train", "bf16", False, 20000.0, 0.8),
        _bench_row("torchvision", "train", "bf16", False, 25000.0, 1.0),
    ]
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    compiled = [  # the compiled stage's run: its eager rows give way to bench.json's
        _bench_row("alexnet", "train", "bf16", False, 1.0, 0.1),
        _bench_row("alexnet", "infer", "off", True, 50000.0, 1.1),
    ]
    (tmp_path / "bench-compiled.json").write_text(json.dumps(compiled))
    epochs = [dict(epoch=1, images_per_second=9000.0, seconds=8.0),
              dict(epoch=2, images_per_second=19000.0, seconds=3.0)]  # fmt: skip
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in epochs))
    lines = _targets(tmp_path)
    assert lines[0] == "targets on NVIDIA H100" and len(lines) == 7  # 2 tails, 2 bench rows
    verdict = {s[14:80].strip().split(",")[0]: s[:13].strip() for s in lines[1:]}
    assert verdict == {
        "conv1 relu_lrn_pool forward": "MET",  # 80% >= 70%
        "conv1 relu_lrn_pool backward": "MISSED",
        "alexnet infer fp32 channels_last compiled vs torchvision": "MET",
        "alexnet train bf16 channels_last eager vs torchvision": "MISSED",
        "store-fed epoch >= 0.9x bench train img/s (bf16 channels_last)": "MET",
        "reproduce cifar10 --full": "not measured",  # projected only
    }
    fed = next(s for s in lines if "store-fed" in s)
    assert "0.95 (last epoch 19,000 img/s; bench 20,000" in fed  # the last epoch, not the first
    assert "projected 4.5 min (3.0 s an epoch" in lines[-1]
