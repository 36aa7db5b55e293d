"""alexnet.engine.schedule.LRSchedule: plateau (§5), step, cosine, warm-up, resumable state."""

from __future__ import annotations

import pytest

from alexnet.engine.schedule import LRSchedule


def test_plateau_divides_by_ten_at_most_three_times():
    s = LRSchedule(0.01, "plateau", patience=1, max_decays=3)
    errors = [0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]
    decays = [s.end_epoch(e) for e in errors]
    assert sum(decays) == 3
    assert s.lr_at(0) == pytest.approx(0.01 * 1e-3)


def test_patience_counts_the_flat_epochs_tolerated():
    """--patience 2 (the paper preset's): two epochs without a lower val error pass, the
    third divides (§5: "when the validation error rate stopped improving")."""
    s = LRSchedule(0.01, "plateau", patience=2)
    assert [s.end_epoch(e) for e in (0.8, 0.8, 0.8, 0.8)] == [False, False, False, True]


@pytest.mark.parametrize("patience", [0, 1, 2, 3])
def test_plateau_matches_torch_reduce_lr_on_plateau(patience):
    """The same learning rate, epoch by epoch, as torch.optim.lr_scheduler.ReduceLROnPlateau
    (mode min, factor 0.1, absolute threshold 0, no cooldown) on a sequence of errors with
    improvements, ties and rises, up to the paper's three divisions."""
    import torch

    errors = [0.9, 0.7, 0.7, 0.72, 0.7, 0.6, 0.65, 0.6, 0.6, 0.55, 0.56, 0.57, 0.58, 0.59, 0.6]
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.01)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=0.1, patience=patience, threshold=0.0, threshold_mode="abs"
    )
    s = LRSchedule(0.01, "plateau", patience=patience, max_decays=3)
    for e in errors:
        ref.step(e)
        s.end_epoch(e)
        if s.decays < 3:
            assert s.lr_at(0) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12), e


def test_improvement_resets_patience():
    s = LRSchedule(0.1, "plateau", patience=1)
    assert not s.end_epoch(0.5)
    assert not s.end_epoch(0.5)  # 1 bad epoch <= patience
    assert not s.end_epoch(0.4)  # improvement
    assert not s.end_epoch(0.45)
    assert s.end_epoch(0.45)
    assert s.lr_at(10) == pytest.approx(0.01)


def test_warmup_step_and_cosine():
    w = LRSchedule(1.0, "constant", warmup_steps=4)
    assert [w.lr_at(i) for i in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    st = LRSchedule(1.0, "step", steps_per_epoch=10, step_epochs=2, lr_factor=0.1)
    assert st.lr_at(19) == 1.0 and st.lr_at(20) == pytest.approx(0.1)
    c = LRSchedule(1.0, "cosine", total_steps=100)
    assert c.lr_at(0) == 1.0 and c.lr_at(50) == pytest.approx(0.5) and c.lr_at(100) == 0.0


def test_state_round_trip():
    s = LRSchedule(0.01, "plateau", patience=0)
    s.end_epoch(0.5)
    s.end_epoch(0.6)
    t = LRSchedule(0.01, "plateau", patience=0)
    t.load_state_dict(s.state_dict())
    assert t.lr_at(0) == s.lr_at(0) and t.decays == 1
