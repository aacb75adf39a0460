"""Algorithm 1 of ML3 and of the state-dependent-losses paper, for any task, as pure functions.

A meta-train batch (drawn by the task) holds the data of an inner update and of the task loss after it.
For each batch a fresh theta_0 is drawn (``task.start``), and for i < M (``iters_max``):

    theta_{i+1} = theta_i - alpha * grad_theta M_phi(inputs(theta_i, inner))          (inner step)

The meta-loss parameters phi are learned from the task loss L_T after inner steps (ML3 section 3.1 offers
both, ``update``):

* ``"step"`` (both papers' default): after every inner step,
  phi <- phi - eta * grad_phi L_T(theta_{i+1}, outer), with theta_i held fixed (stop-gradient), so the
  meta-gradient differentiates through one inner step (second order);
* ``"unroll"``: once after M inner steps, by backpropagating through the whole chain theta_0 -> theta_M:
  phi <- phi - eta * grad_phi (1/M) sum_{i=1..M} L_T(theta_i, outer).
  The chain is truncated at M (theta is reset for the next batch).

With M = 1 both options are the same update. A task whose batches are *stepwise*
(``task.stepwise_batches``: inner and outer hold a leading axis of M per-step batches) gives step i its own
data, inner_i and outer_i; ML3's Algorithm 4 is that unroll with outer_i = inner_{i+1}: the rollout that
scores theta_{i+1} is the experience of the next inner step.

An inner step is one gradient step on the batch, or, for a task with ``minibatches`` > 1 (Algorithm 4's
"optimize(pi_theta, M_phi, tau, R)"), the experience of the batch gathered once with theta_i
(``task.experience(theta, batch)``, constants) and one SGD step on M_phi per minibatch of it
(``task.minibatch_inputs(theta, data, k)``, k < ``minibatches``), in order; meta-test takes the same steps.

A third objective matches the online protocol
(``"online"``, :func:`online_epoch`): the task plays its meta-train data as one stream of small batches
b_0, b_1, ..., each step theta_{t+1} = theta_t - alpha * grad M_phi(b_t) is scored on the *next* batch,
L_T(theta_{t+1}, b_{t+1}) (the error a model makes before it sees b_{t+1}), and phi is updated after every
T = M steps from the mean of those scores, backpropagated through the T steps (truncated
backpropagation); theta is carried on across truncations, not reset.

A fourth objective meta-trains a learner that adapts in closed form instead of by gradient steps
(``"posterior"``, :func:`posterior_epoch`; ALPaCA, :mod:`fastadapt.models.alpaca`): phi holds its features
and its Bayesian last layer's prior and noise, and the objective of a stream b_0 .. b_{T-1} (T =
``iters_max`` batches, from the prior) is the mean negative log posterior predictive of each batch
given the batches before it, (1/T) sum_t -log p(y_t | x_t, b_0 .. b_{t-1}); phi takes one step per
stream. Meta-test plays the stream the same way (:func:`posterior_curve`).

``eta`` is applied by an optax optimizer (plain SGD as in the papers, Adam optionally). One epoch draws
``num_batches`` batches and runs under ``lax.scan``; the trainer runs seeds side by side under ``vmap``.
The task interface is in :mod:`fastadapt.meta.task`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from fastadapt.losses.regression import scale_gradients

UPDATES = ("step", "unroll", "online", "posterior")


class MetaState(NamedTuple):
    loss_params: object
    opt_state: object


def learned_loss(task, loss, loss_params, theta, batch):
    """M_phi on what the task shows the meta-loss: loss.apply(phi, pred, target, extra)."""
    return loss.apply(loss_params, *task.loss_inputs(theta, batch))


def loss_gradient(task, loss, loss_params, theta, batch):
    """grad_theta M_phi on ``batch``, as a step takes it (per-layer learned rates applied, if any)."""
    grads = jax.grad(functools.partial(learned_loss, task, loss, loss_params))(theta, batch)
    return scale_gradients(loss, loss_params, grads)


def minibatches(task) -> int:
    """How many SGD steps on minibatches of one batch's experience an inner step takes (1: one step on the
    whole batch)."""
    return getattr(task, "minibatches", 1)


def experience_step(task, loss, alpha, loss_params, theta, batch):
    """Algorithm 4's optimize: data = ``task.experience(theta, batch)`` (constants), then for k < K,
    theta <- theta - alpha * grad_theta M_phi(task.minibatch_inputs(theta, data, k))."""
    data = jax.lax.stop_gradient(task.experience(theta, batch))

    def step(theta, k):
        grads = jax.grad(lambda th: loss.apply(loss_params, *task.minibatch_inputs(th, data, k)))(theta)
        grads = scale_gradients(loss, loss_params, grads)
        return jax.tree.map(lambda p, g: p - alpha * g, theta, grads), None

    return jax.lax.scan(step, theta, jnp.arange(minibatches(task)))[0]


def inner_step(task, loss, alpha, loss_params, theta, batch):
    """theta - alpha * grad_theta M_phi(pred, target, extra) on ``batch`` (or, for a task with minibatches,
    :func:`experience_step`)."""
    if minibatches(task) > 1:
        return experience_step(task, loss, alpha, loss_params, theta, batch)
    grads = loss_gradient(task, loss, loss_params, theta, batch)
    return jax.tree.map(lambda p, g: p - alpha * g, theta, grads)


def meta_objective(task, loss, alpha, loss_params, theta, inner, outer):
    """Task loss after one inner step: L_T(theta_new, outer); returns (value, theta_new)."""
    theta_new = inner_step(task, loss, alpha, loss_params, theta, inner)
    return task.task_loss(theta_new, outer), theta_new


def unrolled_objective(task, loss, alpha, iters, loss_params, theta, inner, outer):
    """Mean task loss along M inner steps from ``theta``, differentiable end to end; returns (value,
    task losses [M]). Each step uses ``inner`` and ``outer``, or, for a task with stepwise batches, step i
    uses ``inner[i]`` and ``outer[i]``."""
    stepwise = getattr(task, "stepwise_batches", False)

    def step(theta, pair):
        value, theta_new = meta_objective(task, loss, alpha, loss_params, theta, *(pair if stepwise else (inner, outer)))
        return theta_new, value

    _, values = jax.lax.scan(step, theta, (inner, outer) if stepwise else None, length=iters)
    return jnp.mean(values), values


def online_objective(task, loss, alpha, loss_params, theta, stream):
    """The online meta-objective along ``stream`` = b_0 .. b_T (a leading axis of T + 1 batches):
    theta_{t+1} = theta_t - alpha grad M_phi(b_t), scored by L_T(theta_{t+1}, b_{t+1});
    value (1/T) sum_{t<T} L_T(theta_{t+1}, b_{t+1}), differentiable through all T steps. Returns (value,
    (scores [T], theta_T)). With T = 1 it is :func:`meta_objective` with inner b_0 and outer b_1."""
    inner, outer = jax.tree.map(lambda a: a[:-1], stream), jax.tree.map(lambda a: a[1:], stream)

    def step(theta, pair):
        value, theta_new = meta_objective(task, loss, alpha, loss_params, theta, *pair)
        return theta_new, value

    theta_end, values = jax.lax.scan(step, theta, (inner, outer))
    return jnp.mean(values), (values, theta_end)


def online_epoch(task, loss, meta_optimizer, alpha, truncation, truncations, state: MetaState, key):
    """One meta-train stream of ``truncations`` x ``truncation`` steps from theta_0 = ``task.start``
    (``task.meta_stream(key, steps + 1)`` draws its batches). After each truncation phi is updated from
    :func:`online_objective` on its T + 1 batches (consecutive truncations share a batch: the last one
    scored is the next one stepped on); the theta it ends with starts the next truncation as a constant
    (stop-gradient), so the meta-gradient never reaches back further than T steps. Returns the new
    state and each truncation's objective [truncations]."""
    stream_key, init_key = jax.random.split(key)
    stream = task.meta_stream(stream_key, truncations * truncation + 1)
    index = truncation * jnp.arange(truncations)[:, None] + jnp.arange(truncation + 1)[None, :]
    segments = jax.tree.map(lambda a: a[index], stream)
    value_and_grad = jax.value_and_grad(functools.partial(online_objective, task, loss, alpha), has_aux=True)

    def body(carry, segment):
        state, theta = carry
        (value, (_, theta_end)), meta_grad = value_and_grad(state.loss_params, theta, segment)
        return (_apply_meta_gradient(meta_optimizer, state, meta_grad), jax.lax.stop_gradient(theta_end)), value

    (state, _), values = jax.lax.scan(body, (state, task.start(init_key)), segments)
    return state, values


def posterior_objective(task, learner, params, stream, forgetting=1.0):
    """(1/T) sum_t -log p(y_t | x_t, b_0 .. b_{t-1}) along ``stream`` (T batches on a leading axis,
    ``task.examples(stream) -> (x [T, B, in], y [T, B, out])``), the learner's posterior starting at its
    prior."""
    x, y = task.examples(stream)
    return jnp.mean(learner.stream_scores(params, x, y, forgetting)[0])


def posterior_epoch(task, learner, meta_optimizer, length, count, state: MetaState, key):
    """``count`` meta-train streams of ``length`` batches (``task.meta_stream``), each one step of phi on
    :func:`posterior_objective`; returns the new state and each stream's objective [count]."""
    value_and_grad = jax.value_and_grad(functools.partial(posterior_objective, task, learner))

    def body(state, stream_key):
        value, meta_grad = value_and_grad(state.loss_params, task.meta_stream(stream_key, length))
        return _apply_meta_gradient(meta_optimizer, state, meta_grad), value

    return jax.lax.scan(body, state, jax.random.split(key, count))


def closed_form(learner) -> bool:
    """Whether ``learner`` adapts by posterior updates (``update='posterior'``) rather than gradient steps."""
    return getattr(learner, "closed_form", False)


def _apply_meta_gradient(meta_optimizer, state: MetaState, meta_grad) -> MetaState:
    updates, opt_state = meta_optimizer.update(meta_grad, state.opt_state, state.loss_params)
    return MetaState(optax.apply_updates(state.loss_params, updates), opt_state)


def batch_update(task, loss, meta_optimizer, alpha, iters_max, state: MetaState, key, batch, update: str = "step"):
    """Algorithm 1 for one meta-train batch ``(inner, outer)`` from theta_0 = ``task.start(key)``; returns
    the new state and the task losses after each inner step [iters_max]."""
    inner, outer = batch
    theta0 = task.start(key)
    if update == "unroll":
        objective = functools.partial(unrolled_objective, task, loss, alpha, iters_max)
        (_, task_losses), meta_grad = jax.value_and_grad(objective, has_aux=True)(state.loss_params, theta0, inner, outer)
        return _apply_meta_gradient(meta_optimizer, state, meta_grad), task_losses
    if update != "step":
        raise ValueError(f"unknown meta-update '{update}', expected one of {UPDATES}")
    value_and_grad = jax.value_and_grad(functools.partial(meta_objective, task, loss, alpha), has_aux=True)

    def iteration(carry, _):
        state, theta = carry
        (task_loss, theta_new), meta_grad = value_and_grad(state.loss_params, theta, inner, outer)
        return (_apply_meta_gradient(meta_optimizer, state, meta_grad), jax.lax.stop_gradient(theta_new)), task_loss

    (state, _), task_losses = jax.lax.scan(iteration, (state, theta0), None, length=iters_max)
    return state, task_losses


def meta_epoch(task, loss, meta_optimizer, alpha, iters_max, num_batches, update, state: MetaState, key):
    """One epoch: ``num_batches`` batches drawn by ``task.meta_batches``, each one :func:`batch_update`.
    Returns the new state and the mean task loss of each batch [num_batches]. Not jitted itself: the
    trainer closes over the static arguments, vmaps over seeds and jits the result. With ``update='online'``
    the epoch is one stream of ``num_batches`` truncations of ``iters_max`` steps (:func:`online_epoch`)."""
    if update == "posterior":
        return posterior_epoch(task, loss, meta_optimizer, iters_max, num_batches, state, key)
    if update == "online":
        return online_epoch(task, loss, meta_optimizer, alpha, iters_max, num_batches, state, key)
    pick_key, init_key = jax.random.split(key)
    batches = task.meta_batches(pick_key, num_batches)
    keys = jax.random.split(init_key, num_batches)

    def body(state, inputs):
        batch_key, batch = inputs
        state, task_losses = batch_update(task, loss, meta_optimizer, alpha, iters_max, state, batch_key, batch, update)
        return state, jnp.mean(task_losses)

    return jax.lax.scan(body, state, (keys, batches))


def learning_curve(task, loss, loss_params, alpha, theta0, batches, eval_set):
    """Algorithm 2 (meta-test): SGD at rate ``alpha`` on M_phi over ``batches``, scored by
    ``task.score(theta, eval_set)`` before every step and after the last. With ``eval_set=None`` it is
    the online protocol instead: each batch is scored before the step on it, and the last batch once more
    after its step. Returns the scores [steps + 1] and the trained parameters. A closed-form learner
    (``loss.closed_form``) updates its posterior instead (:func:`posterior_curve`; ``alpha`` unused)."""
    if closed_form(loss):
        return posterior_curve(task, loss, loss_params, batches, eval_set)
    opt = optax.sgd(alpha)
    grad_fn = functools.partial(loss_gradient, task, loss, loss_params)

    def step(carry, batch):
        theta, opt_state = carry
        score = task.score(theta, batch if eval_set is None else eval_set)
        if minibatches(task) > 1:  # Algorithm 4's optimize, as in meta-training
            return (inner_step(task, loss, alpha, loss_params, theta, batch), opt_state), score
        updates, opt_state = opt.update(grad_fn(theta, batch), opt_state, theta)
        return (optax.apply_updates(theta, updates), opt_state), score

    (theta, _), scores = jax.lax.scan(step, (theta0, opt.init(theta0)), batches)
    last = jax.tree.map(lambda a: a[-1], batches) if eval_set is None else eval_set
    return jnp.concatenate([scores, task.score(theta, last)[None]]), theta


def posterior_curve(task, learner, params, batches, eval_set, forgetting=1.0):
    """Algorithm 2 for a closed-form learner: its posterior updated with each batch in turn (from the prior),
    the network it predicts with (``learner.network``) scored by ``task.score`` before every update and
    after the last, on ``eval_set`` or, with ``eval_set=None``, on the batch itself (online). Returns the
    scores [steps + 1] and that network after the last batch."""
    prior = learner.prior(params)
    x, y = task.examples(batches)

    def step(posterior, inputs):
        batch, xb, yb = inputs
        score = task.score(learner.network(params, posterior), batch if eval_set is None else eval_set)
        return learner.update(params, prior, posterior, xb, yb, forgetting), score

    posterior, scores = jax.lax.scan(step, prior, (batches, x, y))
    theta = learner.network(params, posterior)
    last = jax.tree.map(lambda a: a[-1], batches) if eval_set is None else eval_set
    return jnp.concatenate([scores, task.score(theta, last)[None]]), theta


def make_meta_optimizer(name: str, eta: float, clip: float = 0.0) -> optax.GradientTransformation:
    """SGD or Adam at rate ``eta`` on phi; with ``clip`` > 0 the meta-gradient is first scaled down to a
    global norm of at most ``clip`` (long unrolls can produce rare, huge meta-gradients)."""
    if name == "adam":
        optimizer = optax.adam(eta)
    elif name == "sgd":
        optimizer = optax.sgd(eta)
    else:
        raise ValueError(f"unknown meta optimizer '{name}', expected 'adam' or 'sgd'")
    return optax.chain(optax.clip_by_global_norm(clip), optimizer) if clip > 0 else optimizer
