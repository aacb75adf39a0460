"""AntGoal's physics on the host (gymnasium's Ant-v5, MuJoCo in C, as ``fastadapt rl mfrl-ant`` steps it)
against MuJoCo XLA (``mujoco.mjx``, batched under ``vmap`` and compiled), timed side by side in one run:
is ``scale=full`` (1000-step episodes, 10 per update) within reach of MJX on this machine?

Both step gymnasium's own ``ant.xml`` with Ant-v5's frame skip (5 physics steps of 0.01 s per action)
and reset (qpos0 + U(-0.1, 0.1), qvel 0.1 N(0, 1)), ``--envs`` environments side by side, uniform random
actions in [-1, 1]. MJX is timed twice: with the model's own solver settings (what the host computes)
and with ``opt.iterations=1, opt.ls_iterations=4`` (the cheap solver MJX's own RL examples train with,
another physics). The script also prints how far MJX's torso ends from the host's after 1, 5 and 20
steps from one shared state and the same actions (MJX's contacts are not MuJoCo's).

Needs: pip install -e '.[bench,rl]'.  Usage: python benchmarks/mjx_ant_steps.py [--envs 16 --steps 100 --rounds 2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

FRAME_SKIP, RESET_NOISE = 5, 0.1


def ant_model(cheap_solver: bool = False):
    import gymnasium
    import mujoco

    model = mujoco.MjModel.from_xml_path(os.path.join(os.path.dirname(gymnasium.__file__), "envs", "mujoco", "assets",
                                                      "ant.xml"))
    if cheap_solver:
        model.opt.iterations, model.opt.ls_iterations = 1, 4
    return model


def mjx_runner(envs: int, steps: int, cheap_solver: bool):
    """run(seed): ``steps`` batched environment steps of ``envs`` ants from Ant-v5's reset, in one jit."""
    import jax
    import jax.numpy as jnp
    from mujoco import mjx

    model = ant_model(cheap_solver)
    mx = mjx.put_model(model)

    def reset(key):
        pos_key, vel_key = jax.random.split(key)
        qpos = jnp.asarray(model.qpos0) + jax.random.uniform(pos_key, (model.nq,), minval=-RESET_NOISE, maxval=RESET_NOISE)
        return mjx.forward(mx, mjx.make_data(mx).replace(qpos=qpos, qvel=RESET_NOISE * jax.random.normal(vel_key, (model.nv,))))

    def step(data, action):
        data = data.replace(ctrl=action)
        return jax.lax.fori_loop(0, FRAME_SKIP, lambda _, d: mjx.step(mx, d), data)

    @jax.jit
    def roll(key):
        reset_key, action_key = jax.random.split(key)
        data = jax.vmap(reset)(jax.random.split(reset_key, envs))
        actions = jax.random.uniform(action_key, (steps, envs, model.nu), minval=-1.0, maxval=1.0)
        data, _ = jax.lax.scan(lambda d, a: (jax.vmap(step)(d, a), None), data, actions)
        return data.qpos

    def run(seed):
        jax.block_until_ready(roll(jax.random.PRNGKey(seed)))

    return run, step


def host_runner(envs: int, steps: int):
    """run(seed): the same steps on gymnasium's Ant-v5 (``unwrapped.step``, as the host rollouts do)."""
    from fastadapt.rl.mujoco_goal import ANT

    environments = [ANT.make() for _ in range(envs)]

    def run(seed):
        rng = np.random.default_rng(seed)
        for i, env in enumerate(environments):
            env.reset(seed=seed + i)
        for _ in range(steps):
            actions = rng.uniform(-1.0, 1.0, (envs, 8))
            for env, action in zip(environments, actions):
                env.step(action)

    return run


def divergence(step, checkpoints=(1, 5, 20)) -> dict:
    """Max |torso x, y| difference between MJX and the host after each checkpoint, from one state."""
    import jax
    import jax.numpy as jnp
    from mujoco import mjx

    from fastadapt.rl.mujoco_goal import ANT

    env = ANT.make()
    env.reset(seed=0)
    model = ant_model()
    mx = mjx.put_model(model)
    data = mjx.forward(mx, mjx.make_data(mx).replace(qpos=jnp.asarray(env.data.qpos, jnp.float32),
                                                     qvel=jnp.asarray(env.data.qvel, jnp.float32)))
    step = jax.jit(step)
    actions = np.random.default_rng(0).uniform(-1.0, 1.0, (max(checkpoints), 8))
    out = {}
    for t, action in enumerate(actions, 1):
        env.step(action)
        data = step(data, jnp.asarray(action, jnp.float32))
        if t in checkpoints:
            out[t] = float(np.abs(np.asarray(data.qpos[:2]) - env.data.qpos[:2]).max())
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--envs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=100, help="environment steps per timed round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from turns import rates_taking_turns

    exact, exact_step = mjx_runner(args.envs, args.steps, cheap_solver=False)
    cheap, _ = mjx_runner(args.envs, args.steps, cheap_solver=True)
    runners = {"host (gymnasium Ant-v5, MuJoCo C)": host_runner(args.envs, args.steps), "mjx, the model's solver": exact,
               "mjx, iterations=1 ls_iterations=4": cheap}
    start = time.perf_counter()
    rates = rates_taking_turns(runners, args.rounds, args.envs * args.steps)
    print(f"{args.envs} environments, {args.steps} steps per round, {args.rounds} rounds ({time.perf_counter() - start:.0f} s "
          "with compilation)")
    print("| implementation | env-steps/s (median of rounds) | x host |\n|---|---|---|")
    host = rates[next(iter(rates))]
    for name, rate in rates.items():
        print(f"| {name} | {rate:.0f} | {rate / host:.2f} |")
    full = 1000 * 10 * 4 * 10 * 100  # scale=full: 1000 steps x 10 episodes x (3 + 1) rollouts x 10 goals x 100 epochs
    print(f"\nscale=full meta-training rolls out {full:,} env-steps: "
          + ", ".join(f"{name} {full / rate / 3600:.1f} h" for name, rate in rates.items()))
    print("MJX's torso (x, y) against the host's from one state, same actions: "
          + ", ".join(f"after {t} steps {d:.2g} m" for t, d in divergence(exact_step).items()))


if __name__ == "__main__":
    main()
