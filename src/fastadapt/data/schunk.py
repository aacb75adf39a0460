"""The real Schunk 6-DoF arm logs (Liu & Althoff, IROS 2018): 40 trajectories at 250 Hz.

The file is not bundled; by default it is looked up at ``../shared/data/schunk_dev.npz`` relative to the
working directory, or at the path in the environment variable ``FASTADAPT_SCHUNK``.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastadapt.data.io import load_npz
from fastadapt.data.trajectory import DEFAULT_LIMITS, Dataset, Limits

DEFAULT_LOCATIONS = ("../shared/data/schunk_dev.npz", "shared/data/schunk_dev.npz")


def schunk_path(path=None) -> Path:
    if path:
        return Path(path)
    if os.environ.get("FASTADAPT_SCHUNK"):
        return Path(os.environ["FASTADAPT_SCHUNK"])
    for candidate in DEFAULT_LOCATIONS:
        if Path(candidate).exists():
            return Path(candidate)
    raise FileNotFoundError(
        "schunk_dev.npz not found: pass its path or set FASTADAPT_SCHUNK (looked in "
        + ", ".join(DEFAULT_LOCATIONS) + ")"
    )


def load_schunk(path=None, limits: Limits = DEFAULT_LIMITS) -> Dataset:
    """Load the Schunk logs; accelerations come from the smoothed finite difference of qd."""
    return load_npz(schunk_path(path), robot="schunk", limits=limits)


def split_halves(dataset: Dataset) -> tuple[Dataset, Dataset]:
    """Alternate trajectories: even indices for meta-training, odd ones held out. The logs come in
    groups of repeated motions, so alternating keeps every kind of motion on both sides."""
    return dataset.take(range(0, len(dataset), 2)), dataset.take(range(1, len(dataset), 2))
