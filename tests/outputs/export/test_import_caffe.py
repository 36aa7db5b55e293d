"""import-caffe: a .caffemodel written by protobuf's encoder (both layouts, AlexNet's and
CaffeNet's order) -> an alexnet checkpoint whose outputs are Caffe's, computed here in
float64 from Caffe's layer definitions (conftest.py). The nets are narrow (width NARROW)
but for the published bvlc_alexnet's layout, imported at full size once."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.cli import main
from alexnet.data import DatasetStats
from alexnet.data.transforms import transform_from_preprocessing
from alexnet.engine.checkpoint import load_checkpoint
from alexnet.errors import UserError
from alexnet.outputs.export import caffe_weights, import_caffe
from alexnet.tasks.loading import load_model

NUM_CLASSES = 10
NARROW = 0.125  # width 1/8: a 3.6 MB caffemodel
BVLC_LRN = {"local_size": 5, "alpha": 1e-4, "beta": 0.75}  # k unset: Caffe's default 1
OTHER_LRN = {"local_size": 3, "alpha": 3e-4, "beta": 0.7, "k": 2.0}
BGR_MEAN = np.array([104.0070, 116.6688, 122.6789])


@pytest.fixture(scope="module")
def weights(caffe):
    """weights(width) -> Caffe's blobs of a NUM_CLASSES-way AlexNet at that width, made once."""
    cache = {}

    def get(width=NARROW):
        if width not in cache:
            cache[width] = caffe.weights(NUM_CLASSES, width=width)
        return cache[width]

    return get


@pytest.fixture(scope="module")
def files(caffe, weights, tmp_path_factory):
    """files(layout, order, lrn, width) -> the path of that net's .caffemodel, written once."""
    cache, root = {}, tmp_path_factory.mktemp("caffe")

    def get(layout="layers", order="alexnet", lrn=None, width=NARROW):
        key = (layout, order, tuple(sorted((lrn or BVLC_LRN).items())), width)
        if key not in cache:
            path = root / f"{layout}-{order}-{len(cache)}.caffemodel"
            layers = caffe.layer_list(order, lrn or BVLC_LRN, NUM_CLASSES, width)
            path.write_bytes(caffe.encode_net(caffe.pb, layout, layers, weights(width)))
            cache[key] = path
        return cache[key]

    return get


def relative(a: torch.Tensor, ref: torch.Tensor) -> float:
    """max |a - ref| / max |ref|"""
    return float((a.double() - ref).abs().max() / ref.abs().max())


@pytest.mark.parametrize(
    "layout, order, lrn, width",
    [
        # bvlc_alexnet.caffemodel as published (V1, 2014), at its full size
        ("layers", "alexnet", BVLC_LRN, 1.0),
        ("layer", "alexnet", BVLC_LRN, NARROW),  # the same net in today's layout
        ("layer", "caffenet", OTHER_LRN, NARROW),  # CaffeNet's pool before LRN, other constants
    ],
)
def test_import_gives_caffes_outputs(caffe, weights, files, tmp_path, layout, order, lrn, width):
    out = import_caffe(files(layout, order, lrn, width), tmp_path / "caffe.pt")
    state = load_checkpoint(out)
    assert state["model_name"] == "alexnet"
    narrow = {"width": width} if width != 1.0 else {}  # a full-size import records no width
    assert state["model_kwargs"] == narrow | {
        "lrn_size": lrn["local_size"],
        "lrn_alpha": lrn["alpha"],  # the file's float32, read back as the decimal written
        "lrn_beta": lrn["beta"],
        "lrn_k": lrn.get("k", 1.0),
        "lrn_alpha_over_n": True,
        "lrn_window": "layer",
        "dropout_form": "inverted",
        "pool_before_lrn": order == "caffenet",
    }
    assert state["config"]["source"] == "caffe" and state["config"]["layout"] == layout
    assert state["classes"] == [str(i) for i in range(NUM_CLASSES)]

    x_bgr = torch.rand(2, 3, 227, 227, generator=torch.Generator().manual_seed(1)) * 255 - 120
    ref_fc7, ref_fc8 = caffe.forward(weights(width), x_bgr, order, lrn)
    model = load_model(out).model.eval()
    x = x_bgr.flip(1)  # the checkpoint's conv1 takes RGB
    with torch.no_grad():
        pool5 = model.forward_features(x)
        fc7, fc8 = model.forward_head(pool5, pre_logits=True), model.forward_head(pool5)
    d7, d8 = relative(fc7, ref_fc7), relative(fc8, ref_fc8)
    print(f"\n{layout}/{order}/width {width}: max relative difference fc7 {d7:.2e}, fc8 {d8:.2e}")
    assert d7 < 1e-5 and d8 < 1e-5
    assert torch.equal(fc8.argmax(1), ref_fc8.argmax(1))


def _with(layers: list[tuple], **num_outputs: int) -> list[tuple]:
    """``layers`` with the named layers' num_output replaced."""
    return [
        (*layer[:4], {**layer[4], "num_output": num_outputs[layer[0]]})
        if layer[0] in num_outputs
        else layer
        for layer in layers
    ]


def test_a_narrow_net_imports_at_the_width_conv1_gives(caffe, files, tmp_path):
    """conv1's num_output n gives the width, n / 96: a narrow net imports with its width
    recorded and the model built at it. A count that no width the model builds gives (odd;
    0; over 4 x 96) is refused in one line naming conv1, and so are layers of sizes other
    than that width's; nothing is written."""
    state = load_checkpoint(import_caffe(files(), tmp_path / "narrow.pt"))
    assert state["model_kwargs"]["width"] == NARROW
    model = load_model(tmp_path / "narrow.pt").model
    assert model.features.conv1.weight.shape == (12, 3, 11, 11)
    assert model.classifier.fc7.weight.shape == (512, 512)

    bad, out = tmp_path / "bad.caffemodel", tmp_path / "out" / "x.pt"
    for n, why in (
        (95, "conv1 has 96 x width maps, rounded to an even count"),
        (0, "width must be in (0, 4], got 0.0"),
        (386, "width must be in (0, 4], got 4.02"),
    ):
        layers = _with(caffe.layer_list("alexnet", None, NUM_CLASSES), conv1=n)
        bad.write_bytes(caffe.encode_net(caffe.pb, "layer", layers, {}))
        with pytest.raises(UserError) as e:
            import_caffe(bad, out)
        message = str(e.value)
        assert "\n" not in message
        assert message.startswith(
            f"{bad}: not AlexNet's layout: conv1 has num_output {n}, which no AlexNet width "
            f"gives ({why}"
        ), message

    layers = _with(caffe.layer_list("alexnet", None, NUM_CLASSES), conv2=256, fc6=4096)
    bad.write_bytes(caffe.encode_net(caffe.pb, "layer", layers, {}))
    with pytest.raises(UserError) as e:
        import_caffe(bad, out)
    assert "\n" not in str(e.value)
    assert (
        "conv2 is num_output 256 kernel (5, 5) stride (1, 1) pad (2, 2) group 2, "
        "AlexNet's conv2 (width 0.125) num_output 32 kernel 5 stride 1 pad 2 group 2; "
    ) in str(e.value)
    assert "fc6 has 4096 outputs, AlexNet's fc6 (width 0.125) 512; " in str(e.value)
    assert not out.parent.exists()


@pytest.mark.parametrize(
    "width, conv1",
    [
        (1.0, "AlexNet's conv1 (96, 3, 11, 11)"),
        (NARROW, "AlexNet's conv1 (width 0.125) (12, 3, 11, 11)"),
    ],
)
def test_shape_messages_name_the_files_width(caffe, tmp_path, width, conv1):
    """A blob of the wrong shape is named with the model's shape at the file's width; the
    paper's network's without a width."""
    bad = tmp_path / "bad.caffemodel"
    bad.write_bytes(caffe.small_net(width=width))
    with pytest.raises(UserError) as e:
        import_caffe(bad, tmp_path / "x.pt")
    assert str(e.value).startswith(f"{bad}: conv1 weight is (1,), {conv1}; "), str(e.value)


def caffe_input(rgb: np.ndarray, mean_bgr: np.ndarray) -> torch.Tensor:
    """data_transformer.cpp at test time on a 256x256 image: BGR minus the mean, the crop
    at (256 - 227) / 2 = 14 -> (3, 227, 227) BGR."""
    bgr = rgb[..., ::-1].transpose(2, 0, 1).astype(np.float64)
    mean = mean_bgr if mean_bgr.ndim == 3 else mean_bgr[:, None, None]
    return torch.from_numpy((bgr - mean)[:, 14:241, 14:241])


def test_preprocessing_is_caffes(files, tmp_path):
    out = import_caffe(files(), tmp_path / "caffe.pt")
    pre = load_checkpoint(out)["preprocessing"]
    assert {k: pre[k] for k in ("input_size", "resize", "resize_mode", "normalize")} == {
        "input_size": 227,
        "resize": 256,
        "resize_mode": "warp",
        "normalize": "pixel",
    }
    stats = DatasetStats.from_dict(pre["stats"])
    np.testing.assert_allclose(stats.mean, BGR_MEAN[::-1] / 255, rtol=1e-12)
    assert stats.mean_image is None
    rgb = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    ours = transform_from_preprocessing(pre)(Image.fromarray(rgb))
    torch.testing.assert_close(ours.double(), caffe_input(rgb, BGR_MEAN).flip(0), atol=1e-4, rtol=0)


def test_mean_image_from_binaryproto(caffe, files, tmp_path, capsys):
    mean_bgr = np.random.default_rng(1).uniform(80, 140, (3, 256, 256)).astype(np.float32)
    blob = caffe.pb.BlobProto()
    caffe.fill_blob(blob, mean_bgr[None], legacy=True)  # (1, 3, 256, 256) as Caffe writes it
    mean_file = tmp_path / "imagenet_mean.binaryproto"
    mean_file.write_bytes(blob.SerializeToString())
    out = tmp_path / "caffe.pt"
    assert main(["import-caffe", str(files()), "--out", str(out), "--mean", str(mean_file)]) == 0
    assert "wrote" in capsys.readouterr().out
    pre = load_checkpoint(out)["preprocessing"]
    stats = DatasetStats.from_dict(pre["stats"])
    assert stats.mean_image.shape == (3, 256, 256) and stats.mean_image.dtype == np.float32
    np.testing.assert_allclose(stats.mean_image, mean_bgr[::-1] / 255, rtol=1e-6)
    rgb = np.random.default_rng(2).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    ours = transform_from_preprocessing(pre)(Image.fromarray(rgb))
    want = caffe_input(rgb, mean_bgr.astype(np.float64)).flip(0)
    torch.testing.assert_close(ours.double(), want, atol=1e-4, rtol=0)


def test_bad_mean_file(files, tmp_path):
    bad = tmp_path / "mean.binaryproto"
    bad.write_bytes(b"\x0a\x02\x08")  # a BlobShape claiming 2 bytes, 1 there
    with pytest.raises(UserError, match="not a Caffe BlobProto") as e:
        import_caffe(files(), tmp_path / "x.pt", mean=bad)
    assert "\n" not in str(e.value) and not (tmp_path / "x.pt").exists()


def test_1000_way_net_gets_imagenet_names_and_the_zoo_accuracy(
    caffe, weights, tmp_path, monkeypatch
):
    w8, b8 = weights()["fc8"]
    wide = {**weights(), "fc8": (np.tile(w8, (100, 1)), np.tile(b8, 100))}
    path = tmp_path / "bvlc_alexnet.caffemodel"
    path.write_bytes(
        caffe.encode_net(caffe.pb, "layers", caffe.layer_list("alexnet", None, 1000), wide)
    )
    import hashlib

    sha1 = hashlib.sha1(path.read_bytes()).hexdigest()
    known = caffe_weights.KNOWN_FILES["9116a64c0fbe4459d18f4bb6b56d647b63920377"]
    monkeypatch.setitem(caffe_weights.KNOWN_FILES, sha1, known)  # pretend it is the zoo's
    state = load_checkpoint(import_caffe(path, tmp_path / "bvlc.pt"))
    assert len(state["classes"]) == 1000 and state["classes"][:2] == ["tench", "goldfish"]
    assert state["config"]["caffe_accuracy"] == {"acc@1": 57.1, "acc@5": 80.2}
    assert state["config"]["model_zoo"] == "bvlc_alexnet" and state["config"]["sha1"] == sha1


def test_cli_class_names(files, tmp_path, capsys):
    names = tmp_path / "synset_words.txt"
    names.write_text("".join(f"n0{i:07d} thing {i}, other name\n" for i in range(NUM_CLASSES)))
    out = tmp_path / "named.pt"
    assert main(["import-caffe", str(files()), "--out", str(out), "--classes", str(names)]) == 0
    state = load_checkpoint(out, mmap=True)
    assert state["classes"][:2] == ["n00000000", "n00000001"]  # synset_words.txt: the ids
    assert state["config"]["caffe_accuracy"] is None  # not the zoo's file
    names.write_text("cat\n dog \n\nfox\n")
    assert caffe_weights.read_class_names(names) == ["cat", "dog", "fox"]
    args = ["import-caffe", str(files()), "--out", str(tmp_path / "x.pt"), "--classes", str(names)]
    assert main(args) == 1
    assert "3 class names given for the 10-way fc8" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def _lenet() -> list[tuple]:
    return [
        ("data", "Data", None, "data", {}),
        ("conv1", "Convolution", "data", "conv1", {"num_output": 20, "kernel_size": [5]}),
        ("pool1", "Pooling", "conv1", "pool1", {"pool": 0, "kernel_size": 2, "stride": 2}),
        ("conv2", "Convolution", "pool1", "conv2", {"num_output": 50, "kernel_size": [5]}),
        ("pool2", "Pooling", "conv2", "pool2", {"pool": 0, "kernel_size": 2, "stride": 2}),
        ("ip1", "InnerProduct", "pool2", "ip1", {"num_output": 500}),
        ("relu1", "ReLU", "ip1", "ip1", {}),
        ("ip2", "InnerProduct", "ip1", "ip2", {"num_output": 10}),
    ]


def _bad_file(kind: str, caffe, weights, files) -> bytes:
    layers = caffe.layer_list("alexnet", None, NUM_CLASSES)
    if kind == "truncated":
        data = files().read_bytes()
        return data[: len(data) // 2]
    if kind == "missing fc8":
        layers = [layer for layer in layers if layer[0] not in ("fc8", "loss")]
        return caffe.encode_net(caffe.pb, "layer", layers, {})
    if kind == "wrong conv2 shape":
        conv2 = np.zeros((32, 6, 3, 3), np.float32), weights()["conv2"][1]
        return caffe.encode_net(caffe.pb, "layer", layers, {**weights(), "conv2": conv2})
    if kind.startswith("one tower"):
        if kind == "one tower at width 1":  # no blobs: a 2 KB file
            layers = caffe.layer_list("alexnet", None, NUM_CLASSES, 1.0)
        layers = [
            (*layer[:4], {**layer[4], "group": 1}) if layer[0] == "conv2" else layer
            for layer in layers
        ]
        return caffe.encode_net(caffe.pb, "layers", layers, {})
    if kind == "not an alexnet":
        return caffe.encode_net(caffe.pb, "layer", _lenet(), {})
    assert kind == "garbage"
    return b"not a caffemodel at all"


@pytest.mark.parametrize(
    "kind, message",
    [
        ("truncated", r"not a readable Caffe NetParameter \(truncated: field 2 at byte"),
        ("missing fc8", r"not an AlexNet: .* and then ends after drop7; fc8 missing"),
        (
            "wrong conv2 shape",
            r"conv2 weight is \(32, 6, 3, 3\), AlexNet's conv2 \(width 0.125\) \(32, 6, 5, 5\)$",
        ),
        (
            "one tower at width 1",
            r"conv2 is num_output 256 kernel \(5, 5\) .* group 1, AlexNet's conv2 .* group 2",
        ),
        (
            "one tower",
            r"conv2 is num_output 32 kernel \(5, 5\) .* group 1, "
            r"AlexNet's conv2 \(width 0.125\) num_output 32 .* group 2",
        ),
        (
            "not an alexnet",
            r"not an AlexNet: layer 'ip1' \(InnerProduct\) is where AlexNet has conv3",
        ),
        (
            "garbage",
            r"not a readable Caffe NetParameter \(it does not start like a NetParameter: "
            r"its first record is field 13 \(wire type 6\)",
        ),
    ],
)
def test_bad_files_one_line_and_nothing_written(
    kind, message, caffe, weights, files, tmp_path, capsys
):
    bad = tmp_path / "bad.caffemodel"
    bad.write_bytes(_bad_file(kind, caffe, weights, files))
    out = tmp_path / "out" / "x.pt"
    assert main(["import-caffe", str(bad), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err, err
    assert __import__("re").search(message, err.strip()), err
    assert not out.parent.exists()  # nothing written, not even the folder


@pytest.mark.parametrize("content", [None, b""], ids=["missing", "empty"])
def test_missing_or_empty_file(tmp_path, content):
    path = tmp_path / "x.caffemodel"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match="does not exist|is empty"):
        import_caffe(path, tmp_path / "x.pt")
