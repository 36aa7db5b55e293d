"""alexnet.engine.parallel: the two-tower split (§3.2) equals the single-device model."""

from __future__ import annotations

import pytest
import torch

from alexnet.engine.parallel import TwoTowerAlexNet, unwrap_model_parallel, wrap_model_parallel
from alexnet.errors import UserError
from alexnet.models import create_model

NARROW = 0.0625  # tests/conftest.py's NARROW: the two towers at 1/16 width


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    model = create_model("alexnet", num_classes=10, init="kaiming", dropout=0.0, width=NARROW)
    model = model.double()
    torch.nn.init.normal_(model.classifier.fc8.weight, 0.0, 0.01)  # kaiming zeroes it
    return model, wrap_model_parallel(model, "cpu,cpu").double()


def test_outputs_equal_single_device(pair):
    model, mp = pair
    x = torch.randn(3, 3, 227, 227, dtype=torch.float64)
    torch.testing.assert_close(mp(x), model(x), rtol=1e-10, atol=1e-10)
    f = model.forward_head(model.forward_features(x), pre_logits=True)
    torch.testing.assert_close(mp.forward_head(mp.forward_features(x), pre_logits=True), f)


def test_gradients_equal_single_device(pair):
    model, mp = pair
    x = torch.randn(2, 3, 227, 227, dtype=torch.float64)
    y = torch.tensor([1, 7])
    model.zero_grad()
    mp.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    torch.nn.functional.cross_entropy(mp(x), y).backward()
    # gather the towers' gradients back into the plain layout and compare
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"):
        src = getattr(model.features, name, None) or getattr(model.classifier, name)
        ga, gb = getattr(mp.tower_a, name).weight.grad, getattr(mp.tower_b, name).weight.grad
        torch.testing.assert_close(torch.cat([ga, gb], 0), src.weight.grad, rtol=1e-9, atol=1e-12)


def test_weights_round_trip_in_the_checkpoint_format(pair):
    model, mp = pair
    sd = mp.merged_state_dict()
    assert sd.keys() == model.state_dict().keys()
    assert unwrap_model_parallel(mp).keys() == sd.keys()
    assert unwrap_model_parallel(model).keys() == sd.keys()
    assert all(torch.equal(sd[k], v) for k, v in model.state_dict().items())
    # the same options (dropout 0: the paper's dropout scales by 1 - p at test time)
    other = create_model("alexnet", num_classes=10, dropout=0.0, width=NARROW).double()
    mp2 = TwoTowerAlexNet(other, "cpu", "cpu").double()
    mp2.load_merged_state_dict(sd)
    x = torch.randn(1, 3, 227, 227, dtype=torch.float64)
    torch.testing.assert_close(mp2.eval()(x), model(x))


def test_towers_exchange_only_at_conv3_and_fc(pair):
    """Tower A's pool2 maps do not depend on tower B's conv1 kernels."""
    _, mp = pair
    x = torch.randn(1, 3, 227, 227, dtype=torch.float64)
    before = mp.tower_a.stem(x)
    with torch.no_grad():
        mp.tower_b.conv1.weight.add_(0.1)
    assert torch.equal(mp.tower_a.stem(x), before)
    with torch.no_grad():
        mp.tower_b.conv1.weight.sub_(0.1)


def test_bad_specs_and_models():
    model = create_model("alexnet", num_classes=4, width=NARROW)
    for spec in ("cpu", "cpu,cpu,cpu", "cpu,"):
        with pytest.raises(UserError, match="two devices"):
            wrap_model_parallel(model, spec)
    with pytest.raises(UserError, match="not a device"):
        wrap_model_parallel(model, "cpu,gpu7")
    with pytest.raises(UserError, match="alexnet"):
        wrap_model_parallel(create_model("alexnet_owt", num_classes=4), "cpu,cpu")
    with pytest.raises(UserError, match="BatchNorm"):
        wrap_model_parallel(create_model("alexnet_bn", num_classes=4, width=NARROW), "cpu,cpu")


def test_train_with_model_parallel_on_cpu(tiny_data, tmp_path, train_config):
    from alexnet.engine.checkpoint import load_checkpoint
    from alexnet.engine.train import train

    out = tmp_path / "mp"
    train(train_config(tiny_data, out, epochs=1, model_parallel="cpu,cpu", max_steps=2))
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["step"] == 2
    create_model("alexnet", num_classes=3, width=NARROW).load_state_dict(
        ck["model"]
    )  # the one format
