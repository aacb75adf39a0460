"""What every figure shares: matplotlib without a display, PNGs written atomically, the papers' colours,
and a mean-and-range band."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fastadapt.files import atomic_write  # noqa: E402

ML3_COLOR, TASK_LOSS_COLOR = "tab:blue", "tab:orange"  # the ML3 paper's colours: ML3 blue, task loss orange


def save_figure(fig, path: Path) -> Path:
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png"))
    plt.close(fig)
    return path


def band(ax, x, values, color, label):
    """The mean over the first axis (seeds), shaded from its smallest to its largest value (a mean +- std
    band would reach below zero on log axes whenever one seed is far off)."""
    ax.plot(x, values.mean(0), color=color, label=label)
    ax.fill_between(x, values.min(0), values.max(0), color=color, alpha=0.2)


__all__ = ["ML3_COLOR", "TASK_LOSS_COLOR", "band", "plt", "save_figure"]
