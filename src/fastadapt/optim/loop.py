"""One optimisation loop for every full-batch experiment of the learning-rate memory paper.

    g_t = grad L(w_t);  (u_t, s_{t+1}) = transform.update(g_t, s_t, w_t);  w_{t+1} = w_t + u_t

run for ``steps`` steps under ``lax.scan`` and jit. The loss L(w_t) is recorded before each step, and
``trace_fn(w_t, g_t, u_t, s_{t+1})`` (if given) records anything else per step (paths, rates, memories).
With ``has_aux``, ``value_fn`` returns (L, aux) and aux is recorded instead (no second forward pass).
The optimizer state comes back, so a memory can be carried into the next task.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import optax


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
