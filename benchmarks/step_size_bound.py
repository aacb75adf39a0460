"""How much can step sizes alone win? SGD on MSE with one rate per layer, every combination of a grid
tuned on the evaluation stream itself, against the best single rate, on a pipeline run's stream.

A learned loss with a learned step size can reweight joints (structured, state-dependent) and scale
the step; it cannot give layers different rates. If even per-layer rates chosen on the stream itself
cannot reach 0.7x the tuned single-rate SGD, the issue-10 goal needs more than step sizes. Each layer's
rate is best_rate x m, m from ``--multipliers``, for the models of ``fastadapt run`` (same seeds, same
normalised stream).

Usage: python benchmarks/step_size_bound.py --run runs/DIR [--multipliers 0.3,1,3]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import optax

from fastadapt.adapt.online import Method, initial_models, online_scores, overall
from fastadapt.data.batches import sequential_stream
from fastadapt.data.io import load
from fastadapt.losses import make_loss
from fastadapt.tasks.inverse_dynamics import load_loss


def per_layer_sgd(rates) -> optax.GradientTransformation:
    """SGD whose step on layer l is rates[l] * gradient (the model is a list of {"w", "b"} layers)."""

    def update(grads, state, params=None):
        return [{k: -rate * g for k, g in layer.items()} for layer, rate in zip(grads, rates)], state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def main(argv) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", required=True, help="a finished 'fastadapt run sim' directory")
    parser.add_argument("--multipliers", default="0.3,1,3")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    run = Path(args.run)
    config, _, _, normalizer = load_loss(run / "losses" / "structured" / "loss.npz")
    model = config.model(normalizer.num_joints)
    streams = [sequential_stream(load(p), normalizer, 5) for p in sorted(run.glob("data/pick_place_trial*.npz"))]
    starts = initial_models(model, args.seeds, 0)
    mse = make_loss("mse", normalizer.num_joints)

    def mean_error(rates):
        return overall(online_scores(model, Method("sgd", mse, {}, per_layer_sgd(rates)), starts, streams))  # inf if diverged

    layers = len(model.sizes) - 1
    single = {rate: mean_error([rate] * layers) for rate in (0.03, 0.1, 0.3)}
    best_rate = min(single, key=single.get)
    print(f"{len(streams)} trials x {args.seeds} seeds; single-rate SGD: "
          + ", ".join(f"{r:g}: {v:.4g}" for r, v in single.items()))
    multipliers = [float(m) for m in args.multipliers.split(",")]
    results = {}
    for combo in itertools.product(multipliers, repeat=layers):
        rates = [best_rate * m for m in combo]
        results[combo] = mean_error(rates)
    ranked = sorted(results.items(), key=lambda kv: kv[1])
    print(f"\n| per-layer rates (x {best_rate:g}) | mean online MSE | / best single rate |\n|---|---|---|")
    for combo, value in ranked[:5]:
        print(f"| {', '.join(f'{m:g}' for m in combo)} | {value:.4g} | {value / single[best_rate]:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
