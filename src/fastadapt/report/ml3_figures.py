"""Matplotlib figures of the ML3 experiments (PNG, written atomically into the run directory)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastadapt.report.figures import plt, save_figure

ML3_COLOR, TASK_LOSS_COLOR = "tab:blue", "tab:orange"  # the paper's colours: ML3 blue, task loss orange


def _band(ax, x, values, color, label):
    """Mean +- std over the first axis."""
    mean, std = values.mean(0), values.std(0)
    ax.plot(x, mean, color=color, label=label)
    ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2)


def sine_figures(directory: Path, config, history: dict, batches_per_epoch: int, curves: dict) -> list[Path]:
    """Fig. 2 c: MSE on the meta-train function after ``eval_steps`` SGD steps with the current ML3 loss
    (mean +- std over seeds) against outer iterations, next to SGD on MSE; d: MSE on the meta-test
    functions against gradient steps, ML3 (mean over functions, +- std over seeds) and MSE."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    iterations = np.asarray(history["eval_epoch"]) * batches_per_epoch
    evals = np.asarray([e["meta-train"]["mean"] for e in history["eval"]]).T  # [seeds, evaluations]
    _band(left, iterations, evals, ML3_COLOR, "ML3 loss")
    left.axhline(history["baseline"]["meta-train"]["mean"], color=TASK_LOSS_COLOR, ls="--", label="MSE (task loss)")
    left.set_xlabel("meta-train (outer) iteration")
    left.set_ylabel(f"MSE after {config.eval_steps} steps")
    left.set_title("meta-train task: sin(x - pi)")
    left.set_yscale("log")
    left.legend()
    steps = np.arange(curves["MSE"].shape[-1])
    _band(right, steps, curves["ML3"].mean(1), ML3_COLOR, "ML3 loss")
    right.plot(steps, curves["MSE"].mean(0), color=TASK_LOSS_COLOR, label="MSE")
    right.set_xlabel("gradient step")
    right.set_ylabel("MSE, mean over meta-test functions")
    right.set_title(f"{config.test_tasks} meta-test tasks: A sin(x - w)")
    right.set_yscale("log")
    right.legend()
    return [save_figure(fig, directory / "fig2_sine_regression.png")]
