"""The `alexnet` CLI with a fault installed as a training callback (the loop's hook for tests):

python tests/faults/fault_runner.py nan:K -- train ...        every weight NaN before step K
python tests/faults/fault_runner.py signal:SIG:K -- train ... the process sends itself SIG
                                                               after step K
"""

from __future__ import annotations

import os
import sys

import torch

from alexnet.callbacks import Callback
from alexnet.cli import main
from alexnet.train import INSTALLED_CALLBACKS


class Fault(Callback):
    def __init__(self, spec: str) -> None:
        kind, *rest = spec.split(":")
        self.kind = kind
        self.sig = int(rest[0]) if kind == "signal" else 0
        self.step = int(rest[-1])

    def on_step_start(self, trainer) -> None:
        if self.kind == "nan" and trainer.step + 1 == self.step:
            with torch.no_grad():
                for p in trainer.model_without_ddp.parameters():
                    p.fill_(float("nan"))

    def on_step_end(self, trainer, loss: float, lr: float) -> None:
        if self.kind == "signal" and trainer.step == self.step:
            os.kill(os.getpid(), self.sig)


if __name__ == "__main__":
    spec, sep, *argv = sys.argv[1:]
    assert sep == "--", "usage: fault_runner.py SPEC -- ARGS"
    INSTALLED_CALLBACKS.append(Fault(spec))
    sys.exit(main(argv))
