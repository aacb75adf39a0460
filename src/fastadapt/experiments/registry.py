"""The experiment registries of the three papers (``fastadapt.experiments.lrmem``, ``fastadapt.ml3``,
``fastadapt.rl``): each maps names to modules with ``Config``, ``quick`` and ``run``."""

from __future__ import annotations

import importlib


def load(experiments: dict[str, str], family: str, name: str):
    """The module registered as ``name`` in ``experiments`` (a ValueError naming the known ones if none)."""
    if name not in experiments:
        raise ValueError(f"unknown {family} experiment '{name}', expected one of {sorted(experiments)}")
    return importlib.import_module(experiments[name])
