"""Matplotlib figures of ML3's RL experiments (PNG, written atomically into the run directory)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastadapt.report.plotting import ML3_COLOR, TASK_LOSS_COLOR, band, plt, save_figure

SPLIT_COLORS = {"meta-train": "tab:blue", "meta-test": "tab:orange"}  # Fig. 3a: train blue, test orange


def trajectories(ax, trajectories: dict, title: str) -> None:
    """The reached position along each rollout, with its goal (a cross), per split."""
    for split, data in trajectories.items():
        color = SPLIT_COLORS.get(split, "tab:gray")
        for i, (path, goal) in enumerate(zip(data["positions"], data["goals"])):
            ax.plot(path[:, 0], path[:, 1], color=color, lw=1, label=f"{split} goals" if i == 0 else None)
            ax.plot(*goal, "x", color=color, ms=7)
    ax.plot(0, 0, "ko", ms=4)
    ax.set_aspect("equal")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title)
    ax.legend(fontsize=8)


def mbrl_figures(directory: Path, config, curves: dict, paths: dict) -> list[Path]:
    """Fig. 3: (a) rollouts of policies trained with the ML3 loss on meta-train (blue) and meta-test
    (orange) goals; (b/c) the final distance along meta-test training: ML3 (mean over goals, range over
    seeds) and the task loss optimised through P (mean over goals), on both splits."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    trajectories(left, paths, f"policies after {config.eval_steps} ML3 steps")
    for split, style in (("meta-test", "-"), ("meta-train", ":")):
        c = curves[split]
        steps = np.arange(c["task loss"].shape[-1])
        if style == "-":
            band(right, steps, c["ML3"].mean(1), ML3_COLOR, f"ML3 loss, {split} goals")
        else:
            right.plot(steps, c["ML3"].mean(1).mean(0), ls=style, color=ML3_COLOR, label=f"ML3 loss, {split} goals")
        right.plot(steps, c["task loss"].mean(0), ls=style, color=TASK_LOSS_COLOR, label=f"task loss through P, {split} goals")
    right.set_xlabel("policy update")
    right.set_ylabel("final distance to the goal (real system)")
    right.set_title("meta-test: learned loss vs task loss")
    right.legend(fontsize=8)
    path = directory / f"fig3_mbrl_{config.env}.png"
    return [save_figure(fig, path)]


MOUNTAIN_CAR_COLORS = {"shaped ML3": "tab:green", "unshaped ML3": ML3_COLOR, "task loss": TASK_LOSS_COLOR, "iLQR": "tab:red"}


def mountain_car_figures(directory: Path, config, curves: dict, ilqr_finals: list, positions: dict,
                         shown: int) -> list[Path]:
    """Fig. 6 a: the car's position along the rollout of policies trained with each loss (``shown``
    updates; ``positions``: name -> one path per seed, or one) and of iLQR's solution; b: the final
    distance to the goal along policy updates (ML3: mean over runs, range over seeds; the task loss at
    alpha and at its best rate: mean over runs) and along iLQR iterations."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, paths in positions.items():
        for i, path in enumerate(paths):
            left.plot(np.arange(len(path)) * config.action_repeat, path, color=MOUNTAIN_CAR_COLORS[name],
                      label=f"{name}{' (one line per seed)' if len(paths) > 1 else ''}" if i == 0 else None,
                      lw=1.5 if len(paths) == 1 else 1.0, alpha=1.0 if len(paths) == 1 else 0.7)
    left.axhline(config.goal_position, color="k", ls="--", lw=1, label="goal")
    left.axhline(config.intermediate_position, color="tab:green", ls=":", lw=1, label="intermediate goal (meta-train)")
    left.set_xlabel("car step")
    left.set_ylabel("position")
    left.set_title(f"trajectories after {shown} updates / {config.ilqr_iterations} iLQR iterations")
    left.legend(fontsize=8)
    for name in ("shaped ML3", "unshaped ML3"):
        band(right, np.arange(curves[name].shape[-1]), curves[name].mean(1), MOUNTAIN_CAR_COLORS[name], name)
    for name, task in curves.items():
        if name.startswith("task loss"):
            right.plot(np.arange(task.shape[-1]), task.mean(0), color=MOUNTAIN_CAR_COLORS["task loss"], label=name,
                       ls="-" if name == "task loss" else ":")
    right.plot(np.arange(len(ilqr_finals)), ilqr_finals, color=MOUNTAIN_CAR_COLORS["iLQR"], label="iLQR (per iteration)")
    right.set_xlabel("policy update (iLQR: iteration)")
    right.set_ylabel("final distance to the goal")
    right.set_title(f"meta-test, protocol={config.protocol}")
    right.legend(fontsize=8)
    return [save_figure(fig, directory / "fig6ab_mountain_car.png")]


MFRL_COLORS = {"ML3": ML3_COLOR, "policy gradient": TASK_LOSS_COLOR, "PPO": "tab:purple"}


def mfrl_figures(directory: Path, config, samples, performance: dict, architectures: dict) -> list[Path]:
    """Fig. 4 a/b: performance on meta-test goals against environment samples, ML3 (mean over goals,
    range over seeds), plain policy gradient and PPO (mean over goals); c/d: the same ML3 loss training
    policies of other architectures (mean over goals, shaded: +- std over goals)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    band(left, samples, performance["ML3"].mean(1), MFRL_COLORS["ML3"], "ML3 loss")
    for name in ("policy gradient", "PPO"):
        left.plot(samples, performance[name].mean(0), color=MFRL_COLORS[name], label=name)
    left.set_xlabel("environment samples")
    left.set_ylabel("performance (higher is better)")
    left.set_title(f"meta-test, {config.env}")
    left.legend(fontsize=8)
    updates = np.arange(len(samples))
    for hidden, values in architectures.items():
        label = f"{len(hidden)} layer{'s' if len(hidden) > 1 else ''} ({'x'.join(map(str, hidden))})"
        mean, std = values.mean(0), values.std(0)
        line, = right.plot(updates, mean, label=label)
        right.fill_between(updates, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    right.set_xlabel("policy update")
    right.set_ylabel("performance (higher is better)")
    right.set_title("one ML3 loss, other policy architectures")
    right.legend(fontsize=8)
    return [save_figure(fig, directory / f"fig4_mfrl_{config.env}.png")]


def demo_figures(directory: Path, config, curves: dict, paths: dict, expert_paths) -> list[Path]:
    """Fig. 6 c: the training targets (blue, with the experts' paths, dashed) and the meta-test targets
    (orange, with the paths of policies trained by the ML3 loss); d: the final distance on the meta-test
    targets along training, ML3 (mean over targets, range over seeds) against behavioural cloning."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, path in enumerate(expert_paths):
        left.plot(path[:, 0], path[:, 1], "--", color=SPLIT_COLORS["meta-train"], lw=1,
                  label="expert (iLQR), training targets" if i == 0 else None)
    trajectories(left, {"meta-test": paths["meta-test"]}, f"policies after {config.eval_steps} ML3 steps")
    for goal in config.train_targets:
        left.plot(*goal, "o", color=SPLIT_COLORS["meta-train"], ms=6)
    c = curves["meta-test"]
    steps = np.arange(c["task loss"].shape[-1])
    band(right, steps, c["ML3"].mean(1), ML3_COLOR, "ML3 loss (shaped by demonstrations)")
    right.plot(steps, c["task loss"].mean(0), color=TASK_LOSS_COLOR, label="behavioural cloning")
    right.set_xlabel("policy update")
    right.set_ylabel("final distance to a new target")
    right.set_title("meta-test targets")
    right.legend(fontsize=8)
    return [save_figure(fig, directory / "fig6cd_demonstrations.png")]


FRESH_COLORS = ("tab:green", ML3_COLOR, "tab:olive")


def fresh_start_figure(directory: Path, name: str, fixed: dict, fresh: dict, ylabel: str,
                       marks=(1, 2, 5, 20)) -> list[Path]:
    """Why a claim of the paper protocol fails on ours: the same learned losses and baseline trained from
    the one initial policy they were meta-trained from (left) and from fresh random policies (right).
    ``fixed`` and ``fresh``: curves by method, learned losses [seeds, runs, steps + 1] (mean over runs,
    range over seeds), baselines [runs, steps + 1] (mean); dots after ``marks`` updates."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, curves, title in ((axes[0], fixed, "from the fixed initial policy (meta-trained from it)"),
                              (axes[1], fresh, "from fresh random policies")):
        learned = [n for n, c in curves.items() if c.ndim == 3]
        for color, method in zip(FRESH_COLORS, learned):
            values = curves[method].mean(1)
            steps = np.arange(values.shape[-1])
            band(ax, steps, values, color, method)
            shown = [m for m in marks if m < len(steps)]
            ax.plot(shown, values.mean(0)[shown], "o", color=color, ms=4)
        for method in (n for n in curves if n not in learned):
            ax.plot(np.arange(curves[method].shape[-1]), curves[method].mean(0), color=TASK_LOSS_COLOR, label=method)
        ax.set_xlabel("policy update")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    axes[0].set_ylabel(ylabel)
    return [save_figure(fig, directory / f"fresh_starts_{name}.png")]
