"""The optimizers a run can use: SGD as §5 writes it, PyTorch's SGD, AdamW.

§5: "The update rule for weight w was

    v_{i+1} := 0.9 v_i - 0.0005 eps w_i - eps <dL/dw | w_i>_{D_i}
    w_{i+1} := w_i + v_{i+1}"

The velocity v holds the learning rate eps: when eps is divided by 10 the step
shrinks over the next few dozen iterations as the old velocity decays, where
PyTorch's SGD (v := mu v + g + lambda w; w := w - eps v) rescales the whole step at
once. With a constant eps the two are the same algorithm (v_paper = -eps v_torch).
Caffe's SGD solver is the paper's form too.

Parameter groups may carry ``lr_mult`` (a multiple of the run's learning rate, e.g.
Caffe's 2x for biases); the training loop sets ``group["lr"]`` from it every step.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

__all__ = ["PaperSGD"]


class PaperSGD(torch.optim.Optimizer):
    """§5's update: ``v = momentum * v - weight_decay * lr * w - lr * grad; w = w + v``.

    State per parameter: ``velocity`` (the v above, in the parameter's units).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
    ) -> None:
        if lr <= 0 or not 0 <= momentum < 1 or weight_decay < 0:
            raise ValueError(
                f"PaperSGD needs lr > 0, 0 <= momentum < 1, weight_decay >= 0; got "
                f"{lr}, {momentum}, {weight_decay}"
            )
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            vel = []
            for p in params:
                state = self.state[p]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                vel.append(state["velocity"])
            grads = [p.grad for p in params]
            torch._foreach_mul_(vel, mu)
            if wd:
                torch._foreach_add_(vel, params, alpha=-wd * lr)
            torch._foreach_add_(vel, grads, alpha=-lr)
            torch._foreach_add_(params, vel)
        return loss
