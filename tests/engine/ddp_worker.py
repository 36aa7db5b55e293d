"""Run under torchrun by test_distributed.py, one job for the module's tests (a torchrun
start costs two imports of torch and a rendezvous): `alexnet evaluate CHECKPOINT` as the
command runs it (it joins the process group from torchrun's environment), then a few
training steps of each model, each rank dumping its weights.

    ddp_worker.py DATA OUT CHECKPOINT MODEL [MODEL ...]

writes OUT/evaluate.json (rank 0's output) and OUT/MODEL/rank{0,1}.pt beside each run."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
from pathlib import Path

import torch

import alexnet.engine.distributed as distributed
from alexnet.cli import main
from alexnet.engine.distributed import init_distributed
from alexnet.engine.train import Trainer

# the suite's tiny config (tests/conftest.py), loaded by path: this runs under torchrun
_spec = importlib.util.spec_from_file_location(
    "conftest", Path(__file__).parents[1] / "conftest.py"
)
_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conftest)

data, out, checkpoint, models = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4:]

# evaluate leaves the process group when it ends (as a command must); a group cannot be
# joined twice in one torchrun job, so the training below keeps this one
leave = distributed.shutdown
distributed.shutdown = lambda: None
stdout = io.StringIO()
with contextlib.redirect_stdout(stdout):
    argv = ["evaluate", checkpoint, "--data", data, "--json", "--workers", "0"]
    assert main([*argv, "--batch-size", "4"]) == 0
distributed.shutdown = leave
dist = init_distributed("cpu")  # the group evaluate joined
if dist.is_main:
    (out / "evaluate.json").write_text(stdout.getvalue())

for model in models:
    run = out / model
    cfg = _conftest.tiny_train_config(
        data, run, model=model, epochs=1, batch_size=2, seed=3, max_steps=3
    )
    if dist.is_main:
        from alexnet.engine.rundir import prepare_run_dir

        prepare_run_dir(run, resume=False, overwrite=True)
    torch.distributed.barrier()
    trainer = Trainer(cfg, None, dist)
    trainer.run()
    weights = dict(trainer.model_without_ddp.named_parameters())
    torch.save(weights, run / f"rank{dist.rank}.pt")
distributed.shutdown()
