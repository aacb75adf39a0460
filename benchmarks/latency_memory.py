"""Latency of one online update with the learning-rate memory, at the memory paper's online setting:
one network per joint ([100, 50, 10], 7 joints), batches of 10, M = 200 local models per layer, memory
rate 0.005, clip 1.0. Times ``Adapter.observe`` on the updating calls (network step + memory update)
for MetaGD, side by side with plain SGD on the same network (as the Adapter runs it, on a flat vector)
and with clipped GD run as an optax transform on the parameter tree (what MetaGD is measured against,
minus the memory); the adapters take turns in rounds of 50 updates.

Usage: python benchmarks/latency_memory.py [--updates 2000] [--rounds 5] [--cutoffs 5,4]
"""

from __future__ import annotations

import argparse
import platform

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fastadapt.adapt.adapter import Adapter
from fastadapt.data.batches import Normalizer
from fastadapt.models.mlp import PerJointMLP
from fastadapt.optim import MemoryConfig, metagd
from latency import measure



def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cutoffs", default="5", help="comma-separated memory cutoffs to time side by side (5 is the default)")
    args = parser.parse_args()
    J, batch = 7, 10
    model = PerJointMLP(J)
    norm = Normalizer(jnp.zeros(3 * J), jnp.ones(3 * J), jnp.zeros(J), jnp.ones(J))
    params = model.init(jax.random.PRNGKey(0))
    size = sum(p.size for p in jax.tree.leaves(params))
    optimizers = {
        "sgd (flat vector)": "sgd",
        "GD, clip 1.0 (optax, on the tree)": optax.chain(optax.clip(1.0), optax.sgd(1e-4)),
    }
    for cutoff in (float(c) for c in args.cutoffs.split(",")):
        config = MemoryConfig(eta_init=1e-4, num_models=200, memory_rate=0.005, clip=1.0, cutoff=cutoff)
        optimizers[f"MetaGD, M = 200, cutoff {cutoff:g} (K = {config.half_window})"] = metagd(config)
    adapters = {name: Adapter(model, norm, params, optimizer=opt, learning_rate=1e-4, batch_size=batch)
                for name, opt in optimizers.items()}
    rng = np.random.default_rng(0)
    samples = rng.normal(size=(batch * args.updates, 4 * J)).astype(np.float32)
    for adapter in adapters.values():
        measure(adapter, samples[: 5 * batch], J)  # compile and warm up
    print(f"machine: {platform.processor() or platform.machine()}, jax {jax.__version__}, {jax.devices()[0].platform}")
    print(f"{J} networks {model.sizes}, {size} parameters, batch {batch}, {args.updates} updates each\n")
    times = {name: [] for name in adapters}
    round_p99 = {name: [] for name in adapters}
    per_round = len(samples) // args.rounds
    chunk = batch * 50
    for r in range(args.rounds):
        part = samples[r * per_round:(r + 1) * per_round]
        this = {name: [] for name in adapters}
        for start in range(0, len(part), chunk):
            for name, adapter in adapters.items():
                this[name].extend(measure(adapter, part[start:start + chunk], J)[0])
        for name in adapters:
            times[name].extend(this[name])
            round_p99[name].append(np.percentile(this[name], 99) * 1e6)
    print("| update | p50 (us) | p99 (us) | median per-round p99 (us) | p50 / sgd p50 |\n|---|---|---|---|---|")
    reference = None
    for name in adapters:
        t = np.asarray(times[name]) * 1e6
        p50 = np.percentile(t, 50)
        reference = reference or p50
        print(f"| {name} | {p50:.0f} | {np.percentile(t, 99):.0f} | {np.median(round_p99[name]):.0f} | {p50 / reference:.2f} |")


if __name__ == "__main__":
    main()
