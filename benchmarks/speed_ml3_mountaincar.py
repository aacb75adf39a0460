"""ML3 MountainCar meta-training speed on the authors' protocol: fastadapt (JAX, ``fastadapt rl mountaincar
--paper``) against the authors' stack (PyTorch 2.13 + higher), timed side by side in one run.

One outer iteration as in the authors' ``meta_train_mountain_car`` (facebookresearch/LearningToLearn,
``ml3/ml3_train.py``), written out here in torch: their car (dt 0.1, friction 0.3 v, |u| <= 0.25, the
speed and position limits written into ``.data``), 35 steps of the bias-free 2 -> 200 -> 1 linear policy
from (-0.55, 0); the meta-loss g: 4 -> 400 -> 400 -> 1 (ELU, linear output) on [s_t, u_t, ||s_T - goal||]
with the rollout's states not detached; one inner SGD step (1e-3) from the fixed initial policy
(``higher.innerloop_ctx(copy_initial_weights=False)``), the shaped task loss (Frobenius norms, the
intermediate state for the first 15 states) after it, one Adam step (1e-3) on phi. The JAX side is the
same iteration on fastadapt's one meta-trainer (``meta_epoch``). One seed; outer iterations per second,
the implementations taking turns.

Needs: pip install -e '.[bench,rl]'.  Usage: python benchmarks/speed_ml3_mountaincar.py [--iterations 300 --rounds 3]
"""

from __future__ import annotations

import argparse

from turns import jax_epoch_runner, print_speedup, rates_taking_turns

RATE = 1e-3  # inner SGD and meta Adam, as the authors'
START, GOAL, INTERMEDIATE, HORIZON, SHAPED_STATES = (-0.55, 0.0), (0.5, 1.0375), (-0.947, -0.0055), 35, 15


def jax_runner(iterations):
    from fastadapt.config import build_config
    from fastadapt.experiments.rl import mountaincar
    from fastadapt.meta.algorithm import make_meta_optimizer

    config = build_config(mountaincar.Config(), [], paper=mountaincar.PAPER_KEYS)
    task = mountaincar.mountain_car_task(config, shaped=True)
    return jax_epoch_runner(task, mountaincar.meta_loss(config), make_meta_optimizer("adam", RATE), RATE, 1, iterations)


def torch_runner(iterations):
    import higher
    import torch

    def car_step(state, action):
        position, velocity = state[0], state[1]
        action = torch.clamp(action, -0.25, 0.25)
        velocity = velocity + (-9.8 * 0.2 * torch.cos(3.0 * position) + action / 0.2 - 0.3 * velocity) * 0.1
        position = position + velocity * 0.1
        if velocity.data > 1.5:
            velocity.data = torch.tensor(1.5)
        if velocity.data < -1.5:
            velocity.data = torch.tensor(-1.5)
        if position.data >= 0.5:
            position.data = torch.tensor(0.5)
        if position.data < -1.2:
            position.data = torch.tensor(-1.2)
        if position.data == -1.2 and velocity.data < 0:
            velocity.data = torch.tensor(0.0)
        return torch.stack([position.reshape(()), velocity.reshape(())])

    goal, intermediate = torch.tensor(GOAL), torch.tensor(INTERMEDIATE)

    def roll_out(policy):
        state, states, actions = torch.tensor(START), [torch.tensor(START)], []
        for _ in range(HORIZON):
            u = policy(state).clamp(-0.25, 0.25)
            state = car_step(state, u.squeeze()).clone()
            states.append(state.clone())
            actions.append(u.clone())
        distance = torch.norm(state - goal).detach().reshape(1)  # a constant, as the authors' torch.Tensor([...])
        return torch.stack(states), torch.stack(actions), torch.stack([distance] * HORIZON)

    torch.manual_seed(0)
    policy = torch.nn.Sequential(torch.nn.Linear(2, 200, bias=False), torch.nn.Linear(200, 1, bias=False))
    elu = torch.nn.ELU
    loss_net = torch.nn.Sequential(torch.nn.Linear(4, 400), elu(), torch.nn.Linear(400, 400), elu(), torch.nn.Linear(400, 1))
    inner_opt = torch.optim.SGD(policy.parameters(), lr=RATE)
    meta_opt = torch.optim.Adam(loss_net.parameters(), lr=RATE)

    def run(seed):
        for _ in range(iterations):
            meta_opt.zero_grad()
            inner_opt.zero_grad()
            with higher.innerloop_ctx(policy, inner_opt, copy_initial_weights=False) as (fpolicy, diffopt):
                states, actions, distances = roll_out(fpolicy)
                diffopt.step(loss_net(torch.cat([states[:-1], actions, distances], 1)).mean())
            states, _, _ = roll_out(fpolicy)
            task_loss = torch.norm(states[:SHAPED_STATES] - intermediate) + torch.norm(states[SHAPED_STATES:] - goal)
            task_loss.backward()
            meta_opt.step()

    return run


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=300, help="outer iterations per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import torch

    runners = {"jax (fastadapt)": jax_runner(args.iterations),
               f"torch {torch.__version__} + higher": torch_runner(args.iterations)}
    rates = rates_taking_turns(runners, args.rounds, args.iterations)
    print_speedup(rates, "outer iterations/s")
    print(f"seconds per {args.iterations}-iteration run: "
          + ", ".join(f"{name} {args.iterations / rate:.2f}" for name, rate in rates.items()))


if __name__ == "__main__":
    main()
