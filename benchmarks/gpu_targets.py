"""The GPU targets of the Triton/data-feed work, read from what gpu_check.sh wrote: each
target, the figure measured on this card, and MET or MISSED.

    python benchmarks/gpu_targets.py OUT_DIR

OUT_DIR holds triton.json (benchmarks/bench_triton.py --json), bench.json and
bench-compiled.json (alexnet bench --json-out: eager rows, and eager + compiled rows) and
metrics.jsonl (the store-fed run's). A file that is missing (its stage
failed or ran out of time) leaves its targets "not measured". Targets:

- each fused tail (ReLU -> LRN -> max-pool), forward and backward, at >= 70% of the GB/s
  torch.relu reaches copying the same tensor;
- the paper's network >= 1.0x torchvision's alexnet, training and inference, bf16 and
  fp32, eager and compiled (channels_last, same batch, same run);
- the store-fed epoch >= 0.9x the bench's training img/s, same model, batch, precision
  (the run's last epoch: the first pays start-up, kernel compilation and cuDNN's search);
- `alexnet reproduce cifar10 --full`, 90 epochs, in <= 10 minutes: projected here from
  the last epoch's seconds (training and validation), not measured.

Exit code 0 whatever the figures: gpu_check.sh's summary reports failures, this reports.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

POOL_SHARE, NET_RATIO, FEED_RATIO, FULL_SECONDS, FULL_EPOCHS = 0.70, 1.0, 0.9, 600.0, 90


def _load(path: Path):
    try:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _line(what: str, figure: str, ok: bool | None) -> None:
    verdict = "not measured" if ok is None else ("MET" if ok else "MISSED")
    print(f"{verdict:<13} {what:<66} {figure}")


FUSED = ("relu_lrn_pool forward", "relu_lrn_pool backward", "relu_lrn_pool backward, int8 argmax")


def fused_tails(triton: dict | None) -> None:
    """Channels_last, bf16 and fp32 (the bench's layout; triton.txt has NCHW too)."""
    rows = [
        r
        for r in (triton or {}).get("speed", [])
        if r["kernel"] in FUSED and r["layout"] == "channels_last"
    ]
    if not rows:
        _line(f"fused tails >= {POOL_SHARE:.0%} of torch.relu's GB/s", "-", None)
        return
    for r in rows:
        dtype = {"bfloat16": "bf16", "float32": "fp32"}.get(r["dtype"], r["dtype"])
        what = f"{r['tail']} {r['kernel']}, {dtype} channels_last"
        figure = f"{r['of_relu']:.0%} of relu ({r['gbs']:.0f} GB/s, {r['ms']:.3f} ms)"
        _line(what, figure, r["of_relu"] >= POOL_SHARE)


def network(bench: list | None) -> None:
    rows = [r for r in bench or [] if r["model"] == "alexnet" and r["vs_torchvision"]]
    if not rows:
        _line(f"the paper's network >= {NET_RATIO:.1f}x torchvision", "-", None)
        return
    for r in sorted(rows, key=lambda r: (r["mode"], r["amp"], r["format"], r["compiled"])):
        amp = "fp32" if r["amp"] == "off" else r["amp"]
        what = (
            f"alexnet {r['mode']} {amp} {r['format']} "
            f"{'compiled' if r['compiled'] else 'eager'} vs torchvision"
        )
        figure = f"{r['vs_torchvision']:.2f}x ({r['images_per_second']:,.0f} img/s)"
        _line(what, figure, r["vs_torchvision"] >= NET_RATIO)


def store_fed(bench: list | None, metrics: list | None) -> None:
    what = f"store-fed epoch >= {FEED_RATIO}x bench train img/s (bf16 channels_last)"
    ref = [
        r
        for r in bench or []
        if (r["model"], r["mode"], r["amp"], r["format"], r["compiled"])
        == ("alexnet", "train", "bf16", "channels_last", False)
    ]
    if not metrics:
        _line(what, "-", None)
        return
    fed = metrics[-1]["images_per_second"]
    epochs = ", ".join(f"{m['images_per_second']:,.0f}" for m in metrics)
    if not ref:
        _line(what, f"epochs at {epochs} img/s; no bench figure", None)
        return
    bench_ips = ref[0]["images_per_second"]
    _line(
        what,
        f"{fed / bench_ips:.2f} (last epoch {fed:,.0f} img/s; bench {bench_ips:,.0f}; "
        f"epochs: {epochs})",
        fed / bench_ips >= FEED_RATIO,
    )


def full_schedule(metrics: list | None) -> None:
    what = f"reproduce cifar10 --full, {FULL_EPOCHS} epochs, <= {FULL_SECONDS / 60:.0f} min"
    if not metrics:
        _line(what, "-", None)
        return
    per_epoch = metrics[-1]["seconds"]
    total = per_epoch * FULL_EPOCHS
    figure = (
        f"projected {total / 60:.1f} min ({per_epoch:.1f} s an epoch with validation; "
        "not a measurement: run `alexnet reproduce cifar10 --full`)"
    )
    _line(what, figure, None)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.splitlines()[2].strip(), file=sys.stderr)
        return 2
    out = Path(argv[0])
    triton, bench = _load(out / "triton.json"), _load(out / "bench.json") or []
    compiled = _load(out / "bench-compiled.json") or []
    eager = {(r["model"], r["mode"], r["amp"], r["format"]) for r in bench}
    bench += [  # its compiled rows, and eager rows bench.json lacks (a stage cut short)
        r
        for r in compiled
        if r["compiled"] or (r["model"], r["mode"], r["amp"], r["format"]) not in eager
    ]
    metrics = _load(out / "metrics.jsonl")
    device = (triton or {}).get("device") or "the card of this run"
    print(f"targets on {device}")
    fused_tails(triton)
    network(bench)
    store_fed(bench, metrics)
    full_schedule(metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
