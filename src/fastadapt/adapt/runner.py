"""One gradient-descent runner for every way a model is trained here.

``run_updates`` plays a sequence of batches through a model. At step k it first *scores* the current
parameters (the MSE on batch k, before the update), then takes one optimizer step on the training loss:

    score_k   = MSE(f_theta_k(x_k), y_k)
    g_k       = grad_theta L(phi; f_theta_k(x_k), y_k, s_k)   (per-layer learned rates applied, if any)
    theta_k+1 = theta_k + optimizer_update(g_k)

Online adaptation (score before update on streaming batches) and offline pretraining are this function
with different batches (the learning curves on a held-out set are ``meta.algorithm.learning_curve``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from fastadapt.data.batches import Samples
from fastadapt.losses.regression import scale_gradients

OPTIMIZERS = {"sgd": optax.sgd, "adam": optax.adam}


def make_optimizer(name: str, learning_rate) -> optax.GradientTransformation:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer '{name}', expected one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](learning_rate)


def mse(pred, target):
    return jnp.mean(jnp.square(pred - target))


def loss_and_prediction(model, loss, loss_params, theta, batch: Samples):
    pred = model.apply(theta, batch.x)
    return loss.apply(loss_params, pred, batch.y, batch.state), pred


def scan_updates(model, loss, opt: optax.GradientTransformation, loss_params, theta0, opt_state0,
                 batches: Samples, per_joint: bool = False):
    """The loop itself (not jitted): returns (theta, optimizer state, scores [n]), or with ``per_joint``
    the squared error per joint [n, J] averaged over each batch."""
    grad_fn = jax.grad(functools.partial(loss_and_prediction, model, loss, loss_params), has_aux=True)

    def step(carry, batch):
        theta, opt_state = carry
        grads, pred = grad_fn(theta, batch)
        grads = scale_gradients(loss, loss_params, grads)
        score = jnp.mean(jnp.square(pred - batch.y), axis=0) if per_joint else mse(pred, batch.y)
        updates, opt_state = opt.update(grads, opt_state, theta)
        return (optax.apply_updates(theta, updates), opt_state), score

    (theta, opt_state), scores = jax.lax.scan(step, (theta0, opt_state0), batches)
    return theta, opt_state, scores


@functools.partial(jax.jit, static_argnames=("model", "loss", "optimizer"))
def run_updates(model, loss, optimizer: str, learning_rate, loss_params, theta0, batches: Samples):
    """Returns (theta after the last update, scores [n] taken before each update)."""
    opt = make_optimizer(optimizer, learning_rate)
    theta, _, scores = scan_updates(model, loss, opt, loss_params, theta0, opt.init(theta0), batches)
    return theta, scores


@functools.partial(jax.jit, static_argnames=("model", "loss", "transform", "per_joint"))
def run_transform(model, loss, transform: optax.GradientTransformation, loss_params, theta0, opt_state0,
                  batches: Samples, per_joint: bool = False):
    """``run_updates`` with any optax transform and an explicit optimizer state (e.g. a learning-rate
    memory carried over from an earlier task). Returns (theta, optimizer state, scores [n] or [n, J])."""
    return scan_updates(model, loss, transform, loss_params, theta0, opt_state0, batches, per_joint=per_joint)


@functools.partial(jax.jit, static_argnames=("model",))
def score_without_updates(model, theta, batches: Samples):
    """MSE of a fixed model on each batch [n] (the 'pretrained, not adapted' baseline)."""
    return jax.vmap(lambda b: mse(model.apply(theta, b.x), b.y))(batches)
