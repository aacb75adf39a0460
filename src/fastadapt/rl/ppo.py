"""The PPO baseline of Fig. 4 a, b (sbx: Stable-Baselines3's PPO on JAX) on the same goal tasks, and the
sample counting of the comparison ("samples needed to reach 80% of final performance").

PPO trains on :class:`GoalEnv`, a gymnasium environment with the goal fixed, the observations, the reward
and the horizon of :mod:`fastadapt.rl.mujoco_goal`. Its policy is scored after every ``n_steps`` samples
(one PPO update) with the deterministic rollout the learned loss's policies are scored with.
"""

from __future__ import annotations

import numpy as np

from fastadapt.rl.mujoco_goal import GoalEnvSpec, distance, host_rollout, metric, observe, reset, reward


def samples_to_fraction(samples, performance, fraction: float = 0.8, final: float | None = None) -> int | None:
    """The first sample count at which ``performance`` (higher is better) has covered ``fraction`` of the
    way from its first value to ``final`` (by default its own last value): performance[i] >=
    p_0 + fraction (final - p_0). None if it never does, or if ``final`` is no better than p_0."""
    samples, performance = np.asarray(samples), np.asarray(performance, dtype=np.float64)
    if samples.shape != performance.shape or samples.ndim != 1 or samples.size == 0:
        raise ValueError(f"samples {samples.shape} and performance {performance.shape} must be two equal 1-d curves")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    final = performance[-1] if final is None else float(final)
    if not final > performance[0]:
        return None
    reached = np.nonzero(performance >= performance[0] + fraction * (final - performance[0]))[0]
    return int(samples[reached[0]]) if reached.size else None


def make_goal_env(spec: GoalEnvSpec, goal, horizon: int):
    """A gymnasium environment of ``spec`` with the goal fixed and episodes of ``horizon`` steps."""
    import gymnasium as gym

    class GoalEnv(gym.Env):
        def __init__(self):
            self.env = spec.make()
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, (spec.obs_dim,), np.float64)
            self.action_space = gym.spaces.Box(-1.0, 1.0, (spec.action_dim,), np.float32)
            self.goal, self.t = np.asarray(goal, np.float64), 0

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return reset(spec, self.env, self.goal, int(self.np_random.integers(2 ** 31))), {}

        def step(self, action):
            applied = np.clip(action, -1.0, 1.0)
            self.env.step(applied)
            self.t += 1
            r = float(reward(spec, np.asarray(distance(spec, self.env)), applied))
            return observe(spec, self.env), r, False, self.t >= horizon, {}

    return GoalEnv()


def set_actor(model, policy: dict) -> None:
    """Start sbx PPO's actor from a Gaussian policy {"mean": tanh MLP layers [{"w", "b"}], "log_std" [A]}
    (the same network: Dense layers with tanh between them and a state-independent log-std); the critic
    keeps its own initialisation."""
    import jax.numpy as jnp

    state = model.policy.actor_state
    params = dict(state.params["params"])
    layers = [name for name in sorted(params) if name.startswith("Dense_")]
    if len(layers) != len(policy["mean"]):
        raise ValueError(f"PPO's actor has {len(layers)} layers, the policy {len(policy['mean'])}")
    for name, layer in zip(layers, policy["mean"]):
        if tuple(params[name]["kernel"].shape) != tuple(np.shape(layer["w"])):
            raise ValueError(f"PPO's actor layer {name} is {params[name]['kernel'].shape}, the policy's {np.shape(layer['w'])}")
        params[name] = {"kernel": jnp.asarray(layer["w"], jnp.float32), "bias": jnp.asarray(layer["b"], jnp.float32)}
    params["log_std"] = jnp.asarray(policy["log_std"], jnp.float32)
    model.policy.actor_state = state.replace(params={**state.params, "params": params})


def ppo_curve(spec: GoalEnvSpec, goal, horizon: int, updates: int, n_steps: int, seed: int, eval_seed: int,
              hidden=(64, 64), learning_rate: float = 3e-4, batch_size: int = 64, n_epochs: int = 10,
              initial_policy: dict | None = None) -> dict:
    """PPO for ``updates`` updates of ``n_steps`` samples on one goal, its actor started from
    ``initial_policy`` if given (:func:`set_actor`). Returns {"samples" [updates + 1], "performance"
    [updates + 1] (the metric of a deterministic rollout, before training and after each update),
    "train_seconds" (PPO's updates only), "collect_seconds" (its rollouts; the scoring rollouts are not
    counted)}."""
    import time

    from sbx import PPO

    model = PPO("MlpPolicy", make_goal_env(spec, goal, horizon), n_steps=n_steps, batch_size=min(batch_size, n_steps),
                n_epochs=n_epochs, learning_rate=learning_rate, seed=seed, verbose=0,
                policy_kwargs={"net_arch": list(hidden)})
    if initial_policy is not None:
        set_actor(model, initial_policy)
    act = lambda obs: model.predict(obs, deterministic=True)[0]
    score = lambda: float(metric(spec, host_rollout(spec, act, [goal], horizon, eval_seed)["distances"])[0])
    samples, performance, train_seconds = [0], [score()], 0.0
    train = model.train

    def timed_train():
        nonlocal train_seconds
        start = time.perf_counter()
        train()
        train_seconds += time.perf_counter() - start

    model.train = timed_train
    learn_seconds = 0.0
    for _ in range(updates):
        start = time.perf_counter()
        model.learn(total_timesteps=n_steps, reset_num_timesteps=False)
        learn_seconds += time.perf_counter() - start
        samples.append(int(model.num_timesteps))
        performance.append(score())
    return {"samples": samples, "performance": performance, "train_seconds": train_seconds,
            "collect_seconds": learn_seconds - train_seconds}
