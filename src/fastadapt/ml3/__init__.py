"""Experiments of "Meta Learning via Learned Loss" (ML3), one module per figure, all on the one
meta-trainer (:mod:`fastadapt.meta.trainer`): each module defines a task and a config.

Each module has a frozen ``Config`` (defaults: the paper's settings), ``quick(config)`` (a small version
for tests and a first look) and ``run(config, directory, progress, log) -> metrics``, which writes
figures, ``metrics.json`` and ``report.md`` into ``directory``. The CLI reads this registry:
``fastadapt ml3 NAME [key=value ...]``.
"""

from __future__ import annotations

from fastadapt.experiments.registry import load

EXPERIMENTS = {
    "sine": "fastadapt.ml3.sine",
    "digits": "fastadapt.ml3.digits",
    "shaped-sine": "fastadapt.ml3.shaped_sine",
    "physics-prior": "fastadapt.ml3.physics_prior",
    "transfer": "fastadapt.ml3.transfer",
}


def experiment(name: str):
    return load(EXPERIMENTS, "ml3", name)
