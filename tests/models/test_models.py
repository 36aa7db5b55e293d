"""The registry and the three networks: shapes, parameter counts, init, towers, torchvision keys."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import alexnet
from alexnet.models import AlexNet, create_model, list_models, tower_slices


@pytest.fixture
def on_meta():
    """Models built on the meta device, for counts and structure: no memory, no
    initialisation (a full-size model's takes a second)."""
    with torch.device("meta"):
        yield


def test_registry_lists_the_three_models():
    assert {"alexnet", "alexnet_owt", "alexnet_bn"} <= set(list_models())
    assert alexnet.list_models() == list_models()


@pytest.mark.parametrize(
    "name,size",
    [
        ("alexnet", 227),
        ("alexnet", 224),
        ("alexnet_bn", 227),
        ("alexnet_bn", 224),
        ("alexnet_owt", 224),
        ("alexnet_owt", 227),
    ],
)
def test_output_shapes(name, size):
    kwargs = {} if name == "alexnet_owt" else {"input_size": size}
    model = create_model(name, num_classes=10, **kwargs).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert model(x).shape == (2, 10)
        feats = model.forward_features(x)
        assert feats.shape == (2, 256, 6, 6)
        assert model.forward_head(feats, pre_logits=True).shape == (2, 4096)


@pytest.mark.usefixtures("on_meta")
def test_exact_parameter_counts():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(create_model("alexnet")) == 60_965_224
    assert count(create_model("alexnet", input_size=224)) == 60_965_224
    assert count(create_model("alexnet_owt")) == 61_100_840
    # BatchNorm replaces the 1,376 conv biases and adds 2 x 1,376 affine parameters.
    assert count(create_model("alexnet_bn")) == 60_965_224 - 1_376 + 2 * 1_376


@pytest.mark.usefixtures("on_meta")
def test_default_class_is_alexnet():
    assert isinstance(create_model("alexnet"), alexnet.AlexNet)
    assert alexnet.AlexNet(num_classes=7).num_classes == 7


@pytest.mark.parametrize("size", [226, 228, 256, 32])
@pytest.mark.usefixtures("on_meta")
def test_other_input_sizes_fail_with_the_accepted_sizes(size):
    model = create_model("alexnet", num_classes=10)
    with pytest.raises(ValueError, match="227.*224"):
        model(torch.randn(1, 3, size, size))
    with pytest.raises(ValueError, match="input_size"):
        create_model("alexnet", input_size=size)


def test_unknown_model_and_option():
    with pytest.raises(ValueError, match="unknown model 'vgg'.*alexnet"):
        create_model("vgg")
    with pytest.raises(ValueError, match="alexnet"):
        create_model("alexnet", colour=True)


def test_all_bad_options_reported_together():
    with pytest.raises(ValueError) as e:
        create_model("alexnet", num_classes=0, dropout=1.5, init="xavier")
    msg = str(e.value)
    assert "num_classes" in msg and "dropout" in msg and "init" in msg


def _convs_and_fcs(model):
    layers = [*model.features.named_children(), *model.classifier.named_children()]
    return {n: m for n, m in layers if isinstance(m, (nn.Conv2d, nn.Linear))}


def test_paper_init_statistics():
    model = create_model("alexnet")
    layers = _convs_and_fcs(model)
    assert list(layers) == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    for name, m in layers.items():
        w = m.weight.detach()
        assert abs(w.mean().item()) < 1e-3, name
        assert w.std().item() == pytest.approx(0.01, rel=0.05 if w.numel() > 30_000 else 0.1), name
        expected_bias = 1.0 if name in {"conv2", "conv4", "conv5", "fc6", "fc7"} else 0.0
        assert torch.all(m.bias == expected_bias), name


def test_caffe_and_kaiming_init():
    quarter = {"width": 0.25}  # conv1's 24 maps: 8,712 weights for the standard deviation
    caffe = _convs_and_fcs(create_model("alexnet", init="caffe", **quarter))
    assert torch.all(caffe["conv2"].bias == 0.1) and torch.all(caffe["conv1"].bias == 0)
    kaiming = _convs_and_fcs(create_model("alexnet", init="kaiming", **quarter))
    fan_in = 3 * 11 * 11
    assert kaiming["conv1"].weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.05)
    assert torch.all(kaiming["fc6"].bias == 0)
    # fc8 starts at zero: initial logits 0, loss ln(num_classes), the first steps stay sane
    assert torch.all(kaiming["fc8"].weight == 0)
    x = torch.randn(2, 3, 227, 227)
    assert torch.all(create_model("alexnet", num_classes=7, init="kaiming", **quarter)(x) == 0)


@pytest.mark.usefixtures("on_meta")
def test_lrn_dropout_options():
    model = create_model("alexnet", lrn=False, dropout=0.2)
    assert not any(isinstance(m, alexnet.LocalResponseNorm) for m in model.modules())
    assert model.classifier.drop6.p == 0.2 and model.classifier.drop7.p == 0.2
    paper = create_model("alexnet")
    lrns = [m for m in paper.modules() if isinstance(m, alexnet.LocalResponseNorm)]
    assert len(lrns) == 2 and (lrns[0].k, lrns[0].size, lrns[0].alpha, lrns[0].beta) == (
        2.0,
        5,
        1e-4,
        0.75,
    )
    bn = create_model("alexnet_bn")
    assert sum(isinstance(m, nn.BatchNorm2d) for m in bn.modules()) == 5
    assert not any(isinstance(m, alexnet.LocalResponseNorm) for m in bn.modules())


@pytest.mark.usefixtures("on_meta")
def test_dropout_acts_on_fc6_and_fc7_outputs():
    names = [n for n, _ in create_model("alexnet").classifier.named_children()]
    assert names == ["fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8"]


def test_tower_isolation_conv2():
    """Changing tower B's half of conv2's input leaves tower A's conv2 outputs unchanged."""
    model = create_model("alexnet", num_classes=10).eval()
    conv2 = model.features.conv2
    x = torch.randn(2, 96, 27, 27)
    y = conv2(x)
    x2 = x.clone()
    x2[:, 48:] = torch.randn(2, 48, 27, 27)  # tower B's maps
    y2 = conv2(x2)
    a, b = tower_slices(model)["conv2"]
    torch.testing.assert_close(y2[:, a], y[:, a], rtol=0, atol=0)
    assert not torch.allclose(y2[:, b], y[:, b])
    # conv3 crosses towers: tower B's input changes tower A's output.
    conv3 = model.features.conv3
    z = torch.randn(2, 256, 13, 13)
    z2 = z.clone()
    z2[:, 128:] += 1
    assert not torch.allclose(conv3(z)[:, :192], conv3(z2)[:, :192])


def test_tower_isolation_whole_network():
    """Perturb conv1's tower-B filters: tower A's maps stay fixed up to pool2 (until conv3)."""
    model = create_model("alexnet", num_classes=10).eval()
    x = torch.randn(1, 3, 227, 227)
    f = model.features
    with torch.no_grad():
        before = f[:4](x)  # conv1, tail1 (ReLU, LRN, pool1), conv2, tail2: up to pool2
        f.conv1.weight[48:] += 0.05
        after = f[:4](x)
    assert torch.equal(before[:, :128], after[:, :128])
    assert not torch.equal(before[:, 128:], after[:, 128:])


def test_tower_slices_cover_every_layer():
    s = tower_slices(create_model("alexnet"))
    assert s["conv1"] == (slice(0, 48), slice(48, 96))
    assert s["fc6"] == (slice(0, 2048), slice(2048, 4096))
    assert "fc8" not in s


def test_torchvision_state_dict_round_trip():
    torchvision = pytest.importorskip("torchvision")
    tv = torchvision.models.alexnet(weights=None).eval()
    ours = create_model("alexnet_owt").eval()
    tv_sd, our_sd = tv.state_dict(), ours.state_dict()
    assert list(tv_sd) == list(our_sd)
    assert all(tv_sd[k].shape == our_sd[k].shape for k in tv_sd)
    ours.load_state_dict(tv_sd, strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), rtol=0, atol=0)
    # And back: our weights load into torchvision's model.
    tv.load_state_dict(create_model("alexnet_owt").state_dict(), strict=True)


def test_training_step_reduces_loss_on_a_fixed_batch():
    """Six SGD steps at width 1/8 (the full size's steps are the template test's)."""
    model = create_model("alexnet", num_classes=4, init="kaiming", dropout=0.0, width=0.125)
    x, y = torch.randn(8, 3, 227, 227), torch.arange(8) % 4
    opt = torch.optim.SGD(model.parameters(), lr=0.002, momentum=0.9)
    losses = []
    for _ in range(6):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_model_file_imports_only_torch():
    """The model files and the ops layer (layers, custom ops, the kernel loader) import torch
    and the standard library, nothing else."""
    import ast
    import sys
    from pathlib import Path

    root = Path(alexnet.models.__file__).parent
    package = root.parent
    files = [
        *root.glob("*.py"),
        package / "_cache.py",
        *(package / "ops").rglob("*.py"),
    ]
    for path in files:
        # the CUDA kernels, imported only when a CUDA tensor reaches an op, may import triton
        third_party = {"triton"} if "triton" in path.relative_to(package).parts else set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods = [node.module]
            else:
                continue
            for mod in mods:
                top = mod.split(".")[0]
                known = {"torch", "alexnet"} | third_party | set(sys.stdlib_module_names)
                assert top in known, (path, mod)
                if top == "alexnet":
                    allowed = {"alexnet.ops.nn", "alexnet.ops._loader", "alexnet._cache"}
                    assert mod in allowed or mod.startswith("alexnet.ops"), (path, mod)


def test_config_is_an_instance_attribute():
    model = AlexNet(num_classes=3, input_size=224)
    assert model.config.input_size == 224 and model.config.num_classes == 3


@pytest.mark.parametrize("name", ["alexnet", "alexnet_bn"])
def test_width_scales_every_layer_and_keeps_the_names(name):
    """width 1/8: 12, 32, 48, 48, 32 maps and 512 features; the same state-dict keys, both
    towers (conv2/4/5 grouped), the LRN tails and the 227-pixel input of the full network."""
    full = create_model(name, num_classes=10)
    narrow = create_model(name, num_classes=10, width=0.125)
    assert list(full.state_dict()) == list(narrow.state_dict())
    shapes = {k: tuple(v.shape) for k, v in narrow.state_dict().items() if k.endswith("weight")}
    assert shapes["features.conv1.weight"] == (12, 3, 11, 11)
    assert shapes["features.conv2.weight"] == (32, 6, 5, 5)  # groups=2: 6 of conv1's 12 maps
    assert shapes["features.conv3.weight"] == (48, 32, 3, 3)  # conv3 sees both towers
    assert shapes["classifier.fc6.weight"] == (512, 32 * 6 * 6)
    assert shapes["classifier.fc8.weight"] == (10, 512)
    assert [m.groups for m in narrow.modules() if isinstance(m, nn.Conv2d)] == [1, 2, 1, 2, 2]
    assert narrow.model_kwargs == {"width": 0.125}
    assert tower_slices(narrow)["conv1"] == (slice(0, 6), slice(6, 12))
    with torch.no_grad():
        assert narrow.eval()(torch.randn(2, 3, 227, 227)).shape == (2, 10)
    if name == "alexnet":
        tails = [m for m in narrow.modules() if type(m).__name__ == "ReLULRNPool"]
        assert len(tails) == 2 and all(t.lrn.groups == 2 for t in tails)
        assert sum(p.numel() for p in narrow.parameters()) == 898_554


def test_narrow_network_matches_a_float64_reference():
    """The width-1/8 network against the paper's layers written out in float64 with
    torch.nn.functional: per-tower LRN b = a / (k + alpha * sum a^2)^beta over 5 maps."""
    import torch.nn.functional as F

    model = create_model("alexnet", num_classes=7, width=0.125).double().eval()
    w = {k: v for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 227, 227, dtype=torch.float64)

    def lrn(a, n=5, alpha=1e-4, beta=0.75, k=2.0):
        towers = []
        for t in a.chunk(2, dim=1):  # each tower normalised over its own maps
            sq = F.pad(t.pow(2), (0, 0, 0, 0, n // 2, n // 2))
            s = sum(sq[:, i : i + t.shape[1]] for i in range(n))
            towers.append(t / (k + alpha * s).pow(beta))
        return torch.cat(towers, dim=1)

    def conv(h, i, stride=1, pad=0, groups=1):
        p = f"features.conv{i}."
        return F.conv2d(h, w[p + "weight"], w[p + "bias"], stride, pad, groups=groups)

    h = F.max_pool2d(lrn(F.relu(conv(x, 1, 4))), 3, 2)
    h = F.max_pool2d(lrn(F.relu(conv(h, 2, 1, 2, 2))), 3, 2)
    h = F.relu(conv(h, 3, 1, 1))
    h = F.relu(conv(h, 4, 1, 1, 2))
    h = F.max_pool2d(F.relu(conv(h, 5, 1, 1, 2)), 3, 2).flatten(1)
    for i in (6, 7):  # dropout at test time: x (1 - p), the paper's form
        h = 0.5 * F.relu(F.linear(h, w[f"classifier.fc{i}.weight"], w[f"classifier.fc{i}.bias"]))
    ref = F.linear(h, w["classifier.fc8.weight"], w["classifier.fc8.bias"])
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref, rtol=1e-10, atol=1e-12)


def test_owt_width_scales_every_layer_and_keeps_torchvisions_names():
    """torchvision's network at width 1/8 (for tests that need some alexnet_owt file):
    8, 24, 48, 32, 32 maps and 512 features under torchvision's keys; width 1 is torchvision's."""
    full = create_model("alexnet_owt", num_classes=10)
    narrow = create_model("alexnet_owt", num_classes=10, width=0.125)
    assert list(full.state_dict()) == list(narrow.state_dict())
    convs = [tuple(m.weight.shape[:2]) for m in narrow.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [(8, 3), (24, 8), (48, 24), (32, 48), (32, 32)]
    fcs = [tuple(m.weight.shape) for m in narrow.modules() if isinstance(m, nn.Linear)]
    assert fcs == [(512, 32 * 36), (512, 512), (10, 512)]
    assert narrow.model_kwargs == {"width": 0.125} and full.model_kwargs == {}
    with torch.no_grad():
        assert narrow.eval()(torch.randn(2, 3, 224, 224)).shape == (2, 10)


@pytest.mark.parametrize("name", ["alexnet", "alexnet_owt"])
def test_width_out_of_range_is_refused(name):
    with pytest.raises(ValueError, match=r"width must be in \(0, 4\], got 0"):
        create_model(name, width=0)
