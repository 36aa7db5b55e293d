"""Device, precision and memory-format choices: the one AMP path of the project.

Training, evaluation, prediction and the benchmarks all go through
``resolve_device``, ``autocast`` and ``prepare_model``, so a flag such as
``--amp bf16`` means the same thing everywhere. Defaults (``"auto"``) follow
measurements (``alexnet bench``; docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from alexnet.errors import UserError

AMP_CHOICES = ("off", "bf16", "fp16")


def resolve_device(name: str = "auto") -> torch.device:
    """ "auto" -> CUDA when present, else CPU; anything else must be a usable torch device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise UserError(f"--device {name!r} is not a device: {e}", exit_code=2) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine", exit_code=2)
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(
            f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)", exit_code=2
        )
    return dev


def cpu_supports_bf16() -> bool:
    """True where the CPU has native bf16 arithmetic (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available()) and bool(
            torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):
        return False


def default_amp(device: torch.device, training: bool = True) -> str:
    """The precision used when the user asks for "auto": bf16 autocast wherever the
    device computes in bf16 natively, for training and inference alike; without native
    bf16 (``cpu_supports_bf16``) it is emulated and slower: fp32 there. The figures behind
    it: ``alexnet bench --amp off,bf16`` (docs/benchmarks.md).
    """
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_supports_bf16():
        return "bf16"
    return "off"


def default_channels_last(device: torch.device, training: bool = True) -> bool:
    """Memory format used when the user asks for "auto": channels_last on CUDA and on the
    CPU, where oneDNN's convolutions and PyTorch's max-pool are vectorised over channels
    and no layout reorders run between layers (``alexnet bench --formats
    nchw,channels_last``)."""
    return device.type in ("cuda", "cpu")


def resolve_amp(amp: str, device: torch.device, training: bool = True) -> str:
    if amp == "auto":
        return default_amp(device, training)
    if amp not in AMP_CHOICES:
        raise UserError(
            f"--amp must be one of auto, {', '.join(AMP_CHOICES)}; got {amp!r}", exit_code=2
        )
    if amp == "fp16" and device.type == "cpu":
        raise UserError("--amp fp16 needs a CUDA device; use --amp bf16 on the CPU", exit_code=2)
    return amp


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """The autocast context for ``amp`` in {"off", "bf16", "fp16"}."""
    if amp == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def prepare_model(
    model: nn.Module, device: torch.device, channels_last: bool, *, inference_amp: str = "off"
) -> nn.Module:
    """Move ``model`` to ``device`` in the chosen memory format (in place; returns it).

    ``inference_amp="bf16"`` (or "fp16") also stores the floating-point weights in
    that precision, for inference under :func:`autocast`: autocast then has
    nothing left to cast per batch (with float32 weights it casts them again in
    every autocast context, i.e. every batch of evaluate/predict; ``alexnet bench
    --modes infer`` measures inference this way). Not for training: the optimizer
    needs the float32 weights.

    On CUDA it also turns on ``torch.backends.cudnn.benchmark`` (unless deterministic
    algorithms were asked for): the shapes repeat batch after batch, so cuDNN times its
    convolution algorithms once per shape and keeps the fastest; the first batch of each
    shape pays for the search.
    """
    if device.type == "cuda" and not torch.are_deterministic_algorithms_enabled():
        torch.backends.cudnn.benchmark = True
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if inference_amp in ("bf16", "fp16"):
        model.to(torch.bfloat16 if inference_amp == "bf16" else torch.float16)
    return model


def to_device(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """Copy a batch of images to ``device`` (non-blocking from pinned memory)."""
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images


def prefetched(
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images, target) batches on a CUDA ``device``, each copied one batch ahead on a
    stream of its own: the copy engine moves batch i + 1 (50 MB of uint8 at batch 256)
    while the step's kernels of batch i run, where a copy queued on the step's stream
    would wait for them and they for it. Batches should come from pinned memory (the
    training loader pins on CUDA). Any other device: the batches as they come."""
    if device.type != "cuda":
        yield from batches
        return
    copies = torch.cuda.Stream(device)
    ahead: tuple[torch.Tensor, torch.Tensor] | None = None
    for images, target in batches:
        with torch.cuda.stream(copies):
            nxt = images.to(device, non_blocking=True), target.to(device, non_blocking=True)
        if ahead is not None:
            yield ahead  # the consumer queues batch i's step on the current stream
        current = torch.cuda.current_stream(device)
        current.wait_stream(copies)  # batch i + 1's step starts after its copy
        for t in nxt:  # allocated on `copies`, used on `current`: not reused before then
            t.record_stream(current)
        ahead = nxt
    if ahead is not None:
        yield ahead
