"""ML3 sine regression meta-training speed: fastadapt (JAX) against the authors' stack (PyTorch 2.13 +
higher), timed side by side in one run.

The same outer iteration of Algorithm 1 as `fastadapt ml3 sine`: a fresh optimizee 1 -> 40 -> 40 -> 1
(ReLU) on 100 points of sin(x - pi), one full-batch inner SGD step (alpha = 0.001) on the meta-loss
softplus(g([f(x), y])), g: 2 -> 40 -> 40 -> 1 (ReLU), then one Adam step (eta = 0.001) on phi from the
MSE after it. One seed. Reports outer iterations per second, the implementations taking turns.

Needs: pip install -e '.[bench]'.  Usage: python benchmarks/speed_ml3_sine.py [--iterations 500 --rounds 3]
"""

from __future__ import annotations

import argparse
import math

import jax
import numpy as np
from turns import jax_epoch_runner, print_speedup, rates_taking_turns

ALPHA = ETA = 1e-3


def jax_runner(x, y, iterations):
    from fastadapt.meta.algorithm import make_meta_optimizer
    from fastadapt.experiments.ml3.sine import Config, SineMLP, SineTask, meta_loss

    config = Config()
    task = SineTask(jax.numpy.asarray(x), jax.numpy.asarray(y), jax.numpy.asarray(x[None]), jax.numpy.asarray(y[None]),
                    SineMLP(config.hidden, config.activation))
    return jax_epoch_runner(task, meta_loss(config), make_meta_optimizer("adam", ETA), ALPHA, 1, iterations)


def torch_runner(x, y, iterations):
    import higher
    import torch

    torch.manual_seed(0)
    x, y = torch.tensor(x), torch.tensor(y)
    relu_net = lambda *sizes: torch.nn.Sequential(*[m for a, b in zip(sizes[:-1], sizes[1:])
                                                    for m in (torch.nn.Linear(a, b), torch.nn.ReLU())][:-1])
    loss_net = relu_net(2, 40, 40, 1)
    meta_opt = torch.optim.Adam(loss_net.parameters(), lr=ETA)

    def learned_loss(pred, target):
        return torch.nn.functional.softplus(loss_net(torch.cat([pred, target], 1))).mean()

    def run(seed):
        torch.manual_seed(seed)
        for _ in range(iterations):
            model = relu_net(1, 40, 40, 1)
            inner_opt = torch.optim.SGD(model.parameters(), lr=ALPHA)
            meta_opt.zero_grad()
            with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, diffopt):
                diffopt.step(learned_loss(fmodel(x), y))
                torch.nn.functional.mse_loss(fmodel(x), y).backward()
            meta_opt.step()

    return run


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=500, help="outer iterations per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import torch

    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (100, 1)).astype(np.float32)
    y = np.sin(x - math.pi).astype(np.float32)
    runners = {"jax (fastadapt)": jax_runner(x, y, args.iterations),
               f"torch {torch.__version__} + higher": torch_runner(x, y, args.iterations)}
    print_speedup(rates_taking_turns(runners, args.rounds, args.iterations), "outer iterations/s")


if __name__ == "__main__":
    main()
