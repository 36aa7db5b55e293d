"""Training-sample throughput per CPU core: JPEG decoding vs the packed store.

Same images, same augmentation (the paper's train preset: 256x256, random 227
crop, flip, PCA lighting, per-channel normalisation), one process, one torch
thread, timed back to back in one run after a warm-up pass (files in the page
cache for both), median of repeats. Three ways to get a training sample:

    jpeg          ImageFolderDataset: decode the JPEG, rescale to 256, augment
    store         PackedDataset: memory-mapped uint8 256x256, augment
    store+batch   PackedDataset.load_batch(64) + batch_augment on the CPU

By default the images are synthetic 500x375 JPEGs (ImageNet's typical size)
with photo-like detail (about 100 KB each at quality 90); --data uses an
ImageFolder of yours (its train/ split). The ratio is what counts; the machine
may be shared and noisy.

    python benchmarks/bench_data.py [--images 200] [--data DIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from alexnet.data import (
    ImageFolderDataset,
    PackedDataset,
    batch_augment,
    prepare_store,
    train_transform,
)


def synthetic_tree(root: Path, n: int, size: tuple[int, int], quality: int) -> Path:
    """root/train|val/<4 classes>/*.jpg: smooth blobs plus fine texture, like a photo."""
    rng = np.random.default_rng(0)
    w, h = size
    for i in range(n):
        grid = rng.random((6, 8, 3)).astype(np.float32)
        base = np.stack(
            [
                np.asarray(Image.fromarray(grid[..., k], "F").resize((w, h), Image.BICUBIC))
                for k in range(3)
            ],
            -1,
        )
        fine = rng.normal(0, 0.06, (h, w, 1)).astype(np.float32)  # luminance grain
        img = np.clip((base + fine) * 255, 0, 255).astype(np.uint8)
        for split in ("train", "val") if i < 4 else ("train",):
            d = root / split / f"c{i % 4}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{i:05d}.jpg", quality=quality)
    return root


def time_items(ds, n: int) -> float:
    """Seconds per sample over the first n items."""
    t0 = time.perf_counter()
    for i in range(n):
        ds[i]
    return (time.perf_counter() - t0) / n


def time_batches(ds: PackedDataset, n: int, batch: int = 64) -> float:
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        images, _ = ds.load_batch(range(start, min(n, start + batch)))
        batch_augment(images, input_size=227, train=True, generator=gen)
    return (time.perf_counter() - t0) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=200, help="synthetic images (200)")
    p.add_argument("--size", type=int, nargs=2, default=(500, 375), metavar=("W", "H"))
    p.add_argument("--quality", type=int, default=90)
    p.add_argument("--data", type=Path, help="an ImageFolder root to use instead")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)  # per core
    with tempfile.TemporaryDirectory() as tmp:
        src = args.data or synthetic_tree(Path(tmp) / "jpeg", args.images, args.size, args.quality)
        t0 = time.perf_counter()
        prepare_store(src, Path(tmp) / "store", stats=False)
        t_prepare = time.perf_counter() - t0
        preset = train_transform(227)
        jpeg = ImageFolderDataset(src / "train", preset)
        store = PackedDataset(Path(tmp) / "store", "train", preset)
        raw = PackedDataset(Path(tmp) / "store", "train")
        n = min(len(jpeg), len(store), args.images)
        kb = np.mean([Path(f).stat().st_size for f, _ in jpeg.samples[:n]]) / 1024
        w, h = Image.open(jpeg.samples[0][0]).size
        for fn in (lambda: time_items(jpeg, n), lambda: time_items(store, n)):
            fn()  # warm-up: page cache, allocator
        runs = {"jpeg": [], "store": [], "store+batch": []}
        for _ in range(args.repeats):
            runs["jpeg"].append(time_items(jpeg, n))
            runs["store"].append(time_items(store, n))
            runs["store+batch"].append(time_batches(raw, n))
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(
        f"{n} images, {w}x{h} JPEG ~{kb:.0f} KB; train preset 227; 1 process, 1 torch thread; "
        f"torch {torch.__version__}, Pillow {Image.__version__}"
    )
    print(f"prepare (decode + rescale + write, 1 worker): {t_prepare / n * 1000:.2f} ms/image")
    print(f"{'path':<14}{'ms/image':>10}{'images/s':>10}{'vs jpeg':>9}")
    for k, s in med.items():
        print(f"{k:<14}{s * 1000:>10.3f}{1 / s:>10.0f}{med['jpeg'] / s:>8.1f}x")


if __name__ == "__main__":
    main()
