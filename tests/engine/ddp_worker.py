"""Run under torchrun by test_distributed.py: train a few steps, dump this rank's weights."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

from alexnet.engine.distributed import init_distributed, shutdown
from alexnet.engine.train import Trainer

# the suite's tiny config (tests/conftest.py), loaded by path: this runs under torchrun
_spec = importlib.util.spec_from_file_location(
    "conftest", Path(__file__).parents[1] / "conftest.py"
)
_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conftest)

data, out, model = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
cfg = _conftest.tiny_train_config(
    data, out, model=model, epochs=1, batch_size=2, seed=3, max_steps=3
)
dist = init_distributed("cpu")
if dist.is_main:
    from alexnet.engine.rundir import prepare_run_dir

    prepare_run_dir(out, resume=False, overwrite=True)
torch.distributed.barrier()
trainer = Trainer(cfg, None, dist)
trainer.run()
torch.save(dict(trainer.model_without_ddp.named_parameters()), out / f"rank{dist.rank}.pt")
shutdown()
