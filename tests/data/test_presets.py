"""The train/eval presets on known inputs: crop sizes and positions, flips, the 10 crops,
mean subtraction (per channel and the paper's mean image), ColorJitter, seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.data import IMAGENET_STATS, DatasetStats, eval_transform, train_transform
from alexnet.data.transforms import square_uint8


def coords_image(size: int = 256) -> torch.Tensor:
    """uint8 (3, S, S): R = column, G = row, B = (row + column) % 256: a crop tells its origin."""
    r = torch.arange(size, dtype=torch.int64)
    col, row = r[None, :].expand(size, size), r[:, None].expand(size, size)
    return torch.stack([col, row, (row + col) % 256]).to(torch.uint8)


def as_bytes(x: torch.Tensor) -> torch.Tensor:
    """Undo normalize="none" (x / 255) -> uint8."""
    return (x * 255).round().to(torch.uint8)


@pytest.mark.parametrize("size", [227, 224])
def test_train_crop_is_a_slice_or_its_mirror(size):
    img = coords_image()
    t = train_transform(size, lighting=0.0, normalize="none")
    seen_flip, tops, lefts = set(), set(), set()
    for seed in range(60):
        torch.manual_seed(seed)
        out = t(img)
        assert out.shape == (3, size, size) and out.dtype == torch.float32
        crop = as_bytes(out)
        top = int(crop[1, 0, 0])
        flip = int(crop[0, 0, 1]) < int(crop[0, 0, 0])  # columns run right-to-left
        left = int(crop[0, 0, -1]) if flip else int(crop[0, 0, 0])
        expected = img[:, top : top + size, left : left + size]
        assert torch.equal(crop, expected.flip(-1) if flip else expected)
        seen_flip.add(flip)
        tops.add(top)
        lefts.add(left)
    assert seen_flip == {True, False}
    assert min(tops) >= 0 and max(tops) <= 256 - size and len(tops) > 10 and len(lefts) > 10


def test_train_pil_and_tensor_inputs_agree():
    x = coords_image()
    pil = Image.fromarray(x.permute(1, 2, 0).numpy(), "RGB")
    t = train_transform()
    torch.manual_seed(3)
    a = t(pil)
    torch.manual_seed(3)
    assert torch.equal(a, t(x))


def test_any_image_is_rescaled_first():
    img = Image.new("RGB", (500, 300), (10, 20, 30))
    out = train_transform(224, lighting=0.0, normalize="none")(img)
    assert out.shape == (3, 224, 224)
    assert torch.equal(as_bytes(out)[:, 0, 0], torch.tensor([10, 20, 30], dtype=torch.uint8))


def test_eval_centre_crop():
    img = coords_image()
    out = as_bytes(eval_transform(227, normalize="none")(img))
    assert torch.equal(out, img[:, 14:241, 14:241])


def test_ten_crop_views_are_the_corners_centre_and_mirrors():
    img = coords_image()
    out = eval_transform(227, ten_crop=True, normalize="none")(img)
    assert out.shape == (10, 3, 227, 227)
    views = as_bytes(out)
    origins = [(0, 0), (0, 29), (29, 0), (29, 29), (14, 14)]
    for k, (t, l) in enumerate(origins):
        patch = img[:, t : t + 227, l : l + 227]
        assert torch.equal(views[k], patch)
        assert torch.equal(views[5 + k], patch.flip(-1))


def test_channel_normalisation():
    stats = DatasetStats(
        mean=(0.5, 0.25, 0.75), std=(0.5, 0.25, 0.125), eigval=(0, 0, 0), eigvec=np.eye(3).tolist()
    )
    x = torch.full((3, 256, 256), 128, dtype=torch.uint8)
    out = eval_transform(227, stats)(x)
    expected = (128 / 255 - torch.tensor(stats.mean)) / torch.tensor(stats.std)
    torch.testing.assert_close(out[:, 100, 100], expected)


def test_pixel_mean_image_is_subtracted_at_the_crop_position():
    g = torch.Generator().manual_seed(0)
    mean_image = torch.rand(3, 256, 256, generator=g).numpy()
    stats = DatasetStats(
        mean=(0.5,) * 3,
        std=(1,) * 3,
        eigval=(0, 0, 0),
        eigvec=np.eye(3).tolist(),
        mean_image=mean_image,
    )
    img = coords_image()
    out = eval_transform(227, stats, normalize="pixel")(img)  # 0-255 units, as cuda-convnet
    expected = (
        img[:, 14:241, 14:241].float() - 255 * torch.from_numpy(mean_image)[:, 14:241, 14:241]
    )
    torch.testing.assert_close(out, expected, atol=1e-3, rtol=0)
    t = train_transform(227, stats, lighting=0.0, normalize="pixel")
    for seed in range(8):
        torch.manual_seed(seed)
        out = t(img)
        torch.manual_seed(seed)
        crop = as_bytes(train_transform(227, lighting=0.0, normalize="none")(img)).float()
        top = int(crop[1, 0, 0])
        flip = int(crop[0, 0, 1]) < int(crop[0, 0, 0])
        left = int(crop[0, 0, -1]) if flip else int(crop[0, 0, 0])
        m = 255 * torch.from_numpy(mean_image)[:, top : top + 227, left : left + 227]
        torch.testing.assert_close(out, crop - (m.flip(-1) if flip else m), atol=1e-3, rtol=0)


def test_pca_lighting_in_the_preset_shifts_every_pixel_equally():
    img = coords_image()
    torch.manual_seed(5)
    lit = train_transform(227, lighting=0.1, normalize="none")(img)
    torch.manual_seed(5)
    plain = train_transform(227, lighting=0.0, normalize="none")(img)
    shift = lit - plain  # (3, S, S): the same RGB offset everywhere
    assert shift.abs().max() > 1e-4
    torch.testing.assert_close(shift, shift[:, :1, :1].expand_as(shift), atol=1e-6, rtol=0)


def test_color_jitter_option_is_seeded():
    img = coords_image()
    t = train_transform(227, color_jitter=0.4, lighting=0.0)
    torch.manual_seed(1)
    a = t(img)
    torch.manual_seed(1)
    b = t(img)
    torch.manual_seed(1)
    c = train_transform(227, lighting=0.0)(img)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_defaults_are_imagenet_stats_and_reject_bad_options():
    t = train_transform()
    assert torch.allclose(t.lighting.eigval, torch.tensor(IMAGENET_STATS.eigval))
    with pytest.raises(ValueError, match="normalize"):
        train_transform(normalize="bogus")
    with pytest.raises(ValueError, match="input_size"):
        eval_transform(300)
    with pytest.raises(TypeError, match="uint8"):
        square_uint8(torch.zeros(3, 8, 8))


def _photos(cifar10_dir=None):
    """Images of the sizes and shapes photos come in (and CIFAR-10's real ones if given)."""
    rng = np.random.default_rng(0)
    shapes = [(375, 500), (500, 333), (256, 256), (32, 32), (1000, 257), (227, 301)]
    yield from (Image.fromarray(rng.integers(0, 256, (*s, 3), dtype=np.uint8)) for s in shapes)
    if cifar10_dir is not None:
        for path in sorted(cifar10_dir.glob("test/*/*.jpg"))[::500]:  # 20 real photos
            yield Image.open(path).convert("RGB")


def test_imported_torchvision_weights_see_torchvision_preprocessing(tmp_path):
    """evaluate/predict's transform of an imported torchvision checkpoint equals
    AlexNet_Weights.IMAGENET1K_V1.transforms() (max input difference <= 1e-5)."""
    from torchvision.models import AlexNet_Weights

    from alexnet.data.transforms import transform_from_preprocessing
    from alexnet.outputs.export.torchvision_weights import torchvision_preprocessing

    theirs = AlexNet_Weights.IMAGENET1K_V1.transforms()
    ours = transform_from_preprocessing(torchvision_preprocessing())
    for img in _photos():
        assert (ours(img) - theirs(img)).abs().max().item() <= 1e-5


@pytest.mark.slow
def test_torchvision_preprocessing_on_real_photos(cifar10_tarball, monkeypatch, tmp_path):
    from torchvision.models import AlexNet_Weights

    from alexnet.data.sources import _tree_root, extract_archive
    from alexnet.data.transforms import transform_from_preprocessing
    from alexnet.outputs.export.torchvision_weights import torchvision_preprocessing

    root = _tree_root(extract_archive(cifar10_tarball))
    theirs = AlexNet_Weights.IMAGENET1K_V1.transforms()
    ours = transform_from_preprocessing(torchvision_preprocessing())
    worst = max((ours(img) - theirs(img)).abs().max().item() for img in _photos(root))
    assert worst <= 1e-5


@pytest.mark.parametrize("mode", ["square", "warp", "shorter"])
def test_resize_modes(mode):
    """square: the central square of the shorter side (§2); warp: the whole image squeezed
    (Caffe); shorter: aspect kept and crops from the whole resized image (torchvision)."""
    from alexnet.data.transforms import EvalTransform, resized_uint8

    img = Image.new("RGB", (400, 200), (10, 20, 30))
    img.paste((200, 0, 0), (0, 0, 100, 200))  # the left quarter is red
    x = resized_uint8(img, 256, mode)
    want = {"square": (256, 256), "warp": (256, 256), "shorter": (256, 512)}[mode]
    assert tuple(x.shape[1:]) == want
    left_red = bool(x[0, 128, 5] > 150)
    assert left_red == (mode != "square")  # the square crop cuts the red quarter away
    assert EvalTransform(227, resize_mode=mode, ten_crop=True)(img).shape == (10, 3, 227, 227)
