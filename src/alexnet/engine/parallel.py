"""The paper's model parallelism (§3.2): tower A on one device, tower B on another.

"The parallelization scheme ... puts half of the kernels (or neurons) on each
GPU, with one additional trick: the GPUs communicate only in certain layers."
``TwoTowerAlexNet`` cuts a trained or fresh :class:`alexnet.AlexNet` along the
split documented in ``alexnet.models.paper`` (tower A owns the first half of
every layer's outputs) into two stacks of ordinary layers, one per device:

    tower:  conv1 -> ReLU -> LRN -> pool -> conv2 -> ReLU -> LRN -> pool   (own maps only)
    swap:   conv3 sees both towers' pool2 maps                              exchange 1
    tower:  conv3 -> ReLU -> conv4 -> ReLU -> conv5 -> ReLU -> pool         (own maps only)
    swap:   fc6 sees both towers' pool5 (2 x 128 x 6 x 6)                   exchange 2
    swap:   fc7 sees both fc6 halves (2 x 2048)                             exchange 3
    swap:   fc8 sees both fc7 halves; tower A computes the first half of
            the classes, tower B the rest; logits end on device B           exchange 4

Cost, per image, in float32 (forward; backward sends the same back): the input
(3 x 227 x 227 = 618 KB) to device B, then 128 x 13 x 13 (86.5 KB) each way at
conv3, 128 x 6 x 6 (18.4 KB) at fc6, 2048 values (8 KB) at fc7 and fc8, and
tower A's logits: about 0.85 MB per image, 110 MB for a batch of 128, over
PCIe/NVLink every step. Worth it only when the model does not fit one device
(the paper's 3 GB GTX 580s) or, with a fast link, to halve per-device memory;
on one modern GPU a single device or data parallelism (DDP) is faster. On the
CPU ("cpu,cpu") it is a correctness tool: outputs and gradients equal the
single-device model's.

Weights stay in the one checkpoint format: ``merged_state_dict()`` (or
``unwrap_model_parallel(model)``, which also takes an unwrapped model) returns
the plain AlexNet state dict and ``load_merged_state_dict()`` takes one.

    wrapped = wrap_model_parallel(model, "cuda:0,cuda:1")   # "cpu,cpu" to check it
    logits = wrapped(images)                   # on DEV_B (``output_device``)
    torch.save(unwrap_model_parallel(wrapped), path)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from alexnet.errors import UserError
from alexnet.models import AlexNet
from alexnet.ops.nn import Dropout, LocalResponseNorm

__all__ = ["TwoTowerAlexNet", "unwrap_model_parallel", "wrap_model_parallel"]

_TOWER_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")


def _half(n: int, tower: int) -> slice:
    return slice(0, n // 2) if tower == 0 else slice(n // 2, n)


def _lrn(src: LocalResponseNorm) -> LocalResponseNorm:
    """The same LRN for one tower's half of the maps (a window across the whole layer
    would need the other tower's maps: refused in TwoTowerAlexNet)."""
    return LocalResponseNorm(
        src.size, src.alpha, src.beta, src.k, src.alpha_over_size, inplace=src.inplace
    )


def _copy_layer(src: nn.Module, rows: slice) -> nn.Module:
    """A Conv2d/Linear holding the outputs ``rows`` of ``src``, in src's dtype (a
    float32 layer would round float64 weights)."""
    w = src.weight.detach()[rows]
    kw = {"dtype": w.dtype, "device": w.device}
    if isinstance(src, nn.Conv2d):
        layer = nn.Conv2d(
            w.shape[1],
            w.shape[0],
            src.kernel_size,
            src.stride,
            src.padding,
            bias=src.bias is not None,
            **kw,
        )
    else:
        layer = nn.Linear(w.shape[1], w.shape[0], bias=src.bias is not None, **kw)
    with torch.no_grad():
        layer.weight.copy_(w)
        if src.bias is not None:
            layer.bias.copy_(src.bias.detach()[rows])
    return layer


class _Tower(nn.Module):
    """One device's half of every layer."""

    def __init__(self, model: AlexNet, t: int) -> None:
        super().__init__()
        f, c = model.features, model.classifier
        self.lrn = model.config.norm == "lrn"
        layers = {}
        for name in _TOWER_LAYERS:
            src = getattr(f, name, None) or getattr(c, name)
            # A grouped layer's weight already holds only its group's inputs
            # (256 x 48 x 5 x 5 for conv2), so every layer is cut by output rows.
            layers[name] = _copy_layer(src, _half(src.weight.shape[0], t))
        self.conv1, self.conv2, self.conv3 = layers["conv1"], layers["conv2"], layers["conv3"]
        self.conv4, self.conv5 = layers["conv4"], layers["conv5"]
        self.fc6, self.fc7, self.fc8 = layers["fc6"], layers["fc7"], layers["fc8"]
        self.lrn1 = _lrn(f.tail1.lrn) if self.lrn else nn.Identity()
        self.lrn2 = _lrn(f.tail2.lrn) if self.lrn else nn.Identity()
        self.pool = nn.MaxPool2d(3, 2)
        self.relu = nn.ReLU()
        self.drop = Dropout(model.config.dropout, model.config.dropout_form)

    def stem(self, x: Tensor) -> Tensor:  # (B, 3, S, S) -> (B, 128, 13, 13)
        x = self.pool(self.lrn1(self.relu(self.conv1(x))))
        return self.pool(self.lrn2(self.relu(self.conv2(x))))

    def trunk(self, both: Tensor) -> Tensor:  # (B, 256, 13, 13) -> (B, 128 * 6 * 6)
        x = self.relu(self.conv3(both))
        x = self.relu(self.conv5(self.relu(self.conv4(x))))
        return torch.flatten(self.pool(x), 1)


class TwoTowerAlexNet(nn.Module):
    """The paper's AlexNet with tower A on ``device_a`` and tower B on ``device_b``."""

    def __init__(
        self, model: AlexNet, device_a: torch.device | str, device_b: torch.device | str
    ) -> None:
        super().__init__()
        if not isinstance(model, AlexNet):
            raise UserError("--model-parallel needs the paper's two-tower network (alexnet)")
        if model.config.norm == "bn":
            raise UserError(
                "--model-parallel supports alexnet (LRN); alexnet_bn's BatchNorm "
                "is not split by tower here: use data parallelism (torchrun)"
            )
        if model.config.norm == "lrn" and model.config.lrn_window != "tower":
            raise UserError(
                "--model-parallel needs the LRN window inside each tower (lrn_window "
                "'tower', the paper's); a window across the layer spans both devices"
            )
        if model.config.pool_before_lrn:
            raise UserError("--model-parallel runs the paper's order, LRN before pooling")
        self.config = model.config
        self.input_device = torch.device(device_a)
        self.output_device = torch.device(device_b)
        self.tower_a = _Tower(model, 0).to(self.input_device)
        self.tower_b = _Tower(model, 1).to(self.output_device)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Both towers' flattened pool5 maps, each on its own device."""
        a_dev, b_dev = self.input_device, self.output_device
        size = self.config.input_size
        if x.dim() != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (size, size):
            raise ValueError(f"expected (B, 3, {size}, {size}) images, got {tuple(x.shape)}")
        a = self.tower_a.stem(x.to(a_dev))
        b = self.tower_b.stem(x.to(b_dev))
        both_a = torch.cat([a, b.to(a_dev)], 1)  # exchange 1: conv3 sees both towers
        both_b = torch.cat([a.to(b_dev), b], 1)
        return self.tower_a.trunk(both_a), self.tower_b.trunk(both_b)

    def forward_head(self, feats: tuple[Tensor, Tensor], pre_logits: bool = False) -> Tensor:
        a, b = feats
        a_dev, b_dev = self.input_device, self.output_device
        ta, tb = self.tower_a, self.tower_b
        for fc in ("fc6", "fc7"):  # exchanges 2 and 3
            xa = torch.cat([a, b.to(a_dev)], 1)
            xb = torch.cat([a.to(b_dev), b], 1)
            a = ta.drop(ta.relu(getattr(ta, fc)(xa)))
            b = tb.drop(tb.relu(getattr(tb, fc)(xb)))
        if pre_logits:
            return torch.cat([a.to(b_dev), b], 1)
        xa = torch.cat([a, b.to(a_dev)], 1)  # exchange 4
        xb = torch.cat([a.to(b_dev), b], 1)
        return torch.cat([ta.fc8(xa).to(b_dev), tb.fc8(xb)], 1)

    @torch.no_grad()
    def merged_state_dict(self) -> dict[str, Tensor]:
        """The plain AlexNet state dict (CPU tensors), for checkpoints."""
        out = {}
        for name in _TOWER_LAYERS:
            prefix = "classifier" if name.startswith("fc") else "features"
            la, lb = getattr(self.tower_a, name), getattr(self.tower_b, name)
            out[f"{prefix}.{name}.weight"] = torch.cat([la.weight.cpu(), lb.weight.cpu()], 0)
            if la.bias is not None:
                out[f"{prefix}.{name}.bias"] = torch.cat([la.bias.cpu(), lb.bias.cpu()], 0)
        return out

    @torch.no_grad()
    def load_merged_state_dict(self, sd: dict[str, Tensor]) -> None:
        """Load a plain AlexNet state dict into the two towers."""
        ref = AlexNet(self.config).to(self.tower_a.conv1.weight.dtype)
        ref.load_state_dict(sd, strict=True)
        for t, tower in ((0, self.tower_a), (1, self.tower_b)):
            fresh = _Tower(ref, t)
            for name in _TOWER_LAYERS:
                dst, src = getattr(tower, name), getattr(fresh, name)
                dst.weight.copy_(src.weight)
                if dst.bias is not None:
                    dst.bias.copy_(src.bias)


def wrap_model_parallel(model: nn.Module, spec: str) -> TwoTowerAlexNet:
    """``spec`` "DEV_A,DEV_B" (e.g. "cuda:0,cuda:1" or "cpu,cpu") -> the two-device model."""
    from alexnet.runtime import resolve_device

    parts = [p.strip() for p in spec.split(",")]
    if len(parts) != 2 or not all(parts):
        raise UserError(f"--model-parallel takes two devices, DEV_A,DEV_B; got {spec!r}")
    dev_a, dev_b = (resolve_device(p) for p in parts)
    return TwoTowerAlexNet(model, dev_a, dev_b)


def unwrap_model_parallel(model: nn.Module) -> dict[str, Tensor]:
    """The plain AlexNet state dict of ``model`` (CPU tensors for a ``TwoTowerAlexNet``,
    the model's own state dict otherwise): what checkpoints store."""
    if isinstance(model, TwoTowerAlexNet):
        return model.merged_state_dict()
    return model.state_dict()
