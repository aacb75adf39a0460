"""Matplotlib figures of a pipeline run (PNG, written atomically into the run directory)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastadapt.data.batches import normalised_samples
from fastadapt.losses import make_loss
from fastadapt.report.plotting import plt, save_figure

COLORS = {"mse": "tab:gray", "mlp": "tab:orange", "structured": "tab:green", "state-dependent": "tab:red"}
BASELINE_COLORS = ["tab:gray", "tab:blue", "tab:purple", "tab:brown", "tab:pink", "black"]


def _color(name: str, index: int):
    for key, color in COLORS.items():
        if name == key or name.endswith(key):
            return color
    return f"C{index % 10}"


def meta_training(directory: Path, results: dict) -> Path:
    """Fig. 3 a/b: MSE that fresh models reach with the current loss, against meta-training epochs. With
    one meta-training seed: its mean +- std over the evaluation's fresh models; with several (the paper's
    5): the mean over seeds of each seed's mean, +- its std over seeds."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, split in zip(axes, ("meta-train", "meta-test")):
        for i, (name, result) in enumerate(results.items()):
            h = result.history
            per_seed = np.array([e[split]["mean"] for e in h["eval"]])  # [evaluations, seeds]
            if per_seed.shape[1] > 1:
                mean, std = per_seed.mean(1), per_seed.std(1)
            else:
                mean, std = per_seed[:, 0], np.array([e[split]["std"][0] for e in h["eval"]])
            ax.plot(h["eval_epoch"], mean, color=_color(name, i), label=name, marker="o", ms=3)
            ax.fill_between(h["eval_epoch"], mean - std, mean + std, color=_color(name, i), alpha=0.2)
            base = h["baseline"][split]
        ax.axhline(base["mean"], color=COLORS["mse"], ls="--", label="mse")
        ax.set_title(f"{split} data")
        ax.set_xlabel("meta-training epoch")
        ax.set_yscale("log")
    seeds = len(next(iter(results.values())).history["eval"][0]["meta-train"]["mean"]) if results else 1
    axes[0].set_ylabel("MSE after training a fresh model")
    if seeds > 1:
        fig.suptitle(f"mean +- std over {seeds} meta-training seeds")
    axes[1].legend()
    return save_figure(fig, directory / "fig3ab_meta_training.png")


def learning_curves(directory: Path, curves: dict) -> Path:
    """Fig. 3 c/d: training curves of fresh models with the final losses, mean +- std over seeds."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, (split, by_loss) in zip(axes, curves.items()):
        for i, (name, values) in enumerate(by_loss.items()):
            mean, std = values.mean(0), values.std(0)
            steps = np.arange(len(mean))
            ax.plot(steps, mean, color=_color(name, i), label=name)
            ax.fill_between(steps, mean - std, mean + std, color=_color(name, i), alpha=0.2)
        ax.set_title(f"training on {split} data")
        ax.set_xlabel("gradient step")
        ax.set_yscale("log")
    axes[0].set_ylabel("MSE (normalised torque)")
    axes[1].legend()
    return save_figure(fig, directory / "fig3cd_learning_curves.png")


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    if width <= 1 or len(values) < width:
        return values
    kernel = np.ones(width)
    return np.convolve(values, kernel, mode="same") / np.convolve(np.ones_like(values), kernel, mode="same")


def sine_stream(directory: Path, scores: dict, dt: float, batch_size: int) -> Path:
    """Fig. 5: online MSE (before each update) on the meta-test trajectories against time, mean over
    trajectories x seeds (smoothed over 10 batches), the min..max over seeds of that mean shaded."""
    fig, ax = plt.subplots(figsize=(10, 4))
    baselines = iter(BASELINE_COLORS * 2)
    for i, (name, values) in enumerate(scores.items()):
        per_seed = values.mean(0)  # [seeds, batches]
        seconds = np.arange(per_seed.shape[-1]) * batch_size * dt
        style = ":" if "upper bound" in name else "--" if name.startswith("mse") else "-"
        color = next(baselines) if name.startswith("mse") else _color(name.split(" (")[0], i)
        ax.plot(seconds, _smooth(per_seed.mean(0), 10), style, color=color, label=name, lw=1.3)
        ax.fill_between(seconds, _smooth(per_seed.min(0), 10), _smooth(per_seed.max(0), 10), color=color, alpha=0.12)
    ax.set_yscale("log")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("online MSE (before each step)")
    ax.set_title("Fig. 5: online learning on the meta-test trajectories, one step per batch")
    ax.legend(fontsize=7, ncol=2)
    return save_figure(fig, directory / "fig5_online_sine.png")


def online(directory: Path, protocols: dict, stream, dt: float, batch_size: int) -> Path:
    """Fig. 6 / Table I: online MSE (before each update) on the pick-and-place stream against time, mean
    over trials x seeds, per protocol."""
    fig, axes = plt.subplots(len(protocols), 1, figsize=(12, 3.6 * len(protocols)), sharex=True)
    axes = np.atleast_1d(axes)
    seconds = np.arange(len(stream.segment)) * batch_size * dt
    for ax, (protocol, methods) in zip(axes, protocols.items()):
        for i, (name, scores) in enumerate(methods.items()):
            mean = scores.reshape(-1, scores.shape[-1]).mean(0)
            style = "--" if "not adapted" in name else ":" if "rls" in name else "-"
            ax.plot(seconds, _smooth(mean, 10), style, color=f"C{i % 10}", label=name, lw=1.2)
        bounds = np.flatnonzero(np.diff(stream.segment)) + 1
        for b in bounds:
            ax.axvline(seconds[b], color="k", lw=0.5, alpha=0.4)
        starts = np.concatenate([[0], bounds])
        if len(starts) <= 8:
            for s, index in zip(starts, stream.segment[starts]):
                ax.text(seconds[s], 1.0, f" {stream.segment_names[index]}", transform=ax.get_xaxis_transform(),
                        va="top", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("online MSE")
        ax.set_title(f"online adaptation, {protocol}")
        ax.legend(fontsize=7, ncol=2, loc="lower left")
    axes[-1].set_xlabel("time (s)")
    return save_figure(fig, directory / "fig6_online_pick_place.png")


def payload_change_points(stream, stream_set) -> list[tuple[int, str]]:
    """(first batch, label) of each phase whose payload differs from the phase before it."""
    points = []
    bounds = np.flatnonzero(np.diff(stream.segment)) + 1
    for b in bounds:
        before, after = stream_set[int(stream.segment[b - 1])], stream_set[int(stream.segment[b])]
        if before.payload != after.payload:
            verb = "attached" if after.payload > before.payload else "detached"
            points.append((int(b), f"{abs(after.payload - before.payload):.3g} kg {verb} ({after.phase})"))
    return points


def compared_methods(methods: dict, prefixes, best_learned: str | None) -> dict:
    """The best learned loss and the tuned baselines (names starting with ``prefixes``) of one protocol."""
    chosen = {best_learned: methods[best_learned]} if best_learned in methods else {}
    for prefix in prefixes:
        chosen.update({name: scores for name, scores in methods.items() if name.startswith(prefix)})
    return chosen


def payload_changes(directory: Path, protocols: dict, best_learned: dict, stream, stream_set, dt: float,
                    batch_size: int, before: float = 1.0, after: float = 2.0) -> Path | None:
    """Online MSE against time around each payload change (from ``before`` s ahead to ``after`` s past
    it): the best learned loss against SGD and Adam on MSE with rates tuned on the stream and the RLS
    anchors (random features from scratch, the residual of the pretrained model), per protocol;
    mean over trials x seeds with the min..max over them shaded. None if the stream has no change."""
    points = payload_change_points(stream, stream_set)
    if not points:
        return None
    prefixes = {"from scratch": ("mse, sgd best", "mse, adam best", "rls,"),
                "pretrained": ("pretrained + sgd best", "pretrained + adam best", "pretrained + residual")}
    seconds_per_batch = batch_size * dt
    lo, hi = int(round(before / seconds_per_batch)), int(round(after / seconds_per_batch))
    fig, axes = plt.subplots(len(protocols), len(points), figsize=(5.5 * len(points), 3.4 * len(protocols)),
                             squeeze=False, sharey="row", constrained_layout=True)
    for row, (protocol, methods) in zip(axes, protocols.items()):
        chosen = compared_methods(methods, prefixes.get(protocol, ()), best_learned.get(protocol, {}).get("method"))
        for ax, (batch, label) in zip(row, points):
            start, stop = max(batch - lo, 0), min(batch + hi, len(stream.segment))
            seconds = (np.arange(start, stop) - batch) * seconds_per_batch
            for i, (name, scores) in enumerate(chosen.items()):
                runs = scores.reshape(-1, scores.shape[-1])[:, start:stop]
                ax.plot(seconds, _smooth(runs.mean(0), 5), color=f"C{i}", label=name, lw=1.3)
                ax.fill_between(seconds, runs.min(0), runs.max(0), color=f"C{i}", alpha=0.15)
            ax.axvline(0.0, color="k", lw=0.6)
            ax.set_yscale("log")
            ax.set_title(f"{protocol}: {label}", fontsize=9)
        row[0].set_ylabel("online MSE")
        row[0].legend(fontsize=7, loc="upper left")
    for ax in axes[-1]:
        ax.set_xlabel("time from the change (s)")
    return save_figure(fig, directory / "fig_payload_changes.png")


def structured_weights(directory: Path, loss_params, joints: int) -> Path:
    """Fig. 7: the structured loss's weight phi_j per joint."""
    weights = np.asarray(make_loss("structured", joints).weights(loss_params))
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(np.arange(1, joints + 1), weights, color=COLORS["structured"])
    ax.axhline(1.0, color="k", lw=0.6, ls=":", label="initial weight")
    ax.set_xlabel("joint")
    ax.set_ylabel("phi_j")
    ax.set_title("structured loss weights")
    ax.legend()
    return save_figure(fig, directory / "fig7_structured_weights.png")


def state_dependent_weights(directory: Path, loss_params, normalizer, stream_sets, phase: str) -> Path:
    """Fig. 8: phi_j(q, qd) of the state-dependent loss against q_j along one motion, per trial."""
    joints = normalizer.num_joints
    loss = make_loss("state-dependent", joints)
    cols = min(joints, 4)
    rows = int(np.ceil(joints / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for t, dataset in enumerate(stream_sets):
        chosen = [traj for traj in dataset if traj.phase == phase] or [dataset[0]]
        for traj in chosen:
            samples = normalised_samples(type(dataset)((traj,)), normalizer)
            weights = np.asarray(loss.weights(loss_params, samples.state))
            for j in range(joints):
                axes[j // cols, j % cols].scatter(traj.q[:, j], weights[:, j], s=2, color=f"C{t}",
                                                  label=f"trial {t}" if j == 0 else None)
    for j in range(rows * cols):
        ax = axes[j // cols, j % cols]
        if j >= joints:
            ax.axis("off")
            continue
        ax.set_xlabel(f"q{j + 1} (rad)")
        ax.set_ylabel(f"phi_{j + 1}")
    axes[0, 0].legend(fontsize=7, markerscale=4)
    fig.suptitle(f"state-dependent loss weights along '{phase}'")
    return save_figure(fig, directory / "fig8_state_dependent_weights.png")


def pipeline_figures(directory, config, results, curves, protocols, stream, normalizer, stream_sets,
                     best_learned=None, sine_scores=None, sine_summary=None) -> list[Path]:
    directory = Path(directory)
    dt = stream_sets[0][0].dt
    files = [meta_training(directory, results), learning_curves(directory, curves)]
    if sine_scores:
        files.append(sine_stream(directory, sine_scores, sine_summary["dt"], config.online.batch_size))
    files.append(online(directory, protocols, stream, dt, config.online.batch_size))
    around_changes = payload_changes(directory, protocols, best_learned or {}, stream, stream_sets[0], dt,
                                     config.online.batch_size)
    if around_changes is not None:
        files.append(around_changes)
    if "structured" in results:
        files.append(structured_weights(directory, results["structured"].loss_params, normalizer.num_joints))
    if "state-dependent" in results:
        phase = "reach" if config.data != "schunk" else stream_sets[0][0].phase
        files.append(state_dependent_weights(directory, results["state-dependent"].loss_params, normalizer,
                                             stream_sets, phase))
    return files
