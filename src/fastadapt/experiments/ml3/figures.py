"""Matplotlib figures of the ML3 experiments (PNG, written atomically into the run directory)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastadapt.report.plotting import ML3_COLOR, TASK_LOSS_COLOR, band, plt, save_figure


def meta_train_and_test(path: Path, history: dict, batches_per_epoch: int, curves: dict, *, ylabel: str,
                        train_title: str, test_title: str, task_label: str, log_scale: bool = True) -> Path:
    """ML3 Fig. 2 c and d. c: the score on the meta-train task after ``eval_steps`` SGD steps with the
    current ML3 loss (mean range over seeds) against outer iterations, next to SGD on the task loss;
    d: the score on the meta-test tasks against gradient steps, ML3 (mean over tasks, range over seeds)
    and the task loss."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    iterations = np.asarray(history["eval_epoch"]) * batches_per_epoch
    evals = np.asarray([e["meta-train"]["mean"] for e in history["eval"]]).T  # [seeds, evaluations]
    band(left, iterations, evals, ML3_COLOR, "ML3 loss")
    left.axhline(history["baseline"]["meta-train"]["mean"], color=TASK_LOSS_COLOR, ls="--", label=f"{task_label} (task loss)")
    left.set_xlabel("meta-train (outer) iteration")
    left.set_ylabel(ylabel)
    left.set_title(train_title)
    steps = np.arange(curves["task loss"].shape[-1])
    band(right, steps, curves["ML3"].mean(1), ML3_COLOR, "ML3 loss")
    right.plot(steps, curves["task loss"].mean(0), color=TASK_LOSS_COLOR, label=task_label)
    right.set_xlabel("gradient step")
    right.set_ylabel(f"{ylabel.split(' after')[0]}, mean over meta-test tasks")
    right.set_title(test_title)
    for ax in (left, right):
        if log_scale:
            ax.set_yscale("log")
        ax.legend()
    return save_figure(fig, path)


SHAPED_COLOR = "tab:green"  # the paper's colour for the shaped ML3 loss
LOSS_COLORS = {"shaped ML3": SHAPED_COLOR, "unshaped ML3": ML3_COLOR, "MSE": TASK_LOSS_COLOR}


def shaped_sine_figures(directory: Path, config, omegas, nu: float, landscapes: dict, curves: dict) -> list[Path]:
    """Fig. 5 a: each loss over omega for one frequency nu (min-max scaled; red line: nu); b: MSE of the
    fit along gradient steps from starts that trap MSE (mean over problems, range over seeds)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, values in landscapes.items():
        scaled = (values - values.min()) / max(np.ptp(values), 1e-12)
        left.plot(omegas, scaled, color=LOSS_COLORS[name], label=name)
    left.axvline(nu, color="red", lw=1)
    left.set_xlabel("omega")
    left.set_ylabel("loss (scaled to [0, 1])")
    left.set_title(f"loss landscapes, nu = {nu:.2f}")
    left.legend()
    steps = np.arange(curves["MSE"].shape[-1])
    for name in ("shaped ML3", "unshaped ML3"):
        band(right, steps, curves[name].mean(1), LOSS_COLORS[name], name)
    right.plot(steps, curves["MSE"].mean(0), color=TASK_LOSS_COLOR, label="MSE")
    right.set_xlabel("gradient step")
    right.set_ylabel("MSE of the fit, mean over problems")
    right.set_title(f"{config.test_tasks} starts that trap MSE")
    right.set_yscale("log")
    right.legend()
    return [save_figure(fig, directory / "fig5ab_shaped_sine.png")]


def transfer_figure(path: Path, config, trained_on: str, curves: dict) -> Path:
    """One panel per optimizee architecture: meta-test MSE against gradient steps, ML3 (mean over
    functions, range over seeds) and MSE."""
    fig, axes = plt.subplots(1, len(curves), figsize=(3.6 * len(curves), 3.4), squeeze=False, sharey=True)
    for ax, (name, c) in zip(axes[0], curves.items()):
        steps = np.arange(c["task loss"].shape[-1])
        band(ax, steps, c["ML3"].mean(1), ML3_COLOR, "ML3 loss")
        ax.plot(steps, c["task loss"].mean(0), color=TASK_LOSS_COLOR, label="MSE")
        ax.set_title(name + (" (meta-train)" if name == trained_on else ""))
        ax.set_xlabel("gradient step")
        ax.set_yscale("log")
    axes[0][0].set_ylabel("MSE, mean over meta-test functions")
    axes[0][0].legend()
    return save_figure(fig, path)


def physics_prior_figure(path: Path, config, curves: dict, titles: dict) -> Path:
    """Fig. 5 c, d: held-out torque MSE against gradient steps on new trajectories, one panel per arm:
    shaped ML3, unshaped ML3 (mean over runs, range over seeds) and MSE."""
    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 3.8), squeeze=False)
    for ax, (arm, c) in zip(axes[0], curves.items()):
        steps = np.arange(c["MSE"].shape[-1])
        for name in ("shaped ML3", "unshaped ML3"):
            band(ax, steps, c[name].mean(1), LOSS_COLORS[name], name)
        ax.plot(steps, c["MSE"].mean(0), color=TASK_LOSS_COLOR, label="MSE")
        ax.set_title(titles[arm])
        ax.set_xlabel("gradient step")
        ax.set_ylabel("torque MSE (held out, normalised)")
        ax.set_yscale("log")
        ax.legend()
    return save_figure(fig, path)
