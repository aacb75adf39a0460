"""Timing implementations side by side: each round runs every implementation once, in turn, so all see
the same machine load (this machine is shared and noisy); a rate is work per second, median of rounds."""

from __future__ import annotations

import time

import numpy as np


def rates_taking_turns(runners: dict, rounds: int, work: int) -> dict:
    """``runners``: name -> run(seed). Each is warmed up (compiled) with seed 0, then timed ``rounds``
    times in turns; returns name -> ``work`` / median seconds."""
    for run in runners.values():
        run(0)
    times = {name: [] for name in runners}
    for r in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            run(r + 1)
            times[name].append(time.perf_counter() - start)
    return {name: work / np.median(t) for name, t in times.items()}


def print_speedup(rates: dict, unit: str) -> None:
    """A markdown table of the rates and the first implementation's speed-up over the second."""
    import jax
    import torch

    print(f"torch threads: {torch.get_num_threads()}, jax devices: {jax.devices()}")
    print(f"| implementation | {unit} (median of rounds) |\n|---|---|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.0f} |")
    first, second = list(rates.values())[:2]
    print(f"\nspeed-up of fastadapt over torch + higher: {first / second:.1f}x")


def jax_epoch_runner(task, loss, meta_optimizer, alpha: float, iters_max: int, batches: int):
    """run(seed): one jitted epoch of Algorithm 1 (``batches`` batches, phi updated after every inner
    step), the meta-state carried from call to call."""
    import jax

    from fastadapt.meta.algorithm import MetaState, meta_epoch

    epoch = jax.jit(lambda task, state, key: meta_epoch(task, loss, meta_optimizer, alpha, iters_max, batches, "step",
                                                        state, key))
    phi = loss.init(jax.random.PRNGKey(0))
    state = MetaState(phi, meta_optimizer.init(phi))

    def run(seed):
        nonlocal state
        state, losses = epoch(task, state, jax.random.PRNGKey(seed))
        jax.block_until_ready(losses)

    return run
