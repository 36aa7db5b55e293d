"""Caffe's ImageNet AlexNet (``bvlc_alexnet.caffemodel``, or CaffeNet's) as an ``alexnet``
checkpoint, read without Caffe.

``bvlc_alexnet`` is the only public ImageNet AlexNet in the paper's two-tower layout
(grouped conv2, conv4, conv5): 57.1% top-1, 80.2% top-5 on the ILSVRC-2012 validation
set, one centre crop (``models/bvlc_alexnet/readme.md``; CaffeNet: 57.4% / 80.4%).
The checkpoint is the ``alexnet`` model built with Caffe's constants (LRN ``k`` from the
file, alpha divided by n, the window across the layer; inverted dropout; CaffeNet's pool
before LRN), conv1 taking RGB, and Caffe's preprocessing (``data_transformer.cpp``): the
whole image warped to 256x256, the central 227x227 crop (offset (256 - 227) // 2 = 14),
the mean subtracted on the 0-255 scale (per channel, or the mean image of ``--mean``).
Users download the files themselves; nothing is written until every check has passed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import stat
from pathlib import Path

import numpy as np
import torch

from alexnet.errors import UserError

from . import protowire
from .caffe_net import find_alexnet, state_dict_from_caffe
from .caffe_proto import CaffeNet, parse_blob, read_net

__all__ = [
    "CAFFE_BGR_MEAN",
    "KNOWN_FILES",
    "caffe_preprocessing",
    "import_caffe",
    "read_class_names",
    "read_mean",
]

# Caffe's ILSVRC-2012 mean per channel, B G R on 0-255 (ilsvrc_2012_mean.npy averaged)
CAFFE_BGR_MEAN = (104.0070, 116.6688, 122.6789)
# The model zoo's files by SHA-1 (their readme.md) -> name and centre-crop accuracy (%)
KNOWN_FILES = {
    "9116a64c0fbe4459d18f4bb6b56d647b63920377": ("bvlc_alexnet", {"acc@1": 57.1, "acc@5": 80.2}),
    "4c8d77deb20ea792f84eb5e6d0a11ca0a8660a46": (
        "bvlc_reference_caffenet",
        {"acc@1": 57.4, "acc@5": 80.4},
    ),
}
CAFFE_RESIZE, CAFFE_CROP = 256, 227
# A (3, 256, 256) mean image is 786 KB packed as floats, 1.6 MB as doubles
MAX_MEAN_BYTES = 16 << 20
_SYNSET_LINE = re.compile(r"^(n\d{8})\s")  # synset_words.txt: "n01440764 tench, Tinca tinca"


def read_class_names(file: str | os.PathLike) -> list[str]:
    """Class names, one per line; lines of Caffe's ``synset_words.txt`` give their WordNet
    id (``n01440764``), the folder names of an ImageNet ImageFolder, which evaluate
    matches (predict shows them by name)."""
    try:
        lines = Path(file).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise UserError(f"--classes {file}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise UserError(
            f"--classes {file} is not UTF-8 text (byte {e.start}); give one name per line"
        ) from None
    names = [line.strip() for line in lines if line.strip()]
    if names and all(_SYNSET_LINE.match(n) for n in names):
        names = [_SYNSET_LINE.match(n).group(1) for n in names]
    return names


def _size(path: Path, what: str) -> int:
    """The size of the regular file ``path``; UserError if it is missing, not a file or empty."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except OSError as e:
        raise UserError(f"{what} {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{what} {path} is not a file")
    if not st.st_size:
        raise UserError(f"{what} {path} is empty (0 bytes)")
    return st.st_size


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _read_net(path: Path) -> tuple[CaffeNet, str]:
    """The net in ``path``, read as it is checked, and the file's SHA-1."""
    size = _size(path, "caffemodel")
    try:
        with path.open("rb") as f:
            net = read_net(f, size)
            f.seek(0)
            sha1 = hashlib.sha1()
            for chunk in iter(lambda: f.read(1 << 20), b""):
                sha1.update(chunk)
    except protowire.WireError as e:
        raise UserError(f"{path} is not a readable Caffe NetParameter ({e})") from None
    except OSError as e:
        raise UserError(f"caffemodel {path}: {e.strerror or e}") from None
    return net, sha1.hexdigest()


def read_mean(file: str | os.PathLike) -> np.ndarray:
    """A Caffe mean image (``imagenet_mean.binaryproto``: a BlobProto (1, 3, 256, 256), BGR,
    0-255) -> float32 (3, 256, 256), RGB, on the 0-1 scale."""
    path = Path(file)
    size = _size(path, "mean file")
    if size > MAX_MEAN_BYTES:
        raise UserError(
            f"mean file {path} is {size:,} bytes; a Caffe (3, 256, 256) mean image is under "
            f"{MAX_MEAN_BYTES >> 20} MB"
        )
    try:
        blob = parse_blob(path.read_bytes(), check_start=True)
    except OSError as e:
        raise UserError(f"mean file {path}: {e.strerror or e}") from None
    except protowire.WireError as e:
        raise UserError(f"mean file {path} is not a Caffe BlobProto ({e})") from None
    shape = blob.shape[-3:] if all(d == 1 for d in blob.shape[:-3]) else blob.shape
    if shape != (3, CAFFE_RESIZE, CAFFE_RESIZE):
        raise UserError(
            f"mean file {path} holds a {blob.shape} blob; Caffe subtracts a (3, 256, 256) mean "
            "image from the 256x256 images it crops"
        )
    bgr = blob.data.reshape(shape).astype(np.float32)
    return np.ascontiguousarray(bgr[::-1] / np.float32(255.0))


def caffe_preprocessing(mean_image: np.ndarray | None = None) -> dict:
    """Caffe's test-time preprocessing as a checkpoint's ``preprocessing``: warp to 256x256,
    centre 227 crop, raw 0-255 RGB minus the mean (``normalize="pixel"``). std, eigval and
    eigvec are ``IMAGENET_STATS``' (evaluation does not use them)."""
    from alexnet.data import IMAGENET_STATS

    if mean_image is None:
        mean = tuple(v / 255.0 for v in CAFFE_BGR_MEAN[::-1])
        source = "Caffe's ILSVRC-2012 mean per channel (B 104.0070, G 116.6688, R 122.6789)"
    else:
        mean = tuple(float(v) for v in mean_image.astype(np.float64).mean(axis=(1, 2)))
        source = "Caffe's mean image (--mean)"
    stats = dataclasses.replace(IMAGENET_STATS, mean=mean, mean_image=mean_image, source=source)
    return {
        "input_size": CAFFE_CROP,
        "resize": CAFFE_RESIZE,
        "resize_mode": "warp",
        "normalize": "pixel",
        "stats": stats.to_dict(embed_mean_image=True),
    }


def _imagenet_categories() -> list[str]:
    from torchvision.models import AlexNet_Weights

    return list(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])


def import_caffe(
    file: str | os.PathLike,
    out_ckpt: str | os.PathLike,
    *,
    mean: str | os.PathLike | None = None,
    classes: list[str] | None = None,
) -> Path:
    """Turn a Caffe AlexNet ``.caffemodel`` (either layout; bvlc_alexnet's or CaffeNet's
    order; any width the model builds) into an ``alexnet`` checkpoint at ``out_ckpt``;
    -> its path.

    ``mean``: a ``.binaryproto`` mean image to subtract instead of the per-channel mean.
    ``classes``: names for fc8's outputs; by default ImageNet's 1000 (torchvision's list,
    the synset order of Caffe's ``synset_words.txt``) for a 1000-way net, numbers otherwise.
    Every problem is a one-line UserError naming the file; nothing is written then.
    """
    from alexnet.engine.checkpoint import save_checkpoint, weights_checkpoint
    from alexnet.models import create_model, model_info

    path = Path(file)
    for other, flag in ((mean, "--mean"), (out_ckpt, "--out")):
        if other is not None and _same_file(path, Path(other)):
            raise UserError(f"{flag} {other} is the caffemodel {path} itself", exit_code=2)
    net, sha1 = _read_net(path)
    found = find_alexnet(net, str(path))
    kwargs = {
        "lrn_size": found.lrn["local_size"],
        "lrn_alpha": found.lrn["alpha"],
        "lrn_beta": found.lrn["beta"],
        "lrn_k": found.lrn["k"],
        "lrn_alpha_over_n": True,
        "lrn_window": "layer",
        "dropout_form": "inverted",
        "pool_before_lrn": found.pool_before_lrn,
    }
    if found.dropout != 0.5:
        kwargs["dropout"] = found.dropout
    if found.width != 1.0:  # conv1's num_output / 96
        kwargs["width"] = found.width
    n = found.num_classes
    try:
        with torch.device("meta"):  # names and shapes only
            expected = {
                k: v.shape for k, v in create_model("alexnet", n, **kwargs).state_dict().items()
            }
    except ValueError as e:
        raise UserError(f"{path}: {e}") from None
    weights = state_dict_from_caffe(found, expected, dict(model_info("alexnet").layers), str(path))
    if classes is None:
        classes = _imagenet_categories() if n == 1000 else [str(i) for i in range(n)]
    if len(classes) != n:
        raise UserError(f"{len(classes)} class names given for the {n}-way fc8 of {path}")
    preprocessing = caffe_preprocessing(read_mean(mean) if mean is not None else None)
    known, accuracy = KNOWN_FILES.get(sha1, (None, None))
    origin = {
        "source": "caffe",
        "file": path.name,
        "sha1": sha1,
        "layout": net.layout,
        "net_name": net.name,
        "model_zoo": known,
        "caffe_accuracy": accuracy,
    }
    del net, found  # the file's bytes (the blobs' views): the weights are copies
    state = weights_checkpoint("alexnet", kwargs, weights, classes, preprocessing, origin)
    return save_checkpoint(state, out_ckpt)
