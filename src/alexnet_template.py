"""AlexNet in one file: the learning edition.

Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks", NIPS 2012. This file needs only PyTorch and reads top to bottom: the local
response normalisation of §3.3, the network of Figure 2 with its two towers (the same
network as ``alexnet.create_model("alexnet")``, with the same parameter names, so the
library's weights load here), the dropout of §4.2 and the initialisation of §5, the
augmentation of §4.1 (random crops and mirrors, PCA lighting) and 10-crop testing, and a
training loop with the paper's update rule on images it draws itself:

    python -m alexnet_template --steps 40

The library (``alexnet``) adds the data pipeline, checkpoints, fast kernels and the CLI.
"""

from __future__ import annotations

import argparse
import math
from collections import OrderedDict

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def local_response_norm(a: Tensor, n=5, k=2.0, alpha=1e-4, beta=0.75, towers=2) -> Tensor:
    """§3.3: b[c] = a[c] / (k + alpha * sum of a[c']**2 over the n maps around c) ** beta,
    the window inside each tower (each GPU normalised the maps it held). a: (B, C, H, W)."""
    b, c, h, w = a.shape
    sq = (a * a).view(b * towers, 1, c // towers, h, w)  # one "image" per tower
    sq = F.pad(sq, (0, 0, 0, 0, (n - 1) // 2, n // 2))  # zero maps beyond the tower's edge
    window_sum = F.avg_pool3d(sq, (n, 1, 1), stride=1).view(b, c, h, w) * n
    return a / (k + alpha * window_sum) ** beta


class LRN(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return local_response_norm(x)


class Dropout(nn.Module):
    """§4.2: drop each output with probability p in training; at test time keep all of them
    and multiply by 1 - p ("multiply their outputs by 0.5")."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x * (1 - self.p)
        return x * torch.empty_like(x).bernoulli_(1 - self.p)


class AlexNet(nn.Module):
    """Figure 2. Comments give the output shape for a (B, 3, 227, 227) input.

    The paper split the network over two GPUs ("towers"): conv2, conv4 and conv5 see only
    their own GPU's maps (``groups=2``); conv3 and the fully-connected layers see both.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5, init: str = "paper"):
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 96, 11, stride=4)),  # (B, 96, 55, 55)
            ("relu1", nn.ReLU(inplace=True)),
            ("lrn1", LRN()),
            ("pool1", nn.MaxPool2d(3, 2)),  # (B, 96, 27, 27): overlapping pooling, §3.4
            ("conv2", nn.Conv2d(96, 256, 5, padding=2, groups=2)),  # (B, 256, 27, 27)
            ("relu2", nn.ReLU(inplace=True)),
            ("lrn2", LRN()),
            ("pool2", nn.MaxPool2d(3, 2)),  # (B, 256, 13, 13)
            ("conv3", nn.Conv2d(256, 384, 3, padding=1)),  # (B, 384, 13, 13)
            ("relu3", nn.ReLU(inplace=True)),
            ("conv4", nn.Conv2d(384, 384, 3, padding=1, groups=2)),  # (B, 384, 13, 13)
            ("relu4", nn.ReLU(inplace=True)),
            ("conv5", nn.Conv2d(384, 256, 3, padding=1, groups=2)),  # (B, 256, 13, 13)
            ("relu5", nn.ReLU(inplace=True)),
            ("pool5", nn.MaxPool2d(3, 2)),  # (B, 256, 6, 6)
        ]))  # fmt: skip
        self.classifier = nn.Sequential(OrderedDict([
            ("fc6", nn.Linear(256 * 6 * 6, 4096)),
            ("relu6", nn.ReLU(inplace=True)),
            ("drop6", Dropout(dropout)),
            ("fc7", nn.Linear(4096, 4096)),
            ("relu7", nn.ReLU(inplace=True)),
            ("drop7", Dropout(dropout)),
            ("fc8", nn.Linear(4096, num_classes)),
        ]))  # fmt: skip
        self.initialise(init)

    @torch.no_grad()
    def initialise(self, init: str = "paper") -> None:
        """§5: weights ~ N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6, fc7, else 0.
        "kaiming": He-normal weights, zero biases and a zero fc8, which leaves chance in a
        few dozen steps on standardised inputs, where §5's needs thousands."""
        for name, m in [*self.features.named_children(), *self.classifier.named_children()]:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                if init == "paper":
                    nn.init.normal_(m.weight, 0.0, 0.01)
                    one = name in ("conv2", "conv4", "conv5", "fc6", "fc7")
                    nn.init.constant_(m.bias, 1.0 if one else 0.0)
                else:
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    nn.init.zeros_(m.bias)
                    if name == "fc8":
                        nn.init.zeros_(m.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


# ---- §4.1 data augmentation, on a batch of 256x256 images (B, 3, 256, 256) ----


def random_crops_and_mirrors(images: Tensor, size: int = 227, g=None) -> Tensor:
    """A random size x size patch of each image, mirrored left-right with probability 1/2."""
    out = []
    for img in images:
        top, left = torch.randint(0, img.shape[-1] - size + 1, (2,), generator=g).tolist()
        patch = img[:, top : top + size, left : left + size]
        out.append(patch.flip(-1) if torch.rand((), generator=g) < 0.5 else patch)
    return torch.stack(out)


def rgb_pca(images: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues (3,) and eigenvectors (3, 3, in columns) of the RGB pixel covariance."""
    pixels = images.permute(1, 0, 2, 3).reshape(3, -1)
    return torch.linalg.eigh(torch.cov(pixels))


def pca_lighting(images: Tensor, eigval: Tensor, eigvec: Tensor, std=0.1, g=None) -> Tensor:
    """Add eigvec @ (alpha * eigval) to every pixel of an image, alpha ~ N(0, std) per image."""
    alpha = torch.randn(images.shape[0], 3, generator=g) * std
    offset = (alpha * eigval) @ eigvec.T  # (B, 3): row b is eigvec @ (alpha_b * eigval)
    return images + offset[:, :, None, None]


def ten_crop_probabilities(model: nn.Module, images: Tensor, size: int = 227) -> Tensor:
    """§4.1 test time: softmax averaged over the four corner patches, the centre patch and
    their mirrors. images (B, 3, R, R) -> (B, num_classes)."""
    e, c = images.shape[-1] - size, (images.shape[-1] - size) // 2
    origins = ((0, 0), (0, e), (e, 0), (e, e), (c, c))
    crops = [images[:, :, t : t + size, l : l + size] for t, l in origins]
    crops += [crop.flip(-1) for crop in crops]
    return torch.stack([model(crop).softmax(-1) for crop in crops]).mean(0)


# ---- a training run on drawn images ----


def draw_batch(batch_size: int, num_classes: int, g: torch.Generator, size: int = 256):
    """Images of oriented stripes: class c has stripes at angle c * 180 / num_classes
    degrees, with a random phase, frequency, colour and noise, so only the orientation
    tells the classes apart (something conv1's filters pick up)."""
    labels = torch.randint(num_classes, (batch_size,), generator=g)
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    angle = labels.float() * math.pi / num_classes  # (B,)
    freq = 0.15 + 0.1 * torch.rand(batch_size, generator=g)
    phase = 2 * math.pi * torch.rand(batch_size, generator=g)
    proj = xs[None] * torch.cos(angle)[:, None, None] + ys[None] * torch.sin(angle)[:, None, None]
    stripes = torch.sin(proj * freq[:, None, None] + phase[:, None, None])  # (B, S, S)
    colour = torch.rand(batch_size, 3, 1, 1, generator=g) * 2 - 1
    noise = 0.3 * torch.randn(batch_size, 3, size, size, generator=g)
    return stripes[:, None] * colour + noise, labels


def sgd_step(model, velocity, x, labels, lr):
    """One step of §5's rule: v := 0.9 v - 0.0005 lr w - lr dL/dw; w := w + v. Returns the loss."""
    loss = F.cross_entropy(model.train()(x), labels)
    model.zero_grad(set_to_none=True)
    loss.backward()
    with torch.no_grad():
        for p, v in velocity.items():
            v.mul_(0.9).add_(p, alpha=-0.0005 * lr).add_(p.grad, alpha=-lr)
            p.add_(v)
    return loss.item()


def train(
    steps=40, batch_size=16, num_classes=4, lr=0.02, init="kaiming", seed=0, log_every=5,
    eval_images=32,
):  # fmt: skip
    """Train on fresh stripe images with §5's update rule (the velocity holds the learning
    rate). Returns every step's loss; prints the 10-crop accuracy on ``eval_images`` new
    images at the end."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = AlexNet(num_classes, init=init)
    eigval, eigvec = rgb_pca(draw_batch(32, num_classes, g)[0])
    velocity = {p: torch.zeros_like(p) for p in model.parameters()}
    losses = []
    for step in range(1, steps + 1):
        images, labels = draw_batch(batch_size, num_classes, g)
        x = pca_lighting(random_crops_and_mirrors(images, g=g), eigval, eigvec, g=g)
        losses.append(sgd_step(model, velocity, x, labels, lr))
        if log_every and step % log_every == 0:
            print(f"step {step:4d}  loss {sum(losses[-log_every:]) / log_every:.4f}")
    if log_every:
        images, labels = draw_batch(eval_images, num_classes, g)
        with torch.no_grad():
            probs = ten_crop_probabilities(model.eval(), images)
        accuracy = (probs.argmax(1) == labels).float().mean()
        print(f"10-crop accuracy on {eval_images} new images: {accuracy:.0%}")
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--init", choices=("kaiming", "paper"), default="kaiming")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-images", type=int, default=32)
    args = parser.parse_args()
    n_params = sum(p.numel() for p in AlexNet(1000).parameters())
    print(f"AlexNet: {n_params:,} parameters at 1000 classes")
    train(
        args.steps, args.batch_size, args.classes, args.lr, args.init, args.seed,
        eval_images=args.eval_images,
    )  # fmt: skip


if __name__ == "__main__":
    main()
