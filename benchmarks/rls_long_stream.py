"""Does recursive least squares stay exact and positive definite over 100k updates? (issue 27)

Plays the Schunk logs' held-out stream (the ``fastadapt run schunk`` protocol: normaliser from the
even logs, batches of 5 of the odd ones) through RLS on random Fourier features, cycled until
``--updates`` batches have gone through, in float64 with the pipeline's settings (forgetting 0.999,
ridge 1, trace bound D / reg). Beside the P = A^-1 recursion it accumulates the information form
A = lambda A + Phi^T Phi, c = lambda c + Phi^T Y (a sum of PSD terms, numerically benign) with the same
per-batch lambda_k, and prints every ``--every`` updates: the online MSE of the last pass, the smallest
and largest eigenvalue of P, and how far W is from the direct solution A^-1 c (relative, max-norm).

Then a robot at rest: 100k batches of one input, with and without the trace bound; without it trace(P)
winds up like lambda^-n; the script prints both traces and the first prediction of a new motion.

Usage: python benchmarks/rls_long_stream.py [--updates 100000] [--features 200] [--every 20000]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import enable_x64

from fastadapt.adapt.rls import fourier_features, rls_init, rls_predict, rls_update
from fastadapt.data.batches import Normalizer, sequential_stream
from fastadapt.data.schunk import load_schunk, split_halves


def long_stream(features: int, updates: int, every: int, forgetting: float, reg: float) -> None:
    train, held = split_halves(load_schunk(None))
    stream = sequential_stream(held, Normalizer.fit(train), 5)
    with enable_x64():
        f = fourier_features(jax.random.PRNGKey(0), stream.batches.x.shape[-1], features, 4.0)
        x = jnp.asarray(stream.batches.x, jnp.float64)
        y = jnp.asarray(stream.batches.y, jnp.float64)
        max_trace = f.dim / reg

        def step(carry, batch):
            state, a, c = carry
            phi = f(batch[0])
            score = jnp.mean((rls_predict(state, phi) - batch[1]) ** 2)
            lam = jnp.where(jnp.trace(state.inverse) > max_trace, 1.0, forgetting)
            return (rls_update(state, phi, batch[1], forgetting, max_trace), lam * a + phi.T @ phi,
                    lam * c + phi.T @ batch[1]), score

        one_pass = jax.jit(lambda carry: jax.lax.scan(step, carry, (x, y)))
        carry = (rls_init(f.dim, y.shape[-1], reg), reg * jnp.eye(f.dim), jnp.zeros((f.dim, y.shape[-1])))
        done, next_report, started = 0, every, time.perf_counter()
        print(f"Schunk held-out stream, {len(x)} batches per pass, D={features}, lambda={forgetting}, reg={reg}")
        while done < updates:
            carry, scores = one_pass(carry)
            jax.block_until_ready(carry)
            done += len(x)
            if done >= next_report or done >= updates:
                state, a, c = carry
                eig = np.linalg.eigvalsh(np.asarray(state.inverse))
                direct = np.linalg.solve(np.asarray(a), np.asarray(c))
                drift = np.abs(np.asarray(state.weights) - direct).max() / np.abs(direct).max()
                print(f"  {done:7d} updates: online MSE of this pass {float(scores.mean()):.4f}, eig(P) "
                      f"[{eig.min():.3g}, {eig.max():.3g}], |W - A^-1 c| / |W| = {drift:.2g}")
                next_report += every
        seconds = time.perf_counter() - started
        print(f"  {seconds:.1f} s, {1e6 * seconds / done:.0f} us per update (jit, scan, float64, CPU)")


def at_rest(features: int, updates: int, forgetting: float, reg: float) -> None:
    with enable_x64():
        f = fourier_features(jax.random.PRNGKey(0), 18, features, 4.0)
        rest, targets = f(jnp.zeros((5, 18))), jnp.ones((5, 6))
        moving = f(jnp.asarray(np.random.default_rng(0).normal(size=(5, 18))))
        print(f"A robot at rest for {updates} batches (one input), then one batch of a new motion:")
        for name, bound in (("no bound", jnp.inf), (f"trace bound D / reg = {f.dim / reg:g}", f.dim / reg)):
            step = lambda state, _: (rls_update(state, rest, targets, forgetting, bound), None)
            state = jax.lax.scan(step, rls_init(f.dim, 6, reg), None, length=updates)[0]
            after = rls_update(state, moving, jnp.zeros((5, 6)), forgetting, bound)
            prediction = np.abs(np.asarray(rls_predict(after, moving))).max()
            print(f"  {name:28s} trace(P) {float(jnp.trace(state.inverse)):.3g}, max |prediction| after the "
                  f"new batch {prediction:.3g}, finite: {bool(np.isfinite(np.asarray(after.inverse)).all())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=200)
    parser.add_argument("--every", type=int, default=20_000)
    parser.add_argument("--forgetting", type=float, default=0.999)
    parser.add_argument("--reg", type=float, default=1.0)
    args = parser.parse_args()
    long_stream(args.features, args.updates, args.every, args.forgetting, args.reg)
    at_rest(args.features, args.updates, args.forgetting, args.reg)


if __name__ == "__main__":
    main()
