"""ML3 for reinforcement learning (paper sections 3.2, 4.1.2, 4.1.3, 4.2.3, 4.2.4; Appendices A-C), as
tasks of the one meta-trainer (:mod:`fastadapt.meta.trainer`).

Each experiment module has a frozen ``Config``, ``quick(config)`` and ``run(config, directory, progress,
log) -> metrics`` (figures, ``metrics.json``, ``report.md``), like :mod:`fastadapt.ml3`. The CLI reads this
registry: ``fastadapt rl NAME [--quick] [key=value ...]``.
"""

from __future__ import annotations

from fastadapt.experiments.registry import load

EXPERIMENTS = {
    "mbrl-pointmass": "fastadapt.rl.mbrl_pointmass",
    "mbrl-reacher": "fastadapt.rl.mbrl_reacher",
    "mfrl-reacher": "fastadapt.rl.mfrl_reacher",
    "mfrl-ant": "fastadapt.rl.mfrl_ant",
    "mountaincar": "fastadapt.rl.mountaincar",
    "demos": "fastadapt.rl.demos",
}


def experiment(name: str):
    return load(EXPERIMENTS, "rl", name)
