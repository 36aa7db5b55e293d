"""Batched fc7 extraction and Euclidean nearest neighbours (§6.1)."""

from __future__ import annotations

import pytest
import torch

import alexnet
from alexnet.checkpoint import LoadedModel
from alexnet.features import class_probabilities, features, nearest_neighbors


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
