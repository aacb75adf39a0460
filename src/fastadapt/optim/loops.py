"""Every plain gradient loop here: online adaptation, pretraining, and the full-batch experiments.

``run_updates`` plays a sequence of batches through a model. At step k it first *scores* the current
parameters (the MSE on batch k, before the update), then takes one optimizer step on the training loss:

    score_k   = MSE(f_theta_k(x_k), y_k)
    g_k       = grad_theta L(phi; f_theta_k(x_k), y_k, s_k)   (per-layer learned rates applied, if any)
    theta_k+1 = theta_k + optimizer_update(g_k)

Online adaptation (score before update on streaming batches) and offline pretraining
(:mod:`fastadapt.optim.pretrain`) are this function with different batches.

``minimize`` is the one loop of every full-batch experiment of the learning-rate memory paper:

    g_t = grad L(w_t);  (u_t, s_{t+1}) = transform.update(g_t, s_t, w_t);  w_{t+1} = w_t + u_t

run for ``steps`` steps under ``lax.scan`` and jit. The loss L(w_t) is recorded before each step, and
``trace_fn(w_t, g_t, u_t, s_{t+1})`` (if given) records anything else per step (paths, rates, memories).
With ``has_aux``, ``value_fn`` returns (L, aux) and aux is recorded instead (no second forward pass).
The optimizer state comes back, so a memory can be carried into the next task.

The meta-trainer's own loops (the inner steps it differentiates through, the learning curves on a
held-out set) are in :mod:`fastadapt.meta.algorithm`: they carry the loss parameters phi as an argument.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from fastadapt.data.batches import Samples
from fastadapt.losses.regression import mse, scale_gradients

OPTIMIZERS = {"sgd": optax.sgd, "adam": optax.adam}


def make_optimizer(name: str, learning_rate) -> optax.GradientTransformation:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer '{name}', expected one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](learning_rate)


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


@functools.partial(jax.jit, static_argnames=("value_fn", "transform", "steps", "trace_fn", "has_aux"))
def minimize(value_fn: Callable, params, transform: optax.GradientTransformation, steps: int, opt_state=None,
             trace_fn: Callable | None = None, has_aux: bool = False):
    """Returns (params, opt_state, losses [steps], trace [steps, ...] or None)."""
    opt_state = transform.init(params) if opt_state is None else opt_state

    def step(carry, _):
        params, opt_state = carry
        if has_aux:
            (value, record), grads = jax.value_and_grad(value_fn, has_aux=True)(params)
        else:
            value, grads = jax.value_and_grad(value_fn)(params)
        updates, opt_state = transform.update(grads, opt_state, params)
        if trace_fn is not None:
            record = trace_fn(params, grads, updates, opt_state)
        elif not has_aux:
            record = None
        return (optax.apply_updates(params, updates), opt_state), (value, record)

    (params, opt_state), (losses, trace) = jax.lax.scan(step, (params, opt_state), None, length=steps)
    return params, opt_state, losses, trace
