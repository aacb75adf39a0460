"""Model-free RL: what one policy update costs per environment sample, the learned loss (ML3, one SGD step
on M_phi, jitted) against plain policy gradient (one SGD step on the surrogate) and PPO (sbx: its
``train()``, ``n_epochs`` passes of minibatches over the rollout buffer), next to what collecting the
samples costs (gymnasium MuJoCo stepped on the host with the policy in numpy, and sbx's own collection).

All methods update on the same number of samples (``episodes`` x ``horizon``, one batch), measured side by
side in one run, rounds interleaved (the machine is shared and noisy); medians over rounds, and the
ratios to ML3's update.

Usage: python benchmarks/rl_update_cost.py [--env reacher|ant] [--rounds 20] [--episodes 10] [--horizon 50]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="reacher", choices=("reacher", "ant"))
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--horizon", type=int, default=50)
    args = parser.parse_args()

    from sbx import PPO

    from fastadapt.experiments.rl import mfrl
    from fastadapt.rl.mujoco_goal import host_rollout, numpy_mlp
    from fastadapt.rl.ppo import make_goal_env

    config = mfrl.Config(env=args.env, episodes=args.episodes, horizon=args.horizon,
                         goal_radius=0.15 if args.env == "reacher" else 1.0)
    task, loss = mfrl.mfrl_task(config), mfrl.meta_loss(config)
    phi, theta = loss.init(jax.random.PRNGKey(0)), task.start(jax.random.PRNGKey(1))
    goal = np.asarray(task.test_goals[0])
    samples = config.samples_per_update
    layers = jax.tree.map(np.asarray, theta["mean"])
    std = np.exp(np.asarray(theta["log_std"]))

    def collect(seed):
        return host_rollout(task.spec, lambda o: numpy_mlp(layers, o), np.repeat(goal[None], args.episodes, 0),
                            args.horizon, seed, std)

    def inputs(out):
        rewards = jnp.asarray(out["rewards"])
        to_go = jnp.cumsum(rewards[:, ::-1], 1)[:, ::-1]
        norm = lambda v: (v - v.mean()) / (v.std() + 1e-6)
        return jnp.asarray(out["obs"]), jnp.asarray(out["actions"]), {
            "states": jnp.asarray(out["obs"]), "returns": norm(to_go),
            "advantage": jnp.broadcast_to(norm(to_go[:, :1]), to_go.shape)}

    def make_step(the_loss, params):
        def objective(th, obs, actions, extra):
            mu, sigma = task.policy.apply(th, obs)
            return the_loss.apply(params, {"mu": mu, "sigma": sigma}, actions, extra)

        @jax.jit
        def step(th, obs, actions, extra):
            grads = jax.grad(objective)(th, obs, actions, extra)
            return jax.tree.map(lambda p, g: p - config.alpha * g, th, grads)
        return step

    steps = {"ML3": make_step(loss, phi), "policy gradient": make_step(task.baseline_loss, {})}
    batch = inputs(collect(0))
    for step in steps.values():
        jax.block_until_ready(step(theta, *batch))  # compile

    ppo = PPO("MlpPolicy", make_goal_env(task.spec, goal, args.horizon), n_steps=samples, batch_size=100,
              n_epochs=10, seed=0, verbose=0, policy_kwargs={"net_arch": list(config.policy_hidden)})
    ppo.learn(total_timesteps=samples)  # compile
    from stable_baselines3.common.callbacks import BaseCallback

    class _Noop(BaseCallback):
        def _on_step(self):
            return True

    noop = _Noop()
    noop.init_callback(ppo)

    times = {k: [] for k in ("collect (host MuJoCo + numpy policy)", "ML3 update", "policy-gradient update",
                             "PPO collect (sbx)", "PPO update (sbx train)")}
    for r in range(args.rounds):
        start = time.perf_counter()
        out = collect(r + 1)
        times["collect (host MuJoCo + numpy policy)"].append(time.perf_counter() - start)
        batch = inputs(out)
        for name, key in (("ML3", "ML3 update"), ("policy gradient", "policy-gradient update")):
            start = time.perf_counter()
            jax.block_until_ready(steps[name](theta, *batch))
            times[key].append(time.perf_counter() - start)
        start = time.perf_counter()
        ppo.collect_rollouts(ppo.env, noop, ppo.rollout_buffer, n_rollout_steps=samples)
        times["PPO collect (sbx)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        ppo.train()
        times["PPO update (sbx train)"].append(time.perf_counter() - start)

    ml3 = np.median(times["ML3 update"])
    print(f"{args.env}: {samples} samples per update ({args.episodes} episodes x {args.horizon} steps), "
          f"{args.rounds} rounds, medians")
    print(f"{'part':40s} {'ms per update':>14s} {'us per sample':>14s} {'x ML3 update':>13s}")
    for name, values in times.items():
        m = float(np.median(values))
        print(f"{name:40s} {1e3 * m:14.2f} {1e6 * m / samples:14.2f} {m / ml3:13.1f}")


if __name__ == "__main__":
    main()
