"""Online update latency of the control-loop Adapter (batch 5, the paper's online setting).

Times ``Adapter.observe`` for every sample (4 of 5 calls only buffer, the 5th runs the jitted gradient
step and waits for it) and reports p50/p99 of the updating calls, for MSE+SGD and for each learned
loss, side by side in one run. Usage: python benchmarks/latency.py [--updates 3000]
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from fastadapt.adapt.adapter import Adapter
from fastadapt.data.batches import Normalizer
from fastadapt.losses import make_loss
from fastadapt.models.mlp import InverseDynamicsMLP


def measure(adapter: Adapter, samples: np.ndarray, joints: int) -> tuple[np.ndarray, np.ndarray]:
    update_times, buffer_times = [], []
    for row in samples:
        q, qd, qdd, tau = row[:joints], row[joints:2 * joints], row[2 * joints:3 * joints], row[3 * joints:]
        start = time.perf_counter()
        updated = adapter.observe(q, qd, qdd, tau)
        if updated:
            jax.block_until_ready(adapter.params)
        elapsed = time.perf_counter() - start
        (update_times if updated else buffer_times).append(elapsed)
    return np.array(update_times), np.array(buffer_times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--joints", type=int, default=7)
    args = parser.parse_args()
    J = args.joints
    model = InverseDynamicsMLP(J)
    norm = Normalizer(jnp.zeros(3 * J), jnp.ones(3 * J), jnp.zeros(J), jnp.ones(J))
    rng = np.random.default_rng(0)
    samples = rng.normal(size=(5 * args.updates, 4 * J)).astype(np.float32)
    print(f"machine: {platform.processor() or platform.machine()}, jax {jax.__version__}, {jax.devices()[0].platform}")
    print(f"model {model.sizes}, batch 5, {args.updates} updates\n")
    print("| loss | update p50 (us) | update p99 (us) | buffering p50 (us) | p99 / MSE p99 |")
    print("|---|---|---|---|---|")
    reference = None
    for name in ("mse", "structured", "state-dependent", "mlp"):
        loss = make_loss(name, J)
        adapter = Adapter(model, norm, model.init(jax.random.PRNGKey(0)), loss, loss.init(jax.random.PRNGKey(1)),
                          "sgd", 1e-3, batch_size=5)
        measure(adapter, samples[:50], J)  # compile and warm up
        updates, buffering = measure(adapter, samples, J)
        p50, p99 = np.percentile(updates, 50) * 1e6, np.percentile(updates, 99) * 1e6
        reference = reference or p99
        print(f"| {name} | {p50:.0f} | {p99:.0f} | {np.percentile(buffering, 50) * 1e6:.1f} | {p99 / reference:.2f} |")


if __name__ == "__main__":
    main()
