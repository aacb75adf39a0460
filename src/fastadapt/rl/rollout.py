"""Policies, rollouts and the learned dynamics model P of ML3's model-based RL (Algorithm 3, Appendix B).

* :class:`GoalPolicy`: a deterministic policy a = a_max tanh(f_theta([features(s), g])), f an MLP (tanh hidden
  layers, 64 x 64 as in the authors' code), for a system with state s and goal g.
* :func:`rollout`: s_0 -> s_1 ... s_T under ``step(s, a)`` with a_t = pi_theta(s_t, g), a ``lax.scan``
  that differentiates end to end (through the policy and the dynamics).
* :class:`DynamicsModel`: P, an MLP (tanh, 100 x 30 as in the authors' code) from (features(s), clip(a) / a_max) to the
  acceleration, stepped with the same semi-implicit Euler as the system (so P learns only what is
  unknown, the acceleration). It is fitted by full-batch Adam on the mean squared error of the
  accelerations (v' - v) / dt of the transitions collected so far (a fixed-capacity buffer: the oldest
  transitions are overwritten first). The authors fit an ensemble of three probabilistic networks with a
  Gaussian likelihood; this is one deterministic network, which is what the rollouts use anyway (the
  ensemble's mean).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax

from fastadapt.models.mlp import apply_mlp, init_mlp
from fastadapt.rl.envs import euler_step


@dataclasses.dataclass(frozen=True)
class GoalPolicy:
    """pi_theta(s, g) = a_max tanh(f_theta([features(s), g])) for the system ``env`` and 2-d goals."""

    env: object
    hidden: tuple[int, ...] = (64, 64)
    goal_dim = 2

    def init(self, key):
        return init_mlp(key, (self.env.feature_dim + self.goal_dim, *self.hidden, self.env.action_dim))

    def apply(self, theta, state, goal):
        features = self.env.features(state)
        goal = jnp.broadcast_to(goal, features.shape[:-1] + goal.shape[-1:])
        return self.env.max_action * jnp.tanh(apply_mlp(theta, jnp.concatenate([features, goal], -1), "tanh"))


def rollout(step, policy, theta, state, goal, horizon: int):
    """(states [T + 1, S], actions [T, A]) of pi_theta from ``state`` under ``step(s, a) -> s'``."""

    def body(s, _):
        a = policy.apply(theta, s, goal)
        return step(s, a), (s, a)

    last, (states, actions) = jax.lax.scan(body, state, None, length=horizon)
    return jnp.concatenate([states, last[None]]), actions


@dataclasses.dataclass(frozen=True)
class DynamicsModel:
    """P(s, a) -> s' for a system ``env`` (its dt, dof and action bound)."""

    env: object
    hidden: tuple[int, ...] = (100, 30)

    @property
    def input_dim(self) -> int:
        return self.env.feature_dim + self.env.action_dim

    def init(self, key):
        return init_mlp(key, (self.input_dim, *self.hidden, self.env.dof), last_scale=0.1)

    def inputs(self, state, action):
        limit = self.env.max_action
        return jnp.concatenate([self.env.features(state), jnp.clip(action, -limit, limit) / limit], -1)

    def acceleration(self, params, state, action):
        return apply_mlp(params, self.inputs(state, action), "tanh")

    def step(self, params, state, action):
        """Semi-implicit Euler on the predicted acceleration, the velocity clipped to the system's
        ``max_speed`` (as the authors clamp theirs): a model extrapolating far from its data cannot blow a
        rollout up."""
        next_state = euler_step(self.env.dt, state, self.acceleration(params, state, action))
        dof, limit = self.env.dof, self.env.max_speed
        velocity = jnp.clip(next_state[dof:], -limit, limit)
        return jnp.concatenate([state[:dof] + self.env.dt * velocity, velocity])

    def transitions(self, states, actions):
        """Inputs [N, S + A] and target accelerations [N, dof] of rollouts (states [..., T + 1, S], actions
        [..., T, A]), flattened."""
        dof = self.env.dof
        inputs = self.inputs(states[..., :-1, :], actions)
        targets = (states[..., 1:, dof:] - states[..., :-1, dof:]) / self.env.dt
        return inputs.reshape(-1, self.input_dim), targets.reshape(-1, dof)


def empty_buffer(model: DynamicsModel, capacity: int) -> dict:
    return {"inputs": jnp.zeros((capacity, model.input_dim)), "targets": jnp.zeros((capacity, model.env.dof)),
            "count": jnp.zeros((), jnp.int32)}


def add_transitions(buffer: dict, inputs, targets) -> dict:
    """Write transitions at the buffer's next rows (wrapping around: the oldest are overwritten)."""
    capacity = buffer["inputs"].shape[0]
    rows = (buffer["count"] + jnp.arange(inputs.shape[0])) % capacity
    return {"inputs": buffer["inputs"].at[rows].set(inputs), "targets": buffer["targets"].at[rows].set(targets),
            "count": buffer["count"] + inputs.shape[0]}


def model_error(model: DynamicsModel, params, buffer: dict):
    """Mean squared acceleration error over the filled rows of ``buffer``."""
    filled = (jnp.arange(buffer["inputs"].shape[0]) < buffer["count"]).astype(buffer["inputs"].dtype)
    errors = jnp.sum(jnp.square(apply_mlp(params, buffer["inputs"], "tanh") - buffer["targets"]), -1)
    return jnp.sum(filled * errors) / jnp.maximum(jnp.sum(filled), 1.0)


@functools.partial(jax.jit, static_argnames=("model", "steps"))
def fit_model(model: DynamicsModel, params, buffer: dict, steps: int, rate: float):
    """``steps`` full-batch Adam steps at ``rate`` on :func:`model_error`; returns (params, final error)."""
    opt = optax.adam(rate)
    value_and_grad = jax.value_and_grad(functools.partial(model_error, model))

    def body(carry, _):
        params, opt_state = carry
        value, grads = value_and_grad(params, buffer)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), value

    (params, _), _ = jax.lax.scan(body, (params, opt.init(params)), None, length=steps)
    return params, model_error(model, params, buffer)
