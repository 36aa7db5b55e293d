"""Batched fc7 extraction and Euclidean nearest neighbours (§6.1)."""

from __future__ import annotations

import pytest
import torch

import alexnet
from alexnet.engine.checkpoint import LoadedModel
from alexnet.tasks.features import class_probabilities, features, nearest_neighbors


@pytest.fixture(scope="module")
def paper_model():
    torch.manual_seed(0)
    return alexnet.create_model("alexnet", num_classes=10, init="kaiming")


def test_features_batched_equals_one_batch_and_restores_mode(paper_model):
    x = torch.randn(5, 3, 227, 227)
    paper_model.train()
    f2 = features(paper_model, x, batch_size=2)
    assert paper_model.training  # the caller's mode comes back
    assert f2.shape == (5, 4096) and f2.dtype == torch.float32 and f2.device.type == "cpu"
    assert (f2 >= 0).all()  # fc7 after its ReLU
    f5 = features(paper_model, x, batch_size=5)
    torch.testing.assert_close(f2, f5, rtol=1e-4, atol=1e-5)  # eval mode: no dropout noise
    with torch.no_grad():
        ref = paper_model.eval().forward_head(paper_model.forward_features(x), pre_logits=True)
    torch.testing.assert_close(f5, ref, rtol=1e-4, atol=1e-5)


def test_features_accepts_loaded_model_dataset_and_owt(paper_model):
    x = torch.randn(3, 3, 227, 227)
    pairs = [(img, i) for i, img in enumerate(x)]  # a dataset of (image, target)
    loaded = LoadedModel(paper_model, "alexnet", [str(i) for i in range(10)])
    torch.testing.assert_close(
        features(loaded, pairs, batch_size=2), features(paper_model, x), rtol=1e-4, atol=1e-5
    )
    owt = alexnet.create_model("alexnet_owt", num_classes=4)
    assert alexnet.features(owt, torch.randn(2, 3, 224, 224)).shape == (2, 4096)


def test_class_probabilities_are_distributions(paper_model):
    p = class_probabilities(paper_model, torch.randn(3, 3, 227, 227), batch_size=2)
    assert p.shape == (3, 10) and (p >= 0).all()
    torch.testing.assert_close(p.sum(1), torch.ones(3))


def test_nearest_neighbor_finds_duplicate_at_distance_zero(paper_model):
    train = torch.randn(7, 3, 227, 227)
    queries = torch.stack([train[4], torch.randn(3, 227, 227)])
    db = features(paper_model, train, batch_size=4)
    q = features(paper_model, queries, batch_size=4)
    dist, idx = nearest_neighbors(q, db, k=3, chunk=3)  # chunks smaller than the database
    assert dist.shape == idx.shape == (2, 3)
    assert idx[0, 0] == 4 and dist[0, 0] == 0.0
    assert (dist[:, 1:] >= dist[:, :-1]).all()  # ascending
    full = torch.cdist(q.double(), db.double())
    torch.testing.assert_close(dist[1].double(), full[1].sort().values[:3], rtol=1e-5, atol=1e-4)


def test_nearest_neighbors_caps_k_and_checks_shapes():
    dist, idx = nearest_neighbors(torch.zeros(1, 4), torch.eye(4)[:2], k=10)
    assert idx.shape == (1, 2) and torch.allclose(dist, torch.ones(1, 2))
    with pytest.raises(ValueError, match="expected"):
        nearest_neighbors(torch.zeros(1, 3), torch.zeros(2, 4))


# ---- layer features of a whole split (extract_features, `alexnet features`) ----

DIMS = {"pool5": 32 * 6 * 6, "fc6": 512, "fc7": 512}  # at width 1/8


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from alexnet.engine.checkpoint import save_checkpoint, weights_checkpoint

    torch.manual_seed(3)
    kwargs = {"init": "kaiming", "width": 0.125}
    model = alexnet.create_model("alexnet", num_classes=3, **kwargs)
    state = weights_checkpoint("alexnet", kwargs, model.state_dict(), list("abc"), {}, {})
    return save_checkpoint(state, tmp_path_factory.mktemp("feat") / "tiny.pt")


@pytest.fixture(scope="module")
def reference(tiny_checkpoint, tiny_data) -> dict[str, torch.Tensor]:
    """Each layer by the model's own methods on the val images, fed as evaluate feeds them."""
    from alexnet.data import build_dataset
    from alexnet.data.transforms import transform_from_preprocessing
    from alexnet.tasks.inference import preprocessing_of
    from alexnet.tasks.loading import load_model

    loaded = load_model(tiny_checkpoint)
    model = loaded.model.eval()
    ds = build_dataset(tiny_data, "val", transform_from_preprocessing(preprocessing_of(loaded)))
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    with torch.no_grad():
        pool5 = model.forward_features(x)
        return {
            "pool5": pool5.flatten(1),
            "fc6": torch.relu(model.classifier.fc6(pool5.flatten(1))),
            "fc7": model.forward_head(pool5, pre_logits=True),
        }


@pytest.mark.parametrize("layer", ["pool5", "fc6", "fc7"])
def test_features_command_writes_the_split(
    layer, tiny_checkpoint, tiny_data, reference, tmp_path, capsys
):
    import numpy as np

    from alexnet.cli import main

    out = tmp_path / f"{layer}.npz"
    args = ["features", str(tiny_checkpoint), "--data", str(tiny_data), "--layer", layer]
    assert main([*args, "--out", str(out), "--workers", "0", "--batch-size", "5"]) == 0
    assert f"12 images x {DIMS[layer]} ({layer})" in capsys.readouterr().out
    z = np.load(out, allow_pickle=False)
    assert z["features"].shape == (12, DIMS[layer]) and z["features"].dtype == np.float32
    assert z["labels"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert z["paths"].tolist()[:2] == ["circle/000.png", "circle/001.png"]
    assert z["paths"][-1] == "stripes/003.png" and str(z["layer"]) == layer
    assert z["classes"].tolist() == ["circle", "square", "stripes"]  # the data's
    got = torch.from_numpy(z["features"])  # batches of 5, 5, 2; the reference one of 12
    torch.testing.assert_close(got, reference[layer], rtol=1e-5, atol=1e-5)
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left


def test_layer_features_through_the_registry_for_owt():
    from alexnet.tasks.features import layer_features

    owt = alexnet.create_model("alexnet_owt", num_classes=4).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        pool5 = owt.forward_features(x).flatten(1)
        fc6 = torch.relu(owt.classifier[1](pool5))
        fc7 = owt.forward_head(owt.forward_features(x), pre_logits=True)
    for layer, ref in (("pool5", pool5), ("fc6", fc6), ("fc7", fc7)):
        torch.testing.assert_close(layer_features(owt, x, layer), ref)


def test_features_command_errors_write_nothing(tiny_checkpoint, tmp_path, capsys):
    from alexnet.cli import main

    out = tmp_path / "f.npz"
    args = ["features", str(tiny_checkpoint), "--layer", "fc7", "--out", str(out)]
    assert main([*args, "--data", str(tmp_path / "missing")]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    assert not out.exists()
