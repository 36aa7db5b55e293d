"""AlexNet in one file: the learning edition.

Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional
Neural Networks", NIPS 2012. This file needs only PyTorch and reads top to
bottom: the local response normalisation of §3.3, the network of Figure 2
(60,965,224 parameters for 1000 classes, like ``alexnet.create_model("alexnet")``),
the initialisation of §5, and a training loop with the paper's optimiser on
images it draws itself, so it runs anywhere in a minute:

    python -m alexnet_template --steps 40

The full library (data pipeline, PCA lighting, 10-crop testing, checkpoints,
the CLI) lives in the ``alexnet`` package; this file shows only the idea.
"""

from __future__ import annotations

import argparse
import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def local_response_norm(
    a: Tensor, n: int = 5, k: float = 2.0, alpha: float = 1e-4, beta: float = 0.75
) -> Tensor:
    """§3.3: b[c] = a[c] / (k + alpha * sum of a[c']**2 over n channels around c) ** beta.

    a: (B, C, H, W). The channel window is a 3-D average pool over a (B, 1, C, H, W)
    view; multiplying by n turns the average into the sum the paper writes
    (PyTorch's own nn.LocalResponseNorm keeps the average, i.e. divides alpha by n).
    """
    squares = F.pad((a * a).unsqueeze(1), (0, 0, 0, 0, n // 2, (n - 1) // 2))
    window_sum = F.avg_pool3d(squares, (n, 1, 1), stride=1).squeeze(1) * n
    return a / (k + alpha * window_sum) ** beta


class LRN(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return local_response_norm(x)


class AlexNet(nn.Module):
    """Figure 2. Each comment gives the output shape for a (B, 3, 227, 227) input.

    The paper split the network over two GPUs ("towers"). conv2, conv4 and conv5
    only see the maps of their own GPU: that is ``groups=2``. conv3 and the
    fully-connected layers see both halves.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, kernel_size=11, stride=4),  # (B, 96, 55, 55)
            nn.ReLU(inplace=True),
            LRN(),
            nn.MaxPool2d(kernel_size=3, stride=2),  # (B, 96, 27, 27): overlapping pool, §3.4
            nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=2),  # (B, 256, 27, 27)
            nn.ReLU(inplace=True),
            LRN(),
            nn.MaxPool2d(kernel_size=3, stride=2),  # (B, 256, 13, 13)
            nn.Conv2d(256, 384, kernel_size=3, padding=1),  # (B, 384, 13, 13)
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=2),  # (B, 384, 13, 13)
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=2),  # (B, 256, 13, 13)
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # (B, 256, 6, 6)
        )
        self.classifier = nn.Sequential(
            nn.Linear(256 * 6 * 6, 4096),  # fc6
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),  # §4.2: dropout on the outputs of fc6 and fc7
            nn.Linear(4096, 4096),  # fc7
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, num_classes),  # fc8
        )
        self.init_as_paper()

    @torch.no_grad()
    def init_as_paper(self) -> None:
        """§5: weights ~ N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6, fc7, else 0."""
        layers = [m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        for i, m in enumerate(layers):  # i: 0..7 = conv1..conv5, fc6..fc8
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.constant_(m.bias, 1.0 if i in (1, 3, 4, 5, 6) else 0.0)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        return self.classifier(torch.flatten(x, 1))


def draw_batch(
    batch_size: int, num_classes: int, generator: torch.Generator, size: int = 227
) -> tuple[Tensor, Tensor]:
    """Images of oriented stripes: class c has stripes at angle c * 180 / num_classes
    degrees, with a random phase, frequency, colour and noise, so only the
    orientation tells the classes apart (something conv1's filters pick up)."""
    labels = torch.randint(num_classes, (batch_size,), generator=generator)
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    angle = labels.float() * math.pi / num_classes  # (B,)
    freq = 0.15 + 0.1 * torch.rand(batch_size, generator=generator)
    phase = 2 * math.pi * torch.rand(batch_size, generator=generator)
    proj = xs[None] * torch.cos(angle)[:, None, None] + ys[None] * torch.sin(angle)[:, None, None]
    stripes = torch.sin(proj * freq[:, None, None] + phase[:, None, None])  # (B, S, S)
    colour = torch.rand(batch_size, 3, 1, 1, generator=generator) * 2 - 1
    images = stripes[:, None] * colour + 0.3 * torch.randn(
        batch_size, 3, size, size, generator=generator
    )
    return images, labels


def train(
    steps: int = 40,
    batch_size: int = 16,
    num_classes: int = 4,
    lr: float = 0.003,
    seed: int = 0,
    log_every: int = 5,
) -> list[float]:
    """The paper's SGD (§5: momentum 0.9, weight decay 5e-4; lr 0.003 here) on drawn stripes.

    Returns the loss of every step. Kaiming initialisation replaces §5's N(0, 0.01)
    here: with the paper's init a network this deep needs thousands of steps to
    leave the loss plateau, more than a demo should take.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = AlexNet(num_classes)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    losses = []
    model.train()
    for step in range(1, steps + 1):
        images, labels = draw_batch(batch_size, num_classes, gen)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if log_every and step % log_every == 0:
            print(f"step {step:4d}  loss {sum(losses[-log_every:]) / log_every:.4f}")
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n_params = sum(p.numel() for p in AlexNet(1000).parameters())
    print(f"AlexNet: {n_params:,} parameters at 1000 classes")
    train(args.steps, args.batch_size, args.classes, args.lr, args.seed)


if __name__ == "__main__":
    main()
