"""How much is there to adapt on the held-out Schunk logs? The ablation behind issue 27's goal of 0.85x
the pretrained model left alone.

The pipeline's protocol (`fastadapt run schunk`): normaliser from the even (meta-train) logs, the odd
logs held out. Printed, each as mean online-protocol MSE over the held-out samples (normalised units):

* the pretrained model (fitted to the meta-train logs, the pipeline's `online.pretrain_*` budget),
  left alone: what every online method is compared with;
* an **in-sample oracle**: the same network fitted, with the same budget, to the held-out logs
  themselves and scored on them: the error no fixed model of this size reaches without having seen the
  stream in advance; and fitted to meta-train + held-out together;
* 0.85x the model left alone (the goal).

If the oracle sits above, or near, 0.85x left alone, no online adapter of this network can reach the
goal: the remaining error is what the network cannot fit (noise and unmodelled effects), not a change
of dynamics to track.

Usage: python benchmarks/schunk_noise_floor.py [--seeds 5]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from fastadapt.adapt.online import OnlineConfig, pretrain_models
from fastadapt.data.batches import Normalizer, Samples, normalised_samples
from fastadapt.data.schunk import load_schunk, split_halves
from fastadapt.tasks.inverse_dynamics import InverseDynamicsConfig


def scores(model, params, samples: Samples) -> np.ndarray:
    predictions = jax.vmap(model.apply, in_axes=(0, None))(params, samples.x)
    return np.asarray(jnp.mean(jnp.square(predictions - samples.y), axis=(1, 2)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    train, held_out = split_halves(load_schunk())
    normalizer = Normalizer.fit(train)
    model = InverseDynamicsConfig().model(normalizer.num_joints)
    config = OnlineConfig(seeds=args.seeds)
    train_samples, stream = normalised_samples(train, normalizer), normalised_samples(held_out, normalizer)
    both = Samples(jnp.concatenate([train_samples.x, stream.x]), jnp.concatenate([train_samples.y, stream.y]))
    rows = {}
    for name, fitted_on in (("pretrained on meta-train, left alone", train_samples),
                            ("oracle: fitted to the held-out logs themselves", stream),
                            ("oracle: fitted to meta-train + held-out", both)):
        params, _ = pretrain_models(model, fitted_on, config)
        rows[name] = scores(model, params, stream)
    alone = rows["pretrained on meta-train, left alone"].mean()
    print(f"Schunk held-out logs, {stream.x.shape[0]} samples, {args.seeds} seeds, pretraining budget "
          f"{config.pretrain_steps} Adam steps at {config.pretrain_rate:g}, batch {config.pretrain_batch}\n")
    print("| model | MSE on the held-out logs | x left alone |")
    print("|---|---|---|")
    for name, values in rows.items():
        print(f"| {name} | {values.mean():.5f} +- {values.std():.5f} | {values.mean() / alone:.3f} |")
    print(f"| the goal: 0.85x left alone | {0.85 * alone:.5f} | 0.850 |")


if __name__ == "__main__":
    main()
