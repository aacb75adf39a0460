"""Offline pretraining: the starting point of the practitioner's protocol and of warm-start meta-training.

Each of ``models`` randomly initialised networks is fitted by Adam on the MSE over ``steps`` random
minibatches of ``batch`` samples (drawn with replacement) from ``samples``:

    theta_{k+1} = theta_k + adam_update(grad_theta MSE(f_theta_k(x_Bk), y_Bk)),   B_k ~ U(samples)

The models run side by side under vmap; the same seed gives the same models.
"""

from __future__ import annotations

import jax

from fastadapt.losses.regression import mse
from fastadapt.optim.loops import run_updates
from fastadapt.data.batches import Samples
from fastadapt.losses import make_loss


def pretrain(model, samples: Samples, models: int, steps: int, rate: float, batch: int, seed: int):
    """Returns (params stacked [models, ...], final MSE on ``samples`` [models])."""
    if models < 1 or steps < 1 or batch < 1:
        raise ValueError(f"pretraining needs models, steps and batch >= 1, got {models}, {steps}, {batch}")
    mse_loss = make_loss("mse", model.num_joints)
    thetas = jax.vmap(model.init)(jax.random.split(jax.random.PRNGKey(seed), models))
    keys = jax.random.split(jax.random.PRNGKey(seed + 1), models)
    n = samples.x.shape[0]

    def one(theta, key):
        index = jax.random.randint(key, (steps, batch), 0, n)
        theta, _ = run_updates(model, mse_loss, "adam", rate, {}, theta, Samples(samples.x[index], samples.y[index]))
        return theta, mse(model.apply(theta, samples.x), samples.y)

    return jax.vmap(one)(thetas, keys)
