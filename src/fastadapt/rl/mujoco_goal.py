"""ReacherGoal and AntGoal for model-free RL (ML3 Appendix C) on gymnasium's MuJoCo ``Reacher-v5`` and
``Ant-v5``, stepped on the host, and their rollouts as a JAX function (:func:`rollout_callback`).

A task is a goal g (2-d, Cartesian). Each step's reward is the paper's

    R_t = -d_t + c / (d_t + e) - ||a_t||,   (c, e) = (1, 0.001) for the reacher, (5, 0.25) for the ant,

with d_t the distance, after the step, from the fingertip (reacher) or the torso's centre (ant) to g, and
||a_t|| the Euclidean norm of the action applied (clipped to the action box [-1, 1]). The metrics are the
paper's: the reacher's trajectory sum of negative distances, -sum_t d_t; the ant's sum of the distance
covered, sum_t (d_0 - d_t).

Observations (the goal is part of them, as in the paper):

* reacher: Reacher-v5's own 10 numbers (cos and sin of the joint angles, the target's position, the joint
  velocities, fingertip minus target); the target is placed at g after each reset, and the joint angles
  start at gymnasium's +-0.1 rad reset noise.
* ant: Ant-v5 with the torso's x, y kept and the contact forces left out (29 numbers; the paper's ant
  also drops the external forces), then g and g minus the torso's x, y: 33 numbers. The ant is not reset
  when it flips (``terminate_when_unhealthy=False``): every rollout has the same length.

Rollouts run gymnasium's environments (``env.unwrapped.step``: the wrappers' checks cost more than the
reacher's physics) with the policy evaluated in numpy, all episodes of a batch stepped side by side. A
JAX computation gets them through ``jax.pure_callback`` (:func:`rollout_callback`): the rollouts are data,
never differentiated (the policy gradient of eq. 7-8 goes through log pi only).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from fastadapt.rl.envs import GoalError


@dataclasses.dataclass(frozen=True)
class GoalEnvSpec:
    """What a goal environment is: its gymnasium id and options, sizes, reward constants and goals."""

    name: str
    gym_id: str
    gym_kwargs: tuple
    obs_dim: int
    action_dim: int
    reward_scale: float  # c in c / (d + e)
    reward_offset: float  # e
    reach: float  # goals further than this from the origin are outside the workspace
    metric: str  # "distance" (reacher: -sum d_t) or "progress" (ant: sum d_0 - d_t)

    def make(self):
        import gymnasium as gym

        return gym.make(self.gym_id, **dict(self.gym_kwargs)).unwrapped


REACHER = GoalEnvSpec("reacher", "Reacher-v5", (), 10, 2, 1.0, 0.001, 0.2, "distance")
ANT = GoalEnvSpec("ant", "Ant-v5", (("include_cfrc_ext_in_observation", False),
                                    ("exclude_current_positions_from_observation", False),
                                    ("terminate_when_unhealthy", False)), 33, 8, 5.0, 0.25, 10.0, "progress")
SPECS = {"reacher": REACHER, "ant": ANT}


def goal_spec(name: str) -> GoalEnvSpec:
    if name not in SPECS:
        raise ValueError(f"unknown environment '{name}', expected one of {sorted(SPECS)}")
    return SPECS[name]


def check_goals(spec: GoalEnvSpec, goals) -> np.ndarray:
    """Goals [N, 2] as float64, or a GoalError naming what is wrong."""
    goals = np.asarray(goals, dtype=np.float64)
    if goals.ndim != 2 or goals.shape[1] != 2 or not np.all(np.isfinite(goals)):
        raise GoalError(f"goals must be finite, of shape [N, 2]; got shape {goals.shape}")
    far = np.linalg.norm(goals, axis=1) > spec.reach + 1e-9
    if np.any(far):
        raise GoalError(f"goal {goals[np.argmax(far)].tolist()} is outside the {spec.name}'s workspace "
                        f"(at most {spec.reach:g} from the origin)")
    return goals


def reward(spec: GoalEnvSpec, distance, action):
    """R = -d + c / (d + e) - ||clip(a)||, per step (numpy or JAX arrays, broadcasting)."""
    xp = jnp if isinstance(distance, jax.Array) else np
    applied = xp.clip(action, -1.0, 1.0)
    return -distance + spec.reward_scale / (distance + spec.reward_offset) - xp.sqrt(xp.sum(applied * applied, -1))


def metric(spec: GoalEnvSpec, distances):
    """The paper's performance of rollouts with distances [..., T + 1] (d_0 before the first step): the
    reacher's -sum_{t>=1} d_t, the ant's sum_{t>=1} (d_0 - d_t). Higher is better."""
    if spec.metric == "distance":
        return -distances[..., 1:].sum(-1)
    return (distances[..., :1] - distances[..., 1:]).sum(-1)


# --- one environment: reset to a goal, observe, measure ----------------------------------------------------
def reset(spec: GoalEnvSpec, env, goal, seed: int) -> np.ndarray:
    env.reset(seed=int(seed))
    if spec.name == "reacher":
        qpos, qvel = env.data.qpos.copy(), env.data.qvel.copy()
        qpos[-2:], qvel[-2:] = goal, 0.0
        env.set_state(qpos, qvel)
    env.fastadapt_goal = np.asarray(goal, dtype=np.float64)
    return observe(spec, env)


def observe(spec: GoalEnvSpec, env) -> np.ndarray:
    obs = env._get_obs()
    if spec.name == "ant":
        goal = env.fastadapt_goal
        obs = np.concatenate([obs, goal, goal - env.data.qpos[:2]])
    return obs


def distance(spec: GoalEnvSpec, env) -> float:
    if spec.name == "reacher":
        return float(np.linalg.norm((env.get_body_com("fingertip") - env.get_body_com("target"))[:2]))
    return float(np.linalg.norm(env.data.qpos[:2] - env.fastadapt_goal))


@functools.lru_cache(maxsize=8)
def _environments(spec: GoalEnvSpec, count: int) -> tuple:
    """``count`` environments of ``spec``, made once per process (MuJoCo models take a while to load)."""
    return tuple(spec.make() for _ in range(count))


def host_rollout(spec: GoalEnvSpec, act, goals, horizon: int, seed: int, noise_std=None) -> dict:
    """Episodes of ``horizon`` steps, one per goal, stepped side by side. ``act(obs [N, O]) -> mean [N, A]``;
    with ``noise_std`` [A] the action taken is mean + noise_std * N(0, 1) (a Gaussian policy), else the
    mean. Episode i resets with seed ``seed + i``; the noise comes from ``seed`` too, so a rollout is a
    function of its inputs. Returns obs [N, T, O] (before each action), actions [N, T, A] (as sampled;
    the environment applies them clipped to [-1, 1]), rewards [N, T] and distances [N, T + 1]."""
    goals = check_goals(spec, goals)
    count = goals.shape[0]
    envs = _environments(spec, count)
    rng = np.random.default_rng(int(seed))
    obs = np.stack([reset(spec, env, g, int(seed) + i) for i, (env, g) in enumerate(zip(envs, goals))])
    out = {"obs": np.zeros((count, horizon, spec.obs_dim)), "actions": np.zeros((count, horizon, spec.action_dim)),
           "rewards": np.zeros((count, horizon)), "distances": np.zeros((count, horizon + 1))}
    out["distances"][:, 0] = [distance(spec, env) for env in envs]
    for t in range(horizon):
        actions = np.asarray(act(obs), dtype=np.float64)
        if noise_std is not None:
            actions = actions + np.asarray(noise_std) * rng.standard_normal(actions.shape)
        out["obs"][:, t], out["actions"][:, t] = obs, actions
        applied = np.clip(actions, -1.0, 1.0)
        for i, env in enumerate(envs):
            env.step(applied[i])
            obs[i] = observe(spec, env)
            out["distances"][i, t + 1] = distance(spec, env)
    out["rewards"] = reward(spec, out["distances"][:, 1:], out["actions"])
    return out


# --- the same rollouts inside JAX ---------------------------------------------------------------------------
def numpy_mlp(layers, x):
    """:func:`fastadapt.models.mlp.apply_mlp` with tanh hidden layers, in numpy (the host's policy)."""
    for layer in layers[:-1]:
        x = np.tanh(x @ layer["w"] + layer["b"])
    return x @ layers[-1]["w"] + layers[-1]["b"]


def rollout_callback(spec: GoalEnvSpec, horizon: int, mean_layers, std, goals, seed, stochastic: bool) -> dict:
    """:func:`host_rollout` of the Gaussian policy N(MLP(obs), std) (tanh MLP ``mean_layers``; the mean
    only when not ``stochastic``) for goals [N, 2], called from JAX (works under jit, vmap and grad: the
    inputs are held constant, nothing is differentiated through the environment). Returns float32 arrays."""
    count = goals.shape[0]
    shapes = {"obs": (count, horizon, spec.obs_dim), "actions": (count, horizon, spec.action_dim),
              "rewards": (count, horizon), "distances": (count, horizon + 1)}

    def host(layers, noise, goals, seed):
        layers = jax.tree.map(lambda a: np.asarray(a, np.float64), layers)
        out = host_rollout(spec, functools.partial(numpy_mlp, layers), np.asarray(goals), horizon, int(seed),
                           np.asarray(noise, np.float64) if stochastic else None)
        return {k: v.astype(np.float32) for k, v in out.items()}

    inputs = jax.lax.stop_gradient((mean_layers, std, goals, seed))
    result = {k: jax.ShapeDtypeStruct(v, jnp.float32) for k, v in shapes.items()}
    return jax.pure_callback(host, result, *inputs, vmap_method="sequential")
