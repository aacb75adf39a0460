"""Beyond the memory paper: the online learning-rate memory, alone or with a learned loss, on the
simulated pick-and-place stream (the core pipeline's held-out data, from random models, 5 seeds).

Uses the run directory of ``fastadapt demo`` (made, or resumed, under runs/bench-memory) for the data,
the normalizer and the meta-trained losses. Each loss is stepped by SGD at its rate or by MetaGD (one
memory per layer, M = 200, memory rate 0.005, clip 1.0, all local rates starting at that rate).
Prints the mean online MSE over the whole stream and over the first 0.5 s of every phase.

Usage: python benchmarks/memory_with_losses.py [--out runs/bench-memory] [key=value ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from fastadapt.adapt.online import Method, initial_models, online_scores
from fastadapt.cli import main as cli
from fastadapt.data.batches import sequential_stream
from fastadapt.data.io import load
from fastadapt.losses import make_loss
from fastadapt.tasks.inverse_dynamics import load_loss
from fastadapt.optim import MemoryConfig, adam_with_memory, metagd


def first_window_mask(stream, batches: int) -> np.ndarray:
    mask = np.zeros(len(stream.segment), bool)
    for phase in np.unique(stream.segment):
        start = int(np.argmax(stream.segment == phase))
        mask[start:start + batches] = True
    return mask


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/bench-memory")
    args, overrides = parser.parse_known_args(argv)
    out = Path(args.out)
    if cli(["demo", "--out", str(out), "--no-progress", *overrides]):
        return 1
    trials = sorted(out.glob("data/pick_place_trial*.npz"))
    _, _, _, normalizer = load_loss(out / "losses" / "structured" / "loss.npz")
    losses = {"mse": (make_loss("mse", normalizer.num_joints), {})}
    for name in ("structured", "state-dependent"):
        config, loss, params, _ = load_loss(out / "losses" / name / "loss.npz")
        losses[name] = (loss, params)
    model = config.model(normalizer.num_joints)
    streams = [sequential_stream(load(p), normalizer, 5) for p in trials]
    dt = load(trials[0])[0].dt
    window = int(round(0.5 / dt / 5))
    mask = first_window_mask(streams[0], window)
    starts = initial_models(model, 5, 0)
    alpha = config.alpha
    memory = MemoryConfig(eta_init=alpha, num_models=200, memory_rate=0.005, clip=1.0)
    methods = {}
    for name, (loss, params) in losses.items():
        methods[f"{name} + sgd {alpha:g}"] = Method(name, loss, params, "sgd", alpha)
        methods[f"{name} + MetaGD"] = Method(name, loss, params, metagd(memory))
    mse, _ = losses["mse"]
    methods["mse + adam 0.01"] = Method("mse", mse, {}, "adam", 0.01)
    methods["mse + adam with memory (0.01)"] = Method("mse", mse, {}, adam_with_memory(memory, eta_init=0.01))
    print(f"pick-and-place, {len(streams)} trials x 5 seeds, batches of 5 at {1 / dt:.0f} Hz\n")
    print("| method | mean online MSE | first 0.5 s of each phase |\n|---|---|---|")
    for name, method in methods.items():
        scores = online_scores(model, method, starts, streams)
        print(f"| {name} | {np.mean(scores):.4g} | {np.mean(scores[..., mask]):.4g} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
