"""MountainCar as a differentiable system, in two versions, and their policies.

* :class:`MountainCar`: gymnax's ``MountainCarContinuous-v0`` transition with its gradients, each action
  held ``action_repeat`` steps; :class:`LinearPolicy` on the car's features, squashed by tanh:

      v' = clip(v + 0.0015 u - 0.0025 cos(3 p)),   p' = clip(p + v'),   u in [-1, 1].

* :class:`FrictionMountainCar`: the car of the ML3 authors' code (facebookresearch/LearningToLearn,
  ``ml3/envs/mountain_car.py``), a point of mass m = 0.2 on the curve sin(3 p) with friction k = 0.3,
  one step of dt = 0.1 per action:

      u_c = clip(u, -0.25, 0.25),
      v' = v + dt (g m cos(3 p) + u_c / m - k v)   (g = -9.8),   p' = p + dt v'   (the unclipped v'),

  then v' is limited to [-1.5, 1.5], p' to [-1.2, 0.5], and the left wall stops the car (v' = 0 where
  p' = -1.2 and v' < 0). The authors write those three limits into the tensors' ``.data``, which changes
  the value and leaves the gradient as if nothing had been limited: here each is straight-through,
  x + stop_gradient(limit(x) - x). The action's clip is an ordinary one (zero gradient outside).
  :class:`ClampedLinearPolicy` is theirs: u = clip(W2 W1 s, -0.25, 0.25), two bias-free linear layers
  2 -> 200 -> 1 on the raw state, initialised as torch's ``nn.Linear`` is (uniform in +-1/sqrt(fan_in)).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from fastadapt.models.mlp import apply_mlp, init_mlp


@dataclasses.dataclass(frozen=True)
class MountainCar:
    """gymnax's MountainCarContinuous-v0 transition, differentiable, each action held ``action_repeat`` steps;
    the state is (p, v)."""

    action_repeat: int = 4

    max_action = 1.0
    action_dim = 1
    feature_dim = 2

    def _gymnax(self):
        try:
            import gymnax
        except ImportError as error:
            raise ImportError("MountainCar needs gymnax: pip install 'fastadapt[rl]'") from error
        env, params = gymnax.make("MountainCarContinuous-v0")
        return env.with_transition_gradients(), params

    def step(self, state, action):
        from gymnax.environments.classic_control.continuous_mountain_car import EnvState

        env, params = self._gymnax()
        key = jax.random.PRNGKey(0)  # the transition is deterministic

        def one(_, s):
            _, new, _, _, _ = env.step_env(key, EnvState(position=s[0], velocity=s[1], time=0), action[0], params)
            return jnp.stack([new.position, new.velocity])

        return jax.lax.fori_loop(0, self.action_repeat, one, state)

    def features(self, state):
        return jnp.stack([(state[..., 0] + 0.3) / 0.9, state[..., 1] / 0.07], -1)


@dataclasses.dataclass(frozen=True)
class LinearPolicy:
    """u = tanh(W features(s) + b): a linear policy squashed into the action bounds (not the authors':
    theirs is :class:`ClampedLinearPolicy`, linear in the raw state and clipped)."""

    env: MountainCar

    def init(self, key):
        return {"w": 0.1 * jax.random.normal(key, (2, 1)), "b": jnp.zeros(1)}

    def apply(self, theta, state, goal):
        return jnp.tanh(self.env.features(state) @ theta["w"] + theta["b"])


def straight_through(x, value):
    """``value`` forward, the derivative of ``x`` backward: x + stop_gradient(value - x) (what writing into
    a torch tensor's ``.data`` does)."""
    return x + jax.lax.stop_gradient(value - x)


@dataclasses.dataclass(frozen=True)
class FrictionMountainCar:
    """The ML3 authors' car (module docstring): state (p, v), one step of ``dt`` per action."""

    dt: float = 0.1
    mass: float = 0.2
    gravity: float = -9.8
    friction: float = 0.3
    max_action: float = 0.25
    max_speed: float = 1.5
    min_position: float = -1.2
    max_position: float = 0.5

    action_dim = 1
    feature_dim = 2

    def step(self, state, action):
        p, v = state[0], state[1]
        u = jnp.clip(jnp.reshape(action, ()), -self.max_action, self.max_action)
        v = v + (self.gravity * self.mass * jnp.cos(3.0 * p) + u / self.mass - self.friction * v) * self.dt
        p = p + v * self.dt
        v_limited = jnp.clip(v, -self.max_speed, self.max_speed)
        p_limited = jnp.clip(p, self.min_position, self.max_position)
        v_limited = jnp.where((p_limited <= self.min_position) & (v_limited < 0), 0.0, v_limited)
        return jnp.stack([straight_through(p, p_limited), straight_through(v, v_limited)])

    def features(self, state):
        """The raw state: the authors' networks see (p, v) as they are."""
        return state


@dataclasses.dataclass(frozen=True)
class ClampedLinearPolicy:
    """u = clip(W2 W1 s, -a_max, a_max), W1 [hidden, 2], W2 [1, hidden], no biases (the authors'
    ``MC_Policy``); the goal is not an input."""

    env: FrictionMountainCar
    hidden: int = 200

    def init(self, key):
        return init_mlp(key, (self.env.feature_dim, self.hidden, self.env.action_dim), init="torch", bias=False)

    def apply(self, theta, state, goal):
        limit = self.env.max_action
        return jnp.clip(apply_mlp(theta, self.env.features(state), "linear"), -limit, limit)
