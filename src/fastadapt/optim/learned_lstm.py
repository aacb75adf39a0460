"""A learned LSTM optimizer, "Learning to learn by gradient descent by gradient descent" (Andrychowicz
et al., 2016): the baseline L2LBGDBGD of the memory paper.

Coordinate-wise: every parameter coordinate runs the same two-layer LSTM (``hidden`` units each) on
its own gradient, with its own hidden state. The gradient g is preprocessed (p = 10):

    (log|g| / p, sign g)   if |g| >= e^-p,      (-1, e^p g)   otherwise

and the update is ``output_scale * W h_2 + b``. As an optax GradientTransformation (with fixed
meta-parameters) it chains like any other. Meta-training (:func:`train_lstm_optimizer`) unrolls the
optimizee for ``unroll`` steps at a time and descends (Adam) on the sum of the losses along the unroll,
through the optimizee's updates (truncated back-propagation through time); a fresh optimizee is drawn
every round, a validation run from another fresh optimizee follows every second round, and the
meta-parameters with the lowest validation loss are kept (the memory paper's protocol, 16 rounds).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import optax

PREPROCESS_P = 10.0


@dataclasses.dataclass(frozen=True)
class LSTMOptimizerConfig:
    hidden: int = 20
    output_scale: float = 0.1
    unroll: int = 20
    steps: int = 100
    rounds: int = 16
    meta_rate: float = 0.01
    seed: int = 0


class LSTMState(NamedTuple):
    hidden: jnp.ndarray  # [D, 4, H]: h1, c1, h2, c2 per coordinate


def preprocess(g):
    """[D] -> [D, 2] (the paper's log/sign preprocessing)."""
    big = jnp.abs(g) >= jnp.exp(-PREPROCESS_P)
    first = jnp.where(big, jnp.log(jnp.abs(g) + 1e-30) / PREPROCESS_P, -1.0)
    second = jnp.where(big, jnp.sign(g), jnp.exp(PREPROCESS_P) * g)
    return jnp.stack([first, second], axis=-1)


def init_lstm_params(key, hidden: int) -> dict:
    k1, k2, k3 = jax.random.split(key, 3)
    cell = lambda k, n_in: {"w": jax.random.normal(k, (n_in + hidden, 4 * hidden)) / jnp.sqrt(n_in + hidden),
                            "b": jnp.zeros(4 * hidden).at[hidden:2 * hidden].set(1.0)}  # forget gate bias 1
    return {"l1": cell(k1, 2), "l2": cell(k2, hidden), "out": {"w": jax.random.normal(k3, (hidden, 1)) * 0.01, "b": jnp.zeros(1)}}


def _cell(params, x, h, c):
    gates = jnp.concatenate([x, h], axis=-1) @ params["w"] + params["b"]
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c), c


def lstm_step(meta_params, flat_grad, hidden, output_scale: float):
    """One coordinate-wise LSTM step: (updates [D], new hidden [D, 4, H])."""
    h1, c1 = _cell(meta_params["l1"], preprocess(flat_grad), hidden[:, 0], hidden[:, 1])
    h2, c2 = _cell(meta_params["l2"], h1, hidden[:, 2], hidden[:, 3])
    update = output_scale * (h2 @ meta_params["out"]["w"] + meta_params["out"]["b"])[:, 0]
    return update, jnp.stack([h1, c1, h2, c2], axis=1)


def lstm_optimizer(meta_params, config: LSTMOptimizerConfig = LSTMOptimizerConfig()) -> optax.GradientTransformation:
    """The trained LSTM as an optax transform (its meta-parameters fixed)."""

    def init_fn(params):
        size = jax.flatten_util.ravel_pytree(params)[0].shape[0]
        return LSTMState(jnp.zeros((size, 4, config.hidden)))

    def update_fn(grads, state, params=None):
        flat, unravel = jax.flatten_util.ravel_pytree(grads)
        update, hidden = lstm_step(meta_params, flat, state.hidden, config.output_scale)
        return unravel(update), LSTMState(hidden)

    return optax.GradientTransformation(init_fn, update_fn)


def train_lstm_optimizer(loss_fn: Callable, init_fn: Callable, config: LSTMOptimizerConfig = LSTMOptimizerConfig(),
                         progress: Callable | None = None):
    """Meta-train on one task: ``loss_fn(params) -> scalar``, ``init_fn(key) -> params``.
    Returns (best meta-parameters, history {"round", "validation"})."""
    key = jax.random.PRNGKey(config.seed)
    meta_params = init_lstm_params(key, config.hidden)
    meta_opt = optax.adam(config.meta_rate)
    meta_state = meta_opt.init(meta_params)

    def unrolled(meta, params, hidden):
        def step(carry, _):
            params, hidden = carry
            value, grads = jax.value_and_grad(loss_fn)(params)
            flat, unravel = jax.flatten_util.ravel_pytree(grads)
            update, hidden = lstm_step(meta, jax.lax.stop_gradient(flat), hidden, config.output_scale)
            params = jax.tree.map(lambda p, u: p + u, params, unravel(update))
            return (params, hidden), value

        (params, hidden), values = jax.lax.scan(step, (params, hidden), None, length=config.unroll)
        return jnp.sum(values) + loss_fn(params), (params, hidden)

    @jax.jit
    def meta_step(meta, meta_state, params, hidden):
        (_, (params, hidden)), grads = jax.value_and_grad(unrolled, has_aux=True)(meta, params, hidden)
        updates, meta_state = meta_opt.update(grads, meta_state, meta)
        return optax.apply_updates(meta, updates), meta_state, jax.lax.stop_gradient(params), hidden

    @jax.jit
    def validate(meta, params):
        transform = lstm_optimizer(meta, config)

        def step(carry, _):
            params, state = carry
            value, grads = jax.value_and_grad(loss_fn)(params)
            updates, state = transform.update(grads, state)
            return (optax.apply_updates(params, updates), state), value

        _, values = jax.lax.scan(step, (params, transform.init(params)), None, length=config.steps)
        return jnp.mean(values)

    best, best_score, history = meta_params, jnp.inf, {"round": [], "validation": []}
    for round_index in range(config.rounds):
        key, init_key, val_key = jax.random.split(key, 3)
        params = init_fn(init_key)
        size = jax.flatten_util.ravel_pytree(params)[0].shape[0]
        hidden = jnp.zeros((size, 4, config.hidden))
        for _ in range(max(1, config.steps // config.unroll)):
            meta_params, meta_state, params, hidden = meta_step(meta_params, meta_state, params, hidden)
        if round_index % 2 == 1:
            score = float(validate(meta_params, init_fn(val_key)))
            history["round"].append(round_index + 1)
            history["validation"].append(score)
            if score < best_score:  # NaN never wins
                best, best_score = meta_params, score
        if progress is not None:
            progress()
    return best, history
