"""Inference set-up: each ensemble member gets its own preprocessing; class names that
mean the same ImageNet classes are accepted."""

from __future__ import annotations

import torch

from alexnet.data import build_dataset, resolve_stats
from alexnet.data.classes import imagenet_wnids, same_classes
from alexnet.data.transforms import transform_from_preprocessing
from alexnet.engine.checkpoint import save_checkpoint, weights_checkpoint
from alexnet.models import create_model
from alexnet.tasks.evaluate import evaluate_checkpoints

CLASSES = ["circle", "square", "stripes"]
NARROW = 0.0625  # tests/conftest.py's NARROW


def _checkpoint(path, model_name, preprocessing, seed, **kwargs):
    torch.manual_seed(seed)
    model = create_model(model_name, num_classes=3, **kwargs).eval()
    state = weights_checkpoint(model_name, kwargs, model.state_dict(), CLASSES, preprocessing, {})
    save_checkpoint(state, path)
    return model


def test_ensemble_members_get_their_own_preprocessing(tiny_data, tmp_path):
    stats = resolve_stats(str(tiny_data)).to_dict(embed_mean_image=True)
    pre_a = {"input_size": 227, "resize": 256, "resize_mode": "square", "normalize": "pixel"}
    pre_b = {"input_size": 224, "resize": 240, "resize_mode": "shorter", "normalize": "channel"}
    pre_a["stats"] = pre_b["stats"] = stats
    a = _checkpoint(tmp_path / "a.pt", "alexnet", pre_a, 0, width=NARROW)
    b = _checkpoint(tmp_path / "b.pt", "alexnet_owt", pre_b, 1, width=NARROW)
    res = evaluate_checkpoints(
        [str(tmp_path / "a.pt"), str(tmp_path / "b.pt")],
        str(tiny_data),
        device="cpu",
        amp="off",
        channels_last="off",
        workers=0,
    )
    raw = build_dataset(str(tiny_data), "val")
    tf_a, tf_b = transform_from_preprocessing(pre_a), transform_from_preprocessing(pre_b)
    correct = 0
    with torch.no_grad():
        for i in range(len(raw)):
            img, label = raw[i]
            p = a(tf_a(img)[None]).softmax(-1) + b(tf_b(img)[None]).softmax(-1)
            correct += int(p.argmax() == label)
    assert res.images == len(raw)
    assert res.top1_error == 1 - correct / len(raw)


def test_same_classes_for_imagenet_names():
    from torchvision.models import AlexNet_Weights

    names = list(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])
    wnids = imagenet_wnids()  # folders named by WordNet id, sorted
    assert same_classes(names, wnids)
    assert not same_classes(names, [f"n{i:08d}" for i in range(1000)])  # not ImageNet's ids
    assert not same_classes(names, list(reversed(wnids)))  # another order is not the same
    suffixed = [f"{n} ({wnids[i]})" if i == 3 else n for i, n in enumerate(names)]
    assert same_classes(names, suffixed)  # imagenet:'s duplicate names
    assert same_classes(CLASSES, CLASSES) and not same_classes(CLASSES, ["a", "b", "c"])
