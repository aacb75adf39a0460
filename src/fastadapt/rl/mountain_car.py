"""MountainCar as a differentiable system: gymnax's ``MountainCarContinuous-v0`` transition with its
gradients, each action held ``action_repeat`` steps, and a linear policy on the car's features.

    v' = clip(v + 0.0015 u - 0.0025 cos(3 p)),   p' = clip(p + v'),   u in [-1, 1]
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


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
    """u = tanh(W features(s) + b): a linear policy squashed into the action bounds (the authors' is linear and clamped, without the tanh)."""

    env: MountainCar

    def init(self, key):
        return {"w": 0.1 * jax.random.normal(key, (2, 1)), "b": jnp.zeros(1)}

    def apply(self, theta, state, goal):
        return jnp.tanh(self.env.features(state) @ theta["w"] + theta["b"])
