"""How much §3.3's LRN does at initialisation, by input scale.

b = a / (k + alpha * S)^beta, S the sum of a^2 over the window. With the paper's k = 2
the LRN is a constant factor k^-beta unless alpha * S is comparable with k. Whether it
is depends on the scale of the activations, i.e. of the inputs: raw 0-255 pixels minus
the mean image (§2, ``normalize="pixel"``) or standardised ones (``"channel"``, what
torchvision's models take). This measures alpha * S after conv1's and conv2's ReLUs of
the freshly initialised network on real images, for both, and the factor the LRN then
applies relative to the constant k^-beta (1 = the LRN does nothing)::

    alexnet reproduce lrn-regime --data ../shared/data/cifar10-jpeg.tar.gz
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.nn import functional as F

from alexnet.data import build_dataset, eval_transform, materialize, resolve_stats
from alexnet.models import create_model
from alexnet.ops.nn import LocalResponseNorm, local_response_norm


def _window_sums(a: torch.Tensor, size: int, towers: int) -> torch.Tensor:
    """S[c] = sum of a[c']^2 over the ``size`` maps around c, inside each tower (float64)."""
    b, c, h, w = a.shape
    sq = (a.double() ** 2).view(b * towers, 1, c // towers, h, w)
    sq = F.pad(sq, (0, 0, 0, 0, (size - 1) // 2, size // 2))
    return (F.avg_pool3d(sq, (size, 1, 1), stride=1) * size).view(b, c, h, w)


def _describe(alpha_s: torch.Tensor, k: float, beta: float) -> dict:
    """Quantiles of alpha*S and the mean factor (k + alpha*S)^-beta / k^-beta."""
    flat = alpha_s.flatten()
    qs = torch.quantile(flat[torch.randperm(flat.numel())[:1_000_000]], torch.tensor(
        [0.5, 0.99], dtype=torch.float64))  # fmt: skip
    factor = ((k + flat) / k) ** -beta
    return {
        "mean": float(flat.mean()),
        "median": float(qs[0]),
        "p99": float(qs[1]),
        "share_above_k_over_10": float((flat > 0.1 * k).double().mean()),
        "mean_lrn_factor": float(factor.mean()),
        "min_lrn_factor": float(factor.min()),
    }


@torch.no_grad()
def lrn_regime(source: str, *, images: int = 256, init: str = "paper", seed: int = 0) -> dict:
    """alpha * S at conv1 and conv2 of ``create_model("alexnet", init=init)`` on ``images``
    evenly spaced training images of ``source``, under "pixel" and "channel" inputs."""
    source = materialize(source)
    stats = resolve_stats(source)
    raw = build_dataset(source, "train", None)
    picks = torch.linspace(0, len(raw) - 1, min(images, len(raw))).long().tolist()
    torch.manual_seed(seed)
    model = create_model("alexnet", num_classes=len(raw.classes), init=init).double().eval()
    f = model.features
    lrn = next(m for m in model.modules() if isinstance(m, LocalResponseNorm))
    k, alpha, beta, size = lrn.k, lrn.alpha, lrn.beta, lrn.size
    towers = lrn.groups
    out = {"source": source, "images": len(picks), "init": init, "k": k, "alpha": alpha}
    for normalize in ("pixel", "channel"):
        tf = eval_transform(227, stats, normalize=normalize)
        x = torch.stack([tf(raw[i][0]) for i in picks]).double()
        a1 = F.relu(f.conv1(x))
        s1 = alpha * _window_sums(a1, size, towers)
        p1 = F.max_pool2d(local_response_norm(a1, size, alpha, beta, k, groups=towers), 3, 2)
        a2 = F.relu(f.conv2(p1))
        s2 = alpha * _window_sums(a2, size, towers)
        out[normalize] = {
            "input_std": float(x.std()),
            "conv1": _describe(s1, k, beta),
            "conv2": _describe(s2, k, beta),
        }
    out["pixel_over_channel_conv1"] = out["pixel"]["conv1"]["mean"] / max(
        out["channel"]["conv1"]["mean"], 1e-300
    )
    return out


def format_regime(r: dict) -> str:
    lines = [
        f"LRN at initialisation (init {r['init']}, k {r['k']}, alpha {r['alpha']}), "
        f"{r['images']} images of {r['source']}:",
        f"{'inputs':<8} {'layer':<6} {'mean aS':>10} {'median aS':>10} {'p99 aS':>10} "
        f"{'aS > k/10':>10} {'mean factor':>12}",
    ]
    for normalize in ("pixel", "channel"):
        for layer in ("conv1", "conv2"):
            d = r[normalize][layer]
            lines.append(
                f"{normalize:<8} {layer:<6} {d['mean']:>10.3g} {d['median']:>10.3g} "
                f"{d['p99']:>10.3g} {d['share_above_k_over_10']:>10.1%} "
                f"{d['mean_lrn_factor']:>12.4f}"
            )
    lines.append(
        f"alpha*S at conv1 is {r['pixel_over_channel_conv1']:.0f}x larger with pixel inputs "
        "(factor 1 = the LRN is a constant)"
    )
    return "\n".join(lines)


def write_regime(r: dict, out: str | Path) -> Path:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(r, indent=2) + "\n")
    return path
