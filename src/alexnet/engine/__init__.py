"""The engine: what trains a model (layer 5 of 9, docs/architecture.md).

``train`` (the one loop), ``setup`` (model, data, optimiser and state a run starts from),
``step`` (one SGD step, AMP), ``callbacks``, ``schedule`` (lr rules, §5), ``optim``
(SGD as §5 writes it), ``sampler`` (resumable shuffling), ``validate`` (error rates
over a loader), ``checkpoint`` (the one checkpoint format), ``rundir`` (a run's
folder), ``config`` (every setting), ``distributed`` (DDP) and ``parallel`` (the
paper's two-device split, §3.2). Imports ``data``, ``models``, ``ops`` and the base
modules only.
"""
