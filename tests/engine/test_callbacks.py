"""The progress callbacks read a step's loss (a wait for the device) only when they show it."""

from __future__ import annotations

from types import SimpleNamespace

from alexnet.engine.callbacks import ProgressBar, StepLines


class _Loss:
    """A step's loss that records when it is read (as float(tensor) waits for a GPU)."""

    reads: list[float] = []

    def __init__(self, value: float) -> None:
        self.value = value

    def __float__(self) -> float:
        _Loss.reads.append(self.value)
        return self.value


def _trainer(steps: int) -> SimpleNamespace:
    return SimpleNamespace(
        dist=SimpleNamespace(is_main=True),
        data=SimpleNamespace(steps_per_epoch=steps),
        cfg=SimpleNamespace(epochs=1),
        epoch=0,
        batch_in_epoch=0,
        images_per_second=lambda: 100.0,
    )


def _epoch(callback, trainer) -> list[float]:
    _Loss.reads = []
    callback.on_epoch_start(trainer)
    for i in range(trainer.data.steps_per_epoch):
        trainer.batch_in_epoch = i + 1
        callback.on_step_end(trainer, _Loss(float(i)), 0.01)
    return _Loss.reads


def test_the_bar_reads_the_loss_when_it_redraws_and_at_the_last_step():
    bar = ProgressBar()
    reads = _epoch(bar, _trainer(500))  # 500 steps in far less than tqdm's 0.1 s
    bar.close()
    assert reads[-1] == 499.0 and len(reads) < 10


def test_step_lines_read_the_loss_of_the_lines_they_print(capsys):
    reads = _epoch(StepLines(every=50), _trainer(200))
    assert reads == [49.0, 99.0, 149.0, 199.0]
    assert "epoch 1 step 200/200 loss 199 " in capsys.readouterr().err
