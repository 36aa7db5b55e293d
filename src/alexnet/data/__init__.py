"""Data: datasets behind ``build_dataset``, the paper's preprocessing (§2, §4.1), the demo
dataset and the packed store.

    images.py      load_image (seven formats, any mode -> RGB, EXIF, bombs refused), the resizes
    folder.py      ImageFolder trees read defensively (counts, loops, clear errors)
    sources.py     the data-source registry and build_dataset: demo, cifar10:/imagenet:/imagenette:,
                   tarball, packed store, ImageFolder
    archives.py    tar archives as --data: checked from their listing, extracted once per content
    stats.py       DatasetStats (mean, std, PCA of RGB, mean image), compute/load/cache
    transforms.py  train/eval presets: crops, flip, PCA lighting, ColorJitter, 10-crop
    batch.py       batch_augment: the same on a uint8 batch on the training device
    seeded.py      SeededDataset: augmentation seeded per (index, sample_seed)
    demo.py        the textures demo dataset
    store.py       PackedDataset and the store format; prepare.py writes stores
    destination.py what prepare --force may replace (a store or an empty folder, never SRC)
    fingerprint.py fingerprint(dataset) / compare(saved, current): did the data change?
    classes.py     ImageNet's 1000 classes; a split's classes matched to a checkpoint's outputs
    readable.py    a split without its unreadable images (evaluate/features --skip-bad)
    split.py       --val-split: a seeded, stratified validation split held out of train/
"""

from .batch import batch_augment
from .demo import DEMO_CLASSES, default_demo_root, demo_root, make_demo_dataset
from .folder import ImageFolderDataset
from .images import BadImageError, load_image, resize_center_crop, to_rgb
from .prepare import PrepareReport, prepare_store
from .seeded import SeededDataset, derive_seed
from .sources import TorchvisionDataset, build_dataset, check_source, materialize
from .stats import IMAGENET_STATS, DatasetStats, compute_stats, load_stats, resolve_stats
from .store import PackedDataset, is_store
from .transforms import EvalTransform, PCALighting, TrainTransform, eval_transform, train_transform

__all__ = [
    "DEMO_CLASSES",
    "IMAGENET_STATS",
    "BadImageError",
    "DatasetStats",
    "EvalTransform",
    "ImageFolderDataset",
    "PCALighting",
    "PackedDataset",
    "PrepareReport",
    "SeededDataset",
    "TorchvisionDataset",
    "TrainTransform",
    "batch_augment",
    "build_dataset",
    "compute_stats",
    "check_source",
    "default_demo_root",
    "demo_root",
    "derive_seed",
    "eval_transform",
    "is_store",
    "load_image",
    "load_stats",
    "make_demo_dataset",
    "materialize",
    "prepare_store",
    "resize_center_crop",
    "resolve_stats",
    "to_rgb",
    "train_transform",
]
