"""The `alexnet` CLI with a fault installed as a training callback (the loop's hook for tests):

python tests/faults/fault_runner.py nan:K -- train ...           every weight NaN before step K
python tests/faults/fault_runner.py signal:SIG:K -- train ...    the process sends itself SIG
                                                                  after optimizer step K
python tests/faults/fault_runner.py epoch-end:SIG:E -- train ... SIG once epoch E is saved
python tests/faults/fault_runner.py validation:SIG -- train ...  SIG during the process's
                                                                  first validation
python tests/faults/fault_runner.py kill:K -- train ...          SIGKILL after step K
"""

from __future__ import annotations

import os
import signal
import sys

import torch

import alexnet.engine.train
from alexnet.cli import main
from alexnet.engine.callbacks import Callback


class Fault(Callback):
    def __init__(self, spec: str) -> None:
        kind, *rest = spec.split(":")
        self.kind = kind
        self.sig = signal.SIGKILL if kind == "kill" else int(rest[0]) if kind != "nan" else 0
        self.at = int(rest[-1]) if kind != "validation" else 0

    def on_step_start(self, trainer) -> None:
        if self.kind == "nan" and trainer.step + 1 == self.at:
            with torch.no_grad():
                for p in trainer.model_without_ddp.parameters():
                    p.fill_(float("nan"))

    def on_step_end(self, trainer, loss, lr: float) -> None:
        if self.kind in ("signal", "kill") and trainer.step == self.at:
            os.kill(os.getpid(), self.sig)

    def on_epoch_end(self, trainer, record: dict) -> None:
        if self.kind == "epoch-end" and record["epoch"] == self.at:
            os.kill(os.getpid(), self.sig)


def _signal_during_validation(fault: Fault):
    """The loop's evaluate, sending the signal as the process's first validation starts."""
    evaluate = alexnet.engine.train.evaluate
    calls = {"n": 0}

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            os.kill(os.getpid(), fault.sig)
        return evaluate(*args, **kwargs)

    return wrapped


if __name__ == "__main__":
    spec, sep, *argv = sys.argv[1:]
    assert sep == "--", "usage: fault_runner.py SPEC -- ARGS"
    fault = Fault(spec)
    if fault.kind == "validation":
        alexnet.engine.train.evaluate = _signal_during_validation(fault)
    alexnet.engine.train.INSTALLED_CALLBACKS.append(fault)
    sys.exit(main(argv))
