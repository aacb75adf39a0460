"""ML3 MBRL reacher meta-training speed on the authors' protocol: fastadapt (JAX, ``fastadapt rl mbrl-reacher
--paper``) against the authors' stack (PyTorch 2.13 + higher), timed side by side in one run.

One outer iteration as in the authors' ``meta_train_mbrl_reacher`` (facebookresearch/LearningToLearn,
``ml3/ml3_train.py``, ``optimizee.py``, ``mbrl_utils.py``), written out here in torch on the sizes of our
``--paper`` run so that both sides do the same arithmetic: the policy 8 -> 64 -> 64 -> 2 (tanh) on
[s (detached), goal state] / (1, 1, 8, 8, 1, 1, 1, 1), clamped; ``horizon`` steps under P, an ensemble of
3 probabilistic networks 6 -> 100 -> 30 -> (mean 2, softplus variance 2) on [s, u] / (1, 1, 8, 8, 1, 1)
predicting the change of velocity, integrated (v' = v + a, q' = q + dt v', clamped to +-3 and +-4); the
meta-loss softplus(7 -> 400 -> 400 -> 1, ELU) on [s_t, u_t, ||s_T - goal state||] (states and distance
detached); one inner SGD step (1e-4) from the fixed initial policy (``policy.reset()``, here a load of
the saved state from memory, not from disk; ``higher.innerloop_ctx(copy_initial_weights=False)``); the
dense task loss 10 ||q_T - q*|| + mean ||q_t - q*|| + 1e-4 mean ||qd_t|| under P after it; one Adam step
(1e-2) on phi. Their loop also writes the loss to disk every iteration; that is left out, so the torch
side here is if anything faster than their script. The JAX side is the same iteration on fastadapt's one
meta-trainer (``meta_epoch``).

Second, one refit of P on 520 transitions (the most a ``--paper`` seed holds): theirs, 500 epochs of
minibatches of 64 per member (Adam 1e-3, Gaussian NLL, each member on 2 of 3 folds); ours, the full-batch
Adam steps of ``model_fit_steps`` (2,000) per member, vmapped. A seed of ``--paper`` is 3,000 outer
iterations and 11 fits; the script prints both totals.

Needs: pip install -e '.[bench,rl]'.  Usage: python benchmarks/speed_ml3_mbrl_reacher.py [--iterations 300 --rounds 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from turns import jax_epoch_runner, print_speedup, rates_taking_turns

INNER_RATE, META_RATE, TRANSITIONS, FITS, OUTER = 1e-4, 1e-2, 520, 11, 3000


def paper_config():
    from fastadapt.config import build_config
    from fastadapt.experiments import registry

    experiment = registry.find("mbrl-reacher")
    return build_config(experiment.default_config(), [], paper=experiment.paper_keys())


def jax_runner(iterations):
    from fastadapt.experiments.rl import mbrl
    from fastadapt.meta.algorithm import make_meta_optimizer

    config = paper_config()
    task = mbrl.mbrl_task(config)
    return jax_epoch_runner(task, mbrl.meta_loss(config, task.env), make_meta_optimizer("adam", META_RATE), INNER_RATE,
                            1, iterations)


def torch_parts(horizon: int, dt: float):
    """The authors' networks and rollout under P, in torch (module docstring)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    policy_scale, model_scale = torch.tensor([1.0, 1, 8, 8, 1, 1, 1, 1]), torch.tensor([1.0, 1, 8, 8, 1, 1])

    class PModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.Sequential(nn.Linear(6, 100), nn.Tanh(), nn.Linear(100, 30), nn.Tanh())
            self.mean, self.var = nn.Linear(30, 2), nn.Sequential(nn.Linear(30, 2), nn.Softplus())

        def forward(self, x):
            y = self.layers(x)
            return torch.stack((self.mean(y), self.var(y).clamp_min(1e-3)))

    members = [PModel() for _ in range(3)]

    def ensemble(x):
        outputs = [m(x) for m in members]
        mean = sum(o[0] for o in outputs) / len(outputs)
        var = (sum(o[1] + o[0] * o[0] for o in outputs) / len(outputs) - mean * mean).clamp_min(1e-3)
        return torch.stack((mean, var))

    def step_model(state, u):
        acc = ensemble((torch.cat((state, u)) / model_scale)[None])[0].squeeze()
        vel = (state[2:] + acc).clamp(-4.0, 4.0)
        pos = (state[:2] + (state[2:] + acc) * dt).clamp(-3.0, 3.0)
        return torch.cat((pos, vel))

    policy = nn.Sequential(nn.Linear(8, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2))
    goal = torch.tensor([0.3, 1.2, 0.0, 0.0])

    def roll_out(fpolicy):
        state, states, actions = torch.zeros(4), [torch.zeros(4)], []
        for _ in range(horizon):
            u = fpolicy(torch.cat((state.detach(), goal)) / policy_scale).clamp(-1.0, 1.0)
            state = step_model(state, u).clone()
            states.append(state.clone())
            actions.append(u.clone())
        cost = torch.norm(state - goal).detach().unsqueeze(0)
        return torch.stack(states), torch.stack(actions), torch.stack([cost] * horizon)

    def task_loss(states):
        errors = torch.norm(states[:, :2] - goal[:2], dim=1)
        return 10 * errors[-1] + errors.mean() + 1e-4 * torch.norm(states[:, 2:], dim=1).mean()

    return {"members": members, "policy": policy, "roll_out": roll_out, "task_loss": task_loss}


def torch_runner(iterations, horizon: int, dt: float):
    import higher
    import torch
    from torch import nn

    parts = torch_parts(horizon, dt)
    policy, roll_out, task_loss = parts["policy"], parts["roll_out"], parts["task_loss"]
    initial = {k: v.clone() for k, v in policy.state_dict().items()}
    loss_net = nn.Sequential(nn.Linear(7, 400), nn.ELU(), nn.Linear(400, 400), nn.ELU(), nn.Linear(400, 1), nn.Softplus())
    meta_opt = torch.optim.Adam(loss_net.parameters(), lr=META_RATE)

    def run(seed):
        for _ in range(iterations):
            meta_opt.zero_grad()
            policy.load_state_dict(initial)
            inner_opt = torch.optim.SGD(policy.parameters(), lr=INNER_RATE)
            inner_opt.zero_grad()
            with higher.innerloop_ctx(policy, inner_opt, copy_initial_weights=False) as (fpolicy, diffopt):
                s, a, g = roll_out(fpolicy)
                diffopt.step(loss_net(torch.cat((torch.cat((s[:-1].detach(), a), 1), g.detach()), 1)).mean())
                s, _, _ = roll_out(fpolicy)
                loss = task_loss(s)
            loss.backward()
            meta_opt.step()

    return run


def torch_fit_seconds(rows: int) -> float:
    """One refit of the authors' ensemble: each member 500 epochs of minibatches of 64 on 2 of 3 folds."""
    import torch

    members = torch_parts(1, 0.05)["members"]
    rng = np.random.default_rng(0)
    x, y = torch.tensor(rng.normal(size=(rows, 6)), dtype=torch.float32), torch.tensor(rng.normal(size=(rows, 2)), dtype=torch.float32)
    folds = np.array_split(rng.permutation(rows), 3)
    start = time.perf_counter()
    for m, member in enumerate(members):
        keep = np.concatenate([f for i, f in enumerate(folds) if i != m])
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[keep], y[keep]), batch_size=64)
        optimizer = torch.optim.Adam(member.parameters(), lr=1e-3)
        for _ in range(500):
            for xb, yb in loader:
                out = member(xb)
                loss = torch.mean(0.5 * torch.log(out[1]) + 0.5 * (out[0] - yb) ** 2 / out[1])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    return time.perf_counter() - start


def jax_fit_seconds(rows: int) -> float:
    """One refit of our ensemble (``rl.rollout.fit_model``) on ``rows`` transitions, after a warm-up fit."""
    import jax

    from fastadapt.experiments.rl import mbrl
    from fastadapt.rl.rollout import add_transitions, fit_model

    config = paper_config()
    task = mbrl.mbrl_task(config)
    states, actions = mbrl.babbling_rollouts(task.env, jax.random.PRNGKey(1), rows // config.horizon, config.horizon)
    buffer = add_transitions(task.buffer, *task.model.transitions(states, actions))
    jax.block_until_ready(fit_model(task.model, task.model_params, buffer, task.fit_steps, task.fit_rate))
    start = time.perf_counter()
    jax.block_until_ready(fit_model(task.model, task.model_params, buffer, task.fit_steps, task.fit_rate))
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=300, help="outer iterations per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import torch

    config = paper_config()
    from fastadapt.experiments.rl import mbrl

    dt = mbrl.system(config).dt
    runners = {"jax (fastadapt)": jax_runner(args.iterations),
               f"torch {torch.__version__} + higher": torch_runner(args.iterations, config.horizon, dt)}
    rates = rates_taking_turns(runners, args.rounds, args.iterations)
    print_speedup(rates, "outer iterations/s")
    fits = {"jax (fastadapt)": jax_fit_seconds(TRANSITIONS), f"torch {torch.__version__} + higher": torch_fit_seconds(TRANSITIONS)}
    print(f"\none refit of P on {TRANSITIONS} transitions: "
          + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in fits.items()))
    totals = {name: OUTER / rates[name] + FITS * fits[name] for name in rates}
    print(f"a --paper seed ({OUTER} outer iterations, {FITS} fits of P): "
          + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in totals.items())
          + f"; {totals[list(totals)[1]] / totals[list(totals)[0]]:.1f}x")


if __name__ == "__main__":
    main()
