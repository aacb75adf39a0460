"""Figures of the learning-rate memory experiments (Fig. 2-5 of the paper)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastadapt.report.plotting import plt, save_figure


def rosenbrock_figure(path: Path, runs: dict, rates2, path1, memories1, snapshots, memory, f) -> Path:
    """Fig. 2: paths on the function, convergence, rates of run 2, zoomed valley, memory snapshots."""
    from fastadapt.optim import predict_rates

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    xs, ys = np.meshgrid(np.linspace(-2, 2, 300), np.linspace(-1, 3, 300))
    values = np.asarray(f({"x": xs, "y": ys}))
    path1 = np.asarray(path1)
    for ax, zoom in ((axes[0, 0], False), (axes[1, 0], True)):
        ax.contour(xs, ys, np.log10(values + 1e-3), levels=30, cmap="viridis", linewidths=0.6)
        for i, (name, (_, trace)) in enumerate(runs.items()):
            trace = np.asarray(trace)
            ax.plot(trace[:, 0], trace[:, 1], color=f"C{i}", lw=1.2, label=name)
        ax.scatter(path1[snapshots, 0], path1[snapshots, 1], color="blue", zorder=5, s=25, label="memory snapshots")
        ax.plot([1], [1], "k*", ms=10)
        if zoom:
            lo, hi = path1[snapshots].min(0), path1[snapshots].max(0)
            pad = np.maximum(0.15 * (hi - lo), 0.1)
            ax.set_xlim(lo[0] - pad[0], max(hi[0], 1) + pad[0])
            ax.set_ylim(lo[1] - pad[1], max(hi[1], 1) + pad[1])
            ax.set_title("zoom on the valley (MetaGD run 1 snapshots)")
        else:
            ax.set_title("Rosenbrock function and paths")
            ax.legend(fontsize=7)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    ax = axes[0, 1]
    for i, (name, (loss, _)) in enumerate(runs.items()):
        ax.semilogy(np.asarray(loss), color=f"C{i}", label=name)
    ax.set(xlabel="step", ylabel="f(x, y)", title="convergence")
    ax.legend(fontsize=8)
    ax = axes[0, 2]
    rates2 = np.asarray(rates2)
    ax.semilogy(rates2[:, 0], label="dimension x")
    ax.semilogy(rates2[:, 1], label="dimension y")
    ax.set(xlabel="step", ylabel="applied learning rate", title="rates predicted in MetaGD run 2")
    ax.legend(fontsize=8)
    z = np.linspace(-memory.clip, memory.clip, 400)
    memories1 = np.asarray(memories1)
    for ax, dim, label in ((axes[1, 1], 1, "y"), (axes[1, 2], 0, "x")):
        for i, step in enumerate(snapshots):
            eta = np.asarray(predict_rates(memories1[step, dim], z, memory))
            ax.plot(z, eta, color=f"C{i + 3}", label=f"step {step}")
        ax.axhline(memory.eta_init, color="k", lw=0.6, ls=":")
        ax.set(xlabel=f"partial derivative z (dimension {label})", ylabel="predicted learning rate",
               title=f"memory of dimension {label} during run 1")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def online_figure(path: Path, curves: dict, tasks: list[str], config) -> Path:
    """Fig. 5: online MSE of the reported joint along each task, per method (GD, MetaGD, Adam), reload or not."""
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.8), sharey=True)
    styles = {"noreload": "--", "reload": "-"}
    for ax, task in zip(np.atleast_1d(axes), tasks):
        for (t, method, reload), curve in curves.items():
            if t != task or (task == tasks[0] and reload == "reload"):
                continue
            time_ms = np.arange(len(curve)) * config.batch_size * config.dt * 1000
            color = {"GD": "tab:green", "MetaGD": "tab:blue", "Adam": "tab:orange"}.get(method, "tab:gray")
            ax.semilogy(time_ms, curve, styles[reload], color=color, label=f"{method} {reload}")
        ax.set(title=f"lifting: {task}", xlabel="time (ms)")
        ax.axvline(config.window_ms, color="k", lw=0.5, ls=":")
        ax.legend(fontsize=8)
    np.atleast_1d(axes)[0].set_ylabel("MSE before each update (Nm^2)")
    fig.tight_layout()
    return save_figure(fig, path)


def batch_figure(path: Path, curves: dict, config) -> Path:
    """Fig. 4: MSE of the reported joint against full-batch steps, task 1 then task 2."""
    tasks = list(dict.fromkeys(task for task, _ in curves))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 3.8), sharey=True)
    for ax, task in zip(np.atleast_1d(axes), tasks):
        for i, ((t, name), curve) in enumerate(curves.items()):
            if t == task:
                ax.semilogy(curve, color=f"C{i}", label=name)
        ax.set(title=task, xlabel="full-batch step")
        ax.legend(fontsize=8)
    np.atleast_1d(axes)[0].set_ylabel("MSE (Nm^2)")
    fig.tight_layout()
    return save_figure(fig, path)


def digits_figure(path: Path, curves: dict, tasks: list[str], sweep: dict, lstm_count, config) -> Path:
    """Fig. 3: convergence on the task sequence (left) and iterations to the threshold vs rate (right)."""
    fig, axes = plt.subplots(1, len(tasks) + 1, figsize=(4.6 * (len(tasks) + 1), 4))
    method_of = lambda name: name.replace(" carried memory", "").replace(" new memory", "")
    methods_seen = list(dict.fromkeys(method_of(name) for _, name in curves))
    colors = {name: f"C{methods_seen.index(method_of(name)) % 10}" for _, name in curves}
    for ax, task in zip(axes, tasks):
        for (t, name), curve in curves.items():
            if t == task:
                ax.semilogy(curve, color=colors[name], ls="--" if "carried" in name else "-", label=name, lw=1.2)
        ax.axhline(config.threshold, color="k", lw=0.5, ls=":")
        ax.set(title=f"task {task}", xlabel="iteration")
    axes[0].set_ylabel("cross-entropy loss")
    axes[min(1, len(tasks) - 1)].legend(fontsize=6, title="dashed: memory carried from the previous task", title_fontsize=6)
    ax = axes[-1]
    methods = list(dict.fromkeys(m for m, _ in sweep))
    width = 0.8 / (len(methods) + (lstm_count is not None))
    for i, method in enumerate(methods):
        ax.bar(np.arange(len(config.etas)) + i * width, [sweep[(method, e)] for e in config.etas], width, label=method)
    if lstm_count is not None:
        ax.bar(np.arange(len(config.etas)) + len(methods) * width, [lstm_count] * len(config.etas), width, label="L2L LSTM")
    ax.set_xticks(np.arange(len(config.etas)) + 0.4 - width / 2, [f"{e:g}" for e in config.etas])
    ax.set(xlabel="initial learning rate", ylabel=f"iterations to loss < {config.threshold:g}", title=f"task {tasks[0]}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)
