"""Figures of the learning-rate memory experiments (Fig. 2-5 of the paper)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastadapt.report.figures import plt, save_figure


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
