"""Run under torchrun by test_distributed.py: train a few steps, dump this rank's weights."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from alexnet.config import TrainConfig
from alexnet.distributed import init_distributed, shutdown
from alexnet.train import Trainer

data, out, model = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
cfg = TrainConfig(
    data=data,
    out=str(out),
    model=model,
    epochs=1,
    batch_size=2,
    lr=0.001,
    workers=0,
    quiet=True,
    device="cpu",
    amp="off",
    channels_last="off",
    seed=3,
    model_kwargs={"init": "kaiming"} if model != "alexnet_owt" else {},
    max_steps=3,
)
dist = init_distributed("cpu")
if dist.is_main:
    from alexnet.rundir import prepare_run_dir

    prepare_run_dir(out, resume=False, overwrite=True)
torch.distributed.barrier()
trainer = Trainer(cfg, None, dist)
trainer.run()
torch.save(dict(trainer.model_without_ddp.named_parameters()), out / f"rank{dist.rank}.pt")
shutdown()
