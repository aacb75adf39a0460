"""Should the body adapt under the Bayesian head? The ablation behind ``BayesianHead(adapt_body=False)``
being the default (issue 27).

The pipeline's Schunk protocol (normaliser from the even logs, the odd logs streamed, batches of 5, the
error of each sample's prediction before the update that includes it): the real Adapter, sample by
sample, with a head on the pretrained network's features (one pretrained model per seed, the pipeline's
budget) and the body stepped by SGD on MSE at each rate (0: the head alone), and the pretrained model
left alone. ``--alpaca FILE`` uses an ALPaCA file's meta-learned network and prior instead
(``runs/schunk/anchors/alpaca/loss.npz`` after ``fastadapt run schunk``).

Usage: python benchmarks/head_body_ablation.py [--seeds 5] [--rates 0,1e-4,1e-3,1e-2] [--forgetting 0.999]
                                               [--alpaca FILE]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from fastadapt.adapt.adapter import Adapter
from fastadapt.adapt.head import BayesianHead
from fastadapt.adapt.online import OnlineConfig, pretrain_models
from fastadapt.data.batches import Normalizer, normalised_samples
from fastadapt.data.schunk import load_schunk, split_halves
from fastadapt.tasks.inverse_dynamics import InverseDynamicsConfig, load_loss


def online_mse(adapter: Adapter, rows: np.ndarray, y_std: np.ndarray) -> float:
    """Mean normalised squared error of each prediction before the sample is observed."""
    J = adapter.joints
    errors = np.empty((len(rows), J))
    for i, row in enumerate(rows):
        errors[i] = (adapter.predict(row[:J], row[J:2 * J], row[2 * J:3 * J]) - row[3 * J:]) / y_std
        adapter.observe(row[:J], row[J:2 * J], row[2 * J:3 * J], row[3 * J:])
    return float(np.mean(np.square(errors)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rates", default="0,1e-4,1e-3,1e-2")
    parser.add_argument("--forgetting", type=float, default=0.999)
    parser.add_argument("--alpaca", help="an ALPaCA loss file: its network and prior instead of pretrained ones")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    train, held_out = split_halves(load_schunk())
    normalizer = Normalizer.fit(train)
    model = InverseDynamicsConfig().model(normalizer.num_joints)
    rows = np.concatenate([np.concatenate([t.q, t.qd, t.qdd, t.tau], 1) for t in held_out], 0).astype(np.float32)
    precision = 1.0
    if args.alpaca:  # the file's own network, normaliser and meta-learned prior precision
        _, learner, loss_params, normalizer = load_loss(args.alpaca)
        model, starts = learner.model, [loss_params["layers"]]
        precision = np.asarray(learner.prior(jax.tree.map(jnp.asarray, loss_params)).precision)
    else:
        stacked, _ = pretrain_models(model, normalised_samples(train, normalizer), OnlineConfig(seeds=args.seeds))
        starts = [jax.tree.map(lambda leaf, k=k: leaf[k], stacked) for k in range(args.seeds)]
    y_std = np.asarray(normalizer.y_std, np.float64)
    table = {}
    for rate in rates:
        scores = []
        for params in starts:
            body = dict(optimizer="sgd", learning_rate=rate) if rate > 0 else {}
            adapter = Adapter(model, normalizer, params, **body, batch_size=5,
                              head=BayesianHead(args.forgetting, precision, adapt_body=rate > 0))
            scores.append(online_mse(adapter, rows, y_std))
            adapter.close()
        table[f"head, body SGD on MSE at {rate:g}" if rate > 0 else "head alone (body fixed)"] = scores
    if not args.alpaca:
        alone = []
        for params in starts:
            prediction = model.apply(params, normalizer.inputs(rows[:, : 3 * normalizer.num_joints]))
            alone.append(float(np.mean(np.square(np.asarray(prediction) - np.asarray(normalizer.targets(
                rows[:, 3 * normalizer.num_joints:]))))))
        table["pretrained, left alone"] = alone
    print(f"Schunk held-out logs, {len(rows)} samples, batches of 5, head forgetting {args.forgetting:g}, "
          f"{'the ALPaCA file ' + args.alpaca if args.alpaca else f'{args.seeds} pretrained seeds'}\n")
    print("| method | online MSE (normalised) | +- over seeds |")
    print("|---|---|---|")
    for name, scores in table.items():
        print(f"| {name} | {np.mean(scores):.5f} | {np.std(scores):.5f} |")


if __name__ == "__main__":
    main()
