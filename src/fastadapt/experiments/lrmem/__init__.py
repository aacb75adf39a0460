"""Experiments of "Online Learning of a Memory for Learning Rates", one module per figure/table.

Each module has a frozen ``Config`` (defaults: the paper's settings), ``quick(config)`` (a small
version for tests and a first look) and ``run(config, directory, progress, log) -> metrics``, which
writes figures, ``metrics.json`` and ``report.md`` into ``directory``. The CLI reads this registry:
``fastadapt lrmem NAME [key=value ...]``.
"""

from __future__ import annotations

from fastadapt.experiments.registry import load

EXPERIMENTS = {
    "rosenbrock": "fastadapt.experiments.lrmem.rosenbrock",
    "digits": "fastadapt.experiments.lrmem.digits",
    "id-batch": "fastadapt.experiments.lrmem.id_batch",
    "id-online": "fastadapt.experiments.lrmem.id_online",
}


def experiment(name: str):
    return load(EXPERIMENTS, "lrmem", name)
