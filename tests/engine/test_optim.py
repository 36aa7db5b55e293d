"""§5's update rule against a float64 reference written from the paper; parameter groups."""

from __future__ import annotations

import pytest
import torch

from alexnet.engine.config import TrainConfig
from alexnet.engine.optim import PaperSGD
from alexnet.engine.setup import build_optimizer, param_groups
from alexnet.engine.step import set_learning_rate
from alexnet.models import create_model


def _quadratic_grad(w: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 2 * (w - target)  # d/dw of |w - target|^2


def test_paper_sgd_is_section_5_in_float64():
    """v := 0.9 v - 0.0005 eps w - eps dL/dw; w := w + v, with eps dropping mid-run (the
    velocity holds eps, so the drop fades in)."""
    g = torch.Generator().manual_seed(0)
    target = torch.randn(50, dtype=torch.float64, generator=g)
    w = torch.randn(50, dtype=torch.float64, generator=g).requires_grad_()
    opt = PaperSGD([w], lr=0.1, momentum=0.9, weight_decay=0.0005)
    ref_w, ref_v = w.detach().clone(), torch.zeros(50, dtype=torch.float64)
    for step in range(30):
        eps = 0.1 if step < 15 else 0.01
        set_learning_rate(opt, eps)
        opt.zero_grad()
        ((w - target) ** 2).sum().backward()
        opt.step()
        ref_v = 0.9 * ref_v - 0.0005 * eps * ref_w - eps * _quadratic_grad(ref_w, target)
        ref_w = ref_w + ref_v
        torch.testing.assert_close(w.detach(), ref_w, rtol=0, atol=1e-14)
        torch.testing.assert_close(opt.state[w]["velocity"], ref_v, rtol=0, atol=1e-14)


def test_paper_and_torch_sgd_differ_only_after_a_learning_rate_change():
    """With a constant eps the two forms are one algorithm (v_paper = -eps v_torch); after
    eps drops, PyTorch's rescales the whole step at once and the paper's does not."""
    g = torch.Generator().manual_seed(1)
    target = torch.randn(20, dtype=torch.float64, generator=g)
    start = torch.randn(20, dtype=torch.float64, generator=g)
    a, b = start.clone().requires_grad_(), start.clone().requires_grad_()
    paper = PaperSGD([a], lr=0.1, weight_decay=0.0005)
    torch_sgd = torch.optim.SGD([b], lr=0.1, momentum=0.9, weight_decay=0.0005)
    for step in range(20):
        for opt, w in ((paper, a), (torch_sgd, b)):
            set_learning_rate(opt, 0.1 if step < 10 else 0.01)
            opt.zero_grad()
            ((w - target) ** 2).sum().backward()
            opt.step()
        if step < 10:
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        else:
            assert not torch.allclose(a, b, rtol=1e-6, atol=1e-9)


def test_caffe_groups_biases_twice_the_lr_and_no_decay():
    cfg = TrainConfig(bias_lr_mult=2.0, bias_decay_mult=0.0)
    model = create_model("alexnet", num_classes=5)
    groups = param_groups(cfg, model.named_parameters(), set())
    by_kind = {("bias" if g["weight_decay"] == 0 else "weight"): g for g in groups}
    assert by_kind["bias"]["lr_mult"] == 2.0 and by_kind["weight"]["lr_mult"] == 1.0
    assert by_kind["weight"]["weight_decay"] == 5e-4
    assert len(by_kind["bias"]["params"]) == 8 and len(by_kind["weight"]["params"]) == 8
    opt = build_optimizer(cfg, model)
    set_learning_rate(opt, 0.01)
    assert sorted(g["lr"] for g in opt.param_groups) == [0.01, 0.02]
    assert isinstance(opt, PaperSGD)


def test_default_is_one_group_and_the_forms_are_selected():
    model = create_model("alexnet", num_classes=5)
    assert len(param_groups(TrainConfig(), model.named_parameters(), set())) == 1
    assert isinstance(build_optimizer(TrainConfig(sgd_form="torch"), model), torch.optim.SGD)
    assert isinstance(build_optimizer(TrainConfig(optimizer="adamw"), model), torch.optim.AdamW)


def test_paper_sgd_rejects_bad_values():
    with pytest.raises(ValueError, match="momentum"):
        PaperSGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=1.5)


@pytest.mark.parametrize(
    "cfg",
    [TrainConfig(), TrainConfig(sgd_form="torch"), TrainConfig(optimizer="adamw")],
    ids=["paper-sgd", "torch-sgd", "adamw"],
)
def test_a_training_step_never_reads_a_value_off_the_device(cfg):
    """On the meta device every tensor is shapes without values, so reading one (.item(),
    bool(), .tolist(), float()) raises: the whole step, hits included, runs there, as it
    must to leave a GPU's queue full (the loop reads the losses every READ_EVERY steps)."""
    from alexnet.engine.step import train_step
    from alexnet.engine.validate import hit_counts

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5)).to("meta")
    opt = build_optimizer(cfg, model)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    x, y = torch.empty(4, 3, 2, 2, device="meta"), torch.zeros(4, dtype=torch.long, device="meta")
    for _ in range(2):  # the second step has momentum state
        loss, logits = train_step(model, opt, scaler, x, y, device=torch.device("meta"), amp="off")
        hits = hit_counts(logits.float(), y, ks=(1,))[0]
    assert loss.device.type == "meta" and hits.shape == () and hits.dtype == torch.int64
    with pytest.raises((RuntimeError, NotImplementedError)):
        loss.item()  # the device check: a read would have failed above
