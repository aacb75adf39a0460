"""Experiments of "Online Learning of a Memory for Learning Rates", one module per figure/table.

Each module has a frozen ``Config`` (defaults: the paper's settings), ``quick(config)`` (a small
version for tests and a first look) and ``run(config, directory, progress, log) -> metrics``, which
writes figures, ``metrics.json`` and ``report.md`` into ``directory``. The CLI reads this registry:
``fastadapt lrmem NAME [key=value ...]``.
"""

from __future__ import annotations

import importlib

EXPERIMENTS = {
    "rosenbrock": "fastadapt.experiments.lrmem.rosenbrock",
    "digits": "fastadapt.experiments.lrmem.digits",
    "id-batch": "fastadapt.experiments.lrmem.id_batch",
    "id-online": "fastadapt.experiments.lrmem.id_online",
}


def experiment(name: str):
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown lrmem experiment '{name}', expected one of {sorted(EXPERIMENTS)}")
    return importlib.import_module(EXPERIMENTS[name])
