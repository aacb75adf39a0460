"""Meta-training speed: fastadapt (JAX) against the paper's stack (PyTorch 2.13 + higher), one run.

The same Algorithm 1 step at the paper's configuration: a batch of K=256 consecutive samples split in
halves, iters_max=10 inner iterations, each one inner SGD step (alpha=0.001) on the state-dependent loss
and one outer SGD step (eta=0.01) on the MSE after it, same MLP sizes (21 -> 64 -> 64 -> 7, tanh) and
loss network (14 -> 32 -> 7). Reports meta-steps (inner+outer pairs) per second, measured alternately.

Needs: pip install torch==2.13.0 higher.  Usage: python benchmarks/speed_meta.py [--batches 40]
"""

from __future__ import annotations

import argparse

import jax
import numpy as np
from turns import jax_epoch_runner, print_speedup, rates_taking_turns

J, K, ITERS, ALPHA, ETA = 7, 256, 10, 1e-3, 1e-2


def jax_runner(data_x, data_y, batches):
    from fastadapt.data.batches import Normalizer, Samples
    from fastadapt.losses import make_loss
    from fastadapt.meta.algorithm import make_meta_optimizer
    from fastadapt.tasks.inverse_dynamics import InverseDynamicsTask
    from fastadapt.models.mlp import InverseDynamicsMLP

    model, loss = InverseDynamicsMLP(J), make_loss("state-dependent", J)
    opt = make_meta_optimizer("sgd", ETA)
    samples = Samples(jax.numpy.asarray(data_x), jax.numpy.asarray(data_y))
    starts = jax.numpy.arange(data_x.shape[0] - K)
    ones = jax.numpy.ones
    task = InverseDynamicsTask(samples, starts, samples, starts, samples, samples,
                               Normalizer(ones(3 * J), ones(3 * J), ones(J), ones(J)), None, None, model, K, batches, 5)
    return jax_epoch_runner(task, loss, opt, ALPHA, ITERS, batches)


def torch_runner(data_x, data_y, batches):
    import higher
    import torch

    torch.manual_seed(0)
    x, y = torch.tensor(data_x), torch.tensor(data_y)
    loss_net = torch.nn.Sequential(torch.nn.Linear(2 * J, 32), torch.nn.ReLU(), torch.nn.Linear(32, J))
    meta_opt = torch.optim.SGD(loss_net.parameters(), lr=ETA)

    def learned_loss(pred, target, state):
        phi = torch.nn.functional.softplus(loss_net(state.clamp(-3, 3)))
        return (phi * (pred - target) ** 2).sum(-1).mean()

    def run(seed):
        rng = np.random.default_rng(seed)
        for start in rng.integers(0, x.shape[0] - K, batches):
            bx, by = x[start:start + K], y[start:start + K]
            xa, ya, xb, yb = bx[: K // 2], by[: K // 2], bx[K // 2:], by[K // 2:]
            model = torch.nn.Sequential(torch.nn.Linear(3 * J, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64),
                                        torch.nn.Tanh(), torch.nn.Linear(64, J))
            inner_opt = torch.optim.SGD(model.parameters(), lr=ALPHA)
            for _ in range(ITERS):
                meta_opt.zero_grad()
                with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, diffopt):
                    diffopt.step(learned_loss(fmodel(xa), ya, xa[:, : 2 * J]))
                    task = torch.nn.functional.mse_loss(fmodel(xb), yb)
                    task.backward()
                    new_params = [p.detach().clone() for p in fmodel.parameters()]
                meta_opt.step()
                with torch.no_grad():
                    for p, q in zip(model.parameters(), new_params):
                        p.copy_(q)

    return run


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=40, help="batches per timed round (x10 meta-steps)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import torch

    rng = np.random.default_rng(0)
    data_x = rng.normal(size=(14400, 3 * J)).astype(np.float32)
    data_y = rng.normal(size=(14400, J)).astype(np.float32)
    runners = {"jax (fastadapt)": jax_runner(data_x, data_y, args.batches),
               f"torch {torch.__version__} + higher": torch_runner(data_x, data_y, args.batches)}
    print_speedup(rates_taking_turns(runners, args.rounds, args.batches * ITERS), "meta-steps/s")


if __name__ == "__main__":
    main()
