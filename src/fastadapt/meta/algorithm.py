"""Algorithm 1 of "Learning State-Dependent Losses for Inverse Dynamics Learning", as pure functions.

For each batch of K consecutive samples, split into halves A (first K/2) and B (last K/2), a fresh
random theta is drawn and, for i < iters_max,

    theta_new = theta - alpha * grad_theta L_learn(phi; f_theta(x_A), y_A, s_A)        (inner step)
    phi       = phi - eta * grad_phi MSE(f_theta_new(x_B), y_B)                     (outer step)
    theta     = theta_new

The meta-gradient differentiates through the inner step (second order). ``eta`` is applied by an optax
optimizer (plain SGD by default, as in the paper; Adam optionally). One epoch draws ``num_batches`` windows at random
and runs under ``lax.scan``; seeds run side by side under ``vmap``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from fastadapt.data.batches import Samples, gather_windows
from fastadapt.adapt.runner import mse


class MetaState(NamedTuple):
    loss_params: object
    opt_state: object


def inner_step(model, loss, alpha, loss_params, theta, batch: Samples):
    """theta - alpha * grad_theta L_learn(phi; f_theta(x), y, s)."""
    grads = jax.grad(lambda th: loss.apply(loss_params, model.apply(th, batch.x), batch.y, batch.state))(theta)
    return jax.tree.map(lambda p, g: p - alpha * g, theta, grads)


def meta_objective(model, loss, alpha, loss_params, theta, batch_a: Samples, batch_b: Samples):
    """Task loss after one inner step: MSE(f_theta_new(x_B), y_B); returns (value, theta_new)."""
    theta_new = inner_step(model, loss, alpha, loss_params, theta, batch_a)
    return mse(model.apply(theta_new, batch_b.x), batch_b.y), theta_new


def split_halves(window: Samples) -> tuple[Samples, Samples]:
    half = window.x.shape[0] // 2
    return Samples(window.x[:half], window.y[:half]), Samples(window.x[half:], window.y[half:])


def batch_update(model, loss, meta_optimizer, alpha, iters_max, state: MetaState, key, window: Samples,
                 start_params=None):
    """Lines 4-14 of Algorithm 1 for one batch; returns the new state and the task losses [iters_max].
    theta starts at ``model.init(key)``, or at one of the stacked models ``start_params`` [P, ...] picked
    with ``key`` (warm-start meta-training: the loss learns how to adapt an already trained model)."""
    batch_a, batch_b = split_halves(window)
    value_and_grad = jax.value_and_grad(
        functools.partial(meta_objective, model, loss, alpha), has_aux=True
    )

    def iteration(carry, _):
        state, theta = carry
        (task_loss, theta_new), meta_grad = value_and_grad(state.loss_params, theta, batch_a, batch_b)
        updates, opt_state = meta_optimizer.update(meta_grad, state.opt_state, state.loss_params)
        loss_params = optax.apply_updates(state.loss_params, updates)
        return (MetaState(loss_params, opt_state), jax.lax.stop_gradient(theta_new)), task_loss

    if start_params is None:
        theta0 = model.init(key)
    else:
        count = jax.tree.leaves(start_params)[0].shape[0]
        pick = jax.random.randint(key, (), 0, count)
        theta0 = jax.tree.map(lambda a: a[pick], start_params)
    (state, _), task_losses = jax.lax.scan(iteration, (state, theta0), None, length=iters_max)
    return state, task_losses


def meta_epoch(model, loss, meta_optimizer, alpha, iters_max, batch_size, num_batches,
               state: MetaState, key, samples: Samples, starts, start_params=None):
    """One epoch: ``num_batches`` random windows of ``batch_size`` consecutive samples.
    ``start_params``: see :func:`batch_update`.
    Returns the new state and the mean task loss of each batch [num_batches]. Not jitted itself: the
    trainer closes over the static arguments, vmaps over seeds and jits the result."""
    pick_key, init_key = jax.random.split(key)
    chosen = jax.random.choice(pick_key, starts, (num_batches,))
    windows = gather_windows(samples, chosen, batch_size)
    keys = jax.random.split(init_key, num_batches)

    def body(state, inputs):
        batch_key, window = inputs
        state, task_losses = batch_update(model, loss, meta_optimizer, alpha, iters_max, state, batch_key, window,
                                          start_params)
        return state, jnp.mean(task_losses)

    return jax.lax.scan(body, state, (keys, windows))


def make_meta_optimizer(name: str, eta: float) -> optax.GradientTransformation:
    if name == "adam":
        return optax.adam(eta)
    if name == "sgd":
        return optax.sgd(eta)
    raise ValueError(f"unknown meta optimizer '{name}', expected 'adam' or 'sgd'")
