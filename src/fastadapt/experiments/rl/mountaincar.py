"""ML3 shaping with intermediate goals on MountainCar (paper section 4.2.3, Fig. 6 a, b), on the one
meta-trainer, against iLQR.

The system is gymnax's ``MountainCarContinuous-v0`` with its transition gradients on
(``with_transition_gradients()``): v' = clip(v + 0.0015 u - 0.0025 cos(3 p)), p' = clip(p + v'), u in
[-1, 1]. A policy step holds its action for ``action_repeat`` of these steps (the gymnax car needs about 100
steps to climb; ``horizon`` policy steps of ``action_repeat`` each). The car starts at rest at
``start_position`` (in the valley) and must reach ``goal_position`` (0.45, the top of the right hill):
pushing towards the goal alone never gets there, the car must first swing back up the left hill.

The policy is linear in the features, squashed: u = tanh(W features(s) + b) (the authors' is linear and
clamped), features (p + 0.3) / 0.9 and v / 0.07.
The meta-loss M_phi sees (features(s_t), u_t, goal) along the rollout (as in MBRL, the states are constants
to it). Two losses are meta-trained (Algorithm 1, eq. 9), differing only in the task loss:

* **shaped**: L_T = mean over the first half of the rollout of |p_t - p_intermediate| + mean over the
  second half of |p_t - p_goal|: an intermediate goal on the left hill, given only at meta-train time;
* **unshaped**: L_T = mean over the rollout of |p_t - p_goal|.

At meta-test both only get the rollout and the goal. The score is the final distance max(p_goal - p_T, 0)
(Fig. 6b). Baselines: gradient descent on the unshaped task loss through the car's dynamics ("task
loss"), and iLQR on the open-loop actions with the cost sum_t (p_t - p_goal)^2 + 0.01 u_t^2 (+ 10 (p_T -
p_goal)^2 at the end), which, being local, settles in the valley (Fig. 6a: its trajectory).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fastadapt.experiments.output import finish, markdown_table, prepare
from fastadapt.validation import require_at_least
from fastadapt.losses.regression import LearnedRateLoss
from fastadapt.meta.algorithm import learning_curve
from fastadapt.meta.trainer import TrainerConfig
from fastadapt.meta.evaluation import SHAPED_LOSSES, shaped_and_unshaped, shaped_summary
from fastadapt.rl.ilqr import Problem, ilqr
from fastadapt.rl.mountain_car import LinearPolicy, MountainCar
from fastadapt.losses.policy import ModelTaskLoss, PolicyMetaLoss
from fastadapt.rl.rollout import rollout


@dataclasses.dataclass(frozen=True)
class Config(TrainerConfig):
    """The trainer's keys (1000 outer iterations with Adam on phi at 1e-3, as the authors') and the task's."""

    alpha: float = 0.05
    eta: float = 1e-3
    meta_optimizer: str = "adam"
    meta_clip: float = 1.0
    iters_max: int = 3
    epochs: int = 100
    batches_per_epoch: int = 10
    seeds: int = 3
    eval_every: int = 10
    eval_steps: int = 30
    eval_seeds: int = 5
    horizon: int = 50  # policy steps per episode
    action_repeat: int = 4  # environment steps per policy step
    start_position: float = -0.5  # the car's start
    goal_position: float = 0.45  # the goal at the top of the right hill
    # the intermediate goal on the left hill that the shaped loss is meta-trained with
    intermediate_position: float = -0.9
    loss_hidden: tuple[int, ...] = (64, 64)  # hidden layer widths of the meta-loss network
    learned_rate: bool = True  # learn the inner step size with the loss
    ilqr_iterations: int = 30  # iLQR iterations of the expert that the task loss uses

    def __post_init__(self):
        object.__setattr__(self, "loss_hidden", tuple(int(h) for h in self.loss_hidden))
        super().__post_init__()
        require_at_least(self, 1, "horizon", "action_repeat", "loss_hidden", "ilqr_iterations")
        require_at_least(self, 2, "horizon")
        for name in ("start_position", "goal_position", "intermediate_position"):
            value = getattr(self, name)
            if not -1.2 <= value <= 0.6:
                raise ValueError(f"config field '{name}' ({value}) is outside the track [-1.2, 0.6]")
        if self.goal_position <= self.start_position:
            raise ValueError(f"config field 'goal_position' ({self.goal_position}) must lie right of 'start_position' "
                             f"({self.start_position})")


def quick(config: Config) -> Config:
    return dataclasses.replace(config, epochs=4, eval_every=2, seeds=2, eval_steps=6, eval_seeds=2, batches_per_epoch=4,
                               loss_hidden=(16,), ilqr_iterations=3)


@dataclasses.dataclass(frozen=True)
class MountainCarTask:
    """One task (the start and the goal are fixed); a batch is a placeholder."""

    start_state: jnp.ndarray
    goal: jnp.ndarray
    intermediate: jnp.ndarray
    shaped: jnp.ndarray  # 1.0: the shaped task loss, 0.0: the unshaped one
    car: MountainCar
    policy: LinearPolicy
    horizon: int

    eval_splits = ("meta-train", "meta-test")  # the same task; the runs differ in their policies' initialisations
    default_batches = 10
    baseline_loss = ModelTaskLoss()

    def rollout(self, theta):
        return rollout(self.car.step, self.policy, theta, self.start_state, self.goal, self.horizon)

    def start(self, key):
        return self.policy.init(key)

    def meta_batches(self, key, count):
        return jnp.zeros(count), jnp.zeros(count)

    def unshaped_loss(self, positions):
        return jnp.mean(jnp.abs(positions - self.goal))

    def shaped_loss(self, positions):
        half = positions.shape[0] // 2
        return jnp.mean(jnp.abs(positions[:half] - self.intermediate)) + jnp.mean(jnp.abs(positions[half:] - self.goal))

    def loss_inputs(self, theta, batch):
        states, _ = self.rollout(theta)
        constant = jax.lax.stop_gradient(states[:-1])
        actions = self.policy.apply(theta, constant, self.goal)
        extra = {"states": self.car.features(constant), "model_task_loss": self.unshaped_loss(states[1:, 0])}
        return actions, jnp.reshape(self.goal, (1,)), extra

    def task_loss(self, theta, batch):
        positions = self.rollout(theta)[0][1:, 0]
        return jnp.where(self.shaped > 0, self.shaped_loss(positions), self.unshaped_loss(positions))

    def score(self, theta, _):
        """The final distance to the goal, max(p_goal - p_T, 0)."""
        return jnp.maximum(self.goal - self.rollout(theta)[0][-1, 0], 0.0)

    def eval_problem(self, split: str, key, index, steps: int):
        return self.start(key), jnp.zeros(steps), jnp.zeros(())

    def saved_arrays(self) -> dict:
        return {}


jax.tree_util.register_dataclass(MountainCarTask, data_fields=["start_state", "goal", "intermediate", "shaped"],
                                 meta_fields=["car", "policy", "horizon"])


def mountain_car_task(config: Config, shaped: bool) -> MountainCarTask:
    car = MountainCar(config.action_repeat)
    return MountainCarTask(jnp.asarray([config.start_position, 0.0]), jnp.asarray(config.goal_position),
                           jnp.asarray(config.intermediate_position), jnp.asarray(1.0 if shaped else 0.0),
                           car, LinearPolicy(car), config.horizon)


def meta_loss(config: Config):
    loss = PolicyMetaLoss(2, 1, 1, config.loss_hidden)
    return LearnedRateLoss(loss) if config.learned_rate else loss


def ilqr_baseline(config: Config):
    """iLQR on the open-loop actions (from zero): the final distance after each iteration and the final
    trajectory's positions."""
    task = mountain_car_task(config, shaped=False)
    goal = config.goal_position
    problem = Problem(task.car.step, lambda x, u: (x[0] - goal) ** 2 + 0.01 * u @ u,
                      lambda x: 10.0 * (x[0] - goal) ** 2)
    solution = ilqr(problem, task.start_state, jnp.zeros((config.horizon, 1)), iterations=config.ilqr_iterations)
    finals = [max(goal - float(x[0]), 0.0) for x in solution.finals]
    return finals, np.asarray(solution.states[:, 0])


def run(config: Config, directory, progress: bool = True, log=print) -> dict:
    """Meta-train the shaped and the unshaped loss (resumable), then Fig. 6 a and b."""
    from fastadapt.experiments.rl.figures import mountain_car_figures

    directory = prepare(directory)
    out = shaped_and_unshaped(config, lambda shaped: mountain_car_task(config, shaped), meta_loss(config), directory,
                              jax.random.PRNGKey(config.seed + 99), progress)
    curves = {("task loss" if name == "MSE" else name): c for name, c in out["curves"].items()}
    ilqr_finals, ilqr_positions = ilqr_baseline(config)
    task = out["task"]
    positions = {}
    for name in SHAPED_LOSSES:  # a policy trained by each loss's selected seed
        theta0 = task.start(jax.random.PRNGKey(config.seed + 7))
        _, theta = learning_curve(task, meta_loss(config), out["params"][name], config.alpha, theta0,
                                  jnp.zeros(config.eval_steps), jnp.zeros(()))
        positions[name] = np.asarray(task.rollout(theta)[0][:, 0])
    positions["iLQR"] = ilqr_positions
    summary = shaped_summary({**{n: curves[n] for n in SHAPED_LOSSES}, "MSE": curves["task loss"]})
    summary["task loss"] = summary.pop("MSE")
    summary["iLQR"] = ilqr_finals[-1]
    solved = {n: float(np.mean(curves[n][..., -1] <= 0.0)) for n in SHAPED_LOSSES}
    figures = mountain_car_figures(directory, config, curves, ilqr_finals, positions)
    metrics = {"final_distance": summary, "solved_fraction": solved, "ilqr_final_distance": ilqr_finals,
               "outer_iterations": config.epochs * out["batches"]}
    fmt = lambda s: f"{s['mean']:.3g} +- {s['std']:.2g}" if isinstance(s, dict) else f"{s:.3g}"
    rows = [[n, fmt(summary[n]), f"{solved[n]:.0%}" if n in solved else ""] for n in (*SHAPED_LOSSES, "task loss", "iLQR")]
    body = [
        f"Start at rest at p = {config.start_position:g}, goal p = {config.goal_position:g}; the shaped loss's "
        f"intermediate goal p = {config.intermediate_position:g} (meta-train only). {config.horizon} policy steps of "
        f"{config.action_repeat} car steps. ML3: {config.eval_seeds} fresh policies per seed, {config.eval_steps} "
        f"updates at alpha = {config.alpha:g} (mean +- std over {config.seeds} seeds); task loss: gradient descent "
        f"on the unshaped task loss through the car; iLQR: {config.ilqr_iterations} iterations on the open-loop "
        f"actions. Solved: the car at the goal at the end.", "",
        markdown_table(["method", "final distance to the goal", "solved"], rows),
    ]
    return finish(directory, "ML3 shaping with intermediate goals: MountainCar (Fig. 6 a, b)", metrics, body, figures, log)
