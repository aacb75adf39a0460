"""Online update latency of the control-loop Adapter (batch 5, the paper's online setting).

Times ``Adapter.observe`` for every sample (4 of 5 calls only buffer, the 5th runs the jitted gradient
step and waits for it) and reports p50/p99 of the updating calls, for MSE+SGD and for each learned
loss, side by side in one run: the adapters take turns in rounds of 100 updates, so a burst of noise
from the shared machine lands on all of them alike. On a shared machine the
p99 is set by scheduling noise, so it is also given per round (the median over rounds of each round's
p99). ``--disable-gc`` runs with ``gc.freeze(); gc.disable()`` as a real-time loop might. ``--against REV``
also times the Adapter of an earlier git revision (e.g. before a change to its update), interleaved.
Usage: python benchmarks/latency.py [--updates 3000] [--rounds 5] [--disable-gc] [--against REV]
"""

from __future__ import annotations

import argparse
import gc
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from fastadapt.adapt.adapter import Adapter
from fastadapt.data.batches import Normalizer
from fastadapt.losses import make_loss
from fastadapt.models.mlp import InverseDynamicsMLP
from revisions import adapter_class_at


def measure(adapter: Adapter, samples: np.ndarray, joints: int) -> tuple[np.ndarray, np.ndarray]:
    update_times, buffer_times = [], []
    for row in samples:
        q, qd, qdd, tau = row[:joints], row[joints:2 * joints], row[2 * joints:3 * joints], row[3 * joints:]
        start = time.perf_counter()
        updated = adapter.observe(q, qd, qdd, tau)
        if updated:
            adapter.wait()
        elapsed = time.perf_counter() - start
        (update_times if updated else buffer_times).append(elapsed)
    return np.array(update_times), np.array(buffer_times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--joints", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--disable-gc", action="store_true", help="gc.freeze() + gc.disable() before timing")
    parser.add_argument("--against", metavar="REV", help="also time the Adapter of this git revision")
    args = parser.parse_args()
    J = args.joints
    model = InverseDynamicsMLP(J)
    norm = Normalizer(jnp.zeros(3 * J), jnp.ones(3 * J), jnp.zeros(J), jnp.ones(J))
    rng = np.random.default_rng(0)
    samples = rng.normal(size=(5 * args.updates, 4 * J)).astype(np.float32)
    print(f"machine: {platform.processor() or platform.machine()}, jax {jax.__version__}, {jax.devices()[0].platform}")
    print(f"model {model.sizes}, batch 5, {args.updates} updates\n")
    losses = ("mse", "structured", "state-dependent", "mlp")
    classes = {"": Adapter}
    if args.against:
        classes[f" @{args.against}"] = adapter_class_at(args.against)
    adapters = {}
    for name in losses:
        for suffix, cls in classes.items():
            loss = make_loss(name, J)
            adapters[name + suffix] = cls(model, norm, model.init(jax.random.PRNGKey(0)), loss,
                                          loss.init(jax.random.PRNGKey(1)), "sgd", 1e-3, batch_size=5)
            measure(adapters[name + suffix], samples[:50], J)  # compile and warm up
    names = tuple(adapters)
    if args.disable_gc:
        gc.collect()
        gc.freeze()
        gc.disable()
    print(f"python gc: {'disabled' if args.disable_gc else 'enabled'}; {args.rounds} rounds, losses interleaved\n")
    updates = {name: [] for name in names}
    buffering = {name: [] for name in names}
    chunk = 5 * 100
    per_round = len(samples) // args.rounds
    round_p99 = {name: [] for name in names}
    for r in range(args.rounds):
        part = samples[r * per_round:(r + 1) * per_round]
        this_round = {name: [] for name in names}
        for start in range(0, len(part), chunk):
            for name in names:
                u, b = measure(adapters[name], part[start:start + chunk], J)
                this_round[name].extend(u)
                buffering[name].extend(b)
        for name in names:
            updates[name].extend(this_round[name])
            round_p99[name].append(np.percentile(this_round[name], 99) * 1e6)
    print("| loss | update p50 (us) | update p99 (us) | median of per-round p99 (us) | buffering p50 (us) | p99 / MSE p99 |")
    print("|---|---|---|---|---|---|")
    reference = None
    for name in names:
        u = np.asarray(updates[name]) * 1e6
        p50, p99 = np.percentile(u, 50), np.percentile(u, 99)
        reference = reference or p99
        print(f"| {name} | {p50:.0f} | {p99:.0f} | {np.median(round_p99[name]):.0f} | "
              f"{np.percentile(buffering[name], 50) * 1e6:.1f} | {p99 / reference:.2f} |")

if __name__ == "__main__":
    main()
