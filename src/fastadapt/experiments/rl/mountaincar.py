"""ML3 shaping with intermediate goals on MountainCar (paper section 4.2.3, Fig. 6 a, b), on the one
meta-trainer, against iLQR, on two protocols (``protocol``).

**protocol=paper** (``--paper``: ``PAPER_KEYS``): the ML3 authors' code (facebookresearch/LearningToLearn,
``ml3/experiments/run_mountain_car_exp.py``, ``ml3_train.py``, ``optimizee.py``, ``learnable_losses.py``):

* their car (:class:`~fastadapt.rl.mountain_car.FrictionMountainCar`: dt 0.1, friction, |u| <= 0.25,
  straight-through limits), 35 steps from (-0.55, 0) towards the goal *state* (0.5, 1.0375);
* their policy u = clip(W2 W1 s, +-0.25), 2 -> 200 -> 1 without biases, on the raw state;
* **one initial policy theta_0 per seed, shared by meta-training and meta-test** (``higher`` with
  ``copy_initial_weights=False`` and an inner optimizer that never steps the real policy: every outer
  iteration starts again from theta_0);
* their meta-loss M_phi = mean_t g_phi([s_t, u_t, ||s_T - goal||]), g 4 -> 400 -> 400 -> 1 ELU with a
  linear output and torch's initialisation, where s_t and u_t are the rollout's own, so that the inner
  gradient grad_theta M_phi runs through the car (the final distance is a constant);
* their task losses, Frobenius norms over all 36 states S = (s_0 .. s_35):
  unshaped L_T = ||S - goal||_F, shaped L_T = ||S[:15] - s_int||_F + ||S[15:] - goal||_F with the
  intermediate state s_int = (-0.947, -0.0055) given at meta-train time only;
* one inner SGD step at alpha = 1e-3 per outer iteration, Adam at 1e-3 on phi, 1,000 outer iterations
  (the script's ``n_outer_iter``); meta-test: SGD at 1e-3 on M_phi from the same theta_0 (their test runs
  2 updates; the curves here run ``eval_steps`` and the report reads them after 1, 2, 5 and all).

Each seed s meta-trains with its own theta_0 (``seed + s``) in a subdirectory of its own, since the start
is a property of the task; a seed's evaluation runs are all the same run (``eval_seeds=1``).

**protocol=general** (the default, ours and stricter): a fresh random policy for every outer iteration
and every meta-test run. The system is gymnax's ``MountainCarContinuous-v0`` with its transition gradients
on (``with_transition_gradients()``): v' = clip(v + 0.0015 u - 0.0025 cos(3 p)), p' = clip(p + v'), u in
[-1, 1]. A policy step holds its action for ``action_repeat`` of these steps (the gymnax car needs about 100
steps to climb; ``horizon`` policy steps of ``action_repeat`` each). The car starts at rest at
``start_position`` (in the valley) and must reach ``goal_position`` (0.45, the top of the right hill):
pushing towards the goal alone never gets there, the car must first swing back up the left hill.
The policy is linear in the features, squashed: u = tanh(W features(s) + b) (not the authors' linear and
clipped one), features (p + 0.3) / 0.9 and v / 0.07. The meta-loss M_phi sees (features(s_t), u_t, goal)
along the rollout, the states constants to it (u_t recomputed from them, so its gradient is the policy's
only), with a softplus output and a learned step size; 100 epochs x 10 outer iterations of 3 inner steps.
The task losses, on positions only:

* **shaped**: L_T = mean over the first half of the rollout of |p_t - p_intermediate| + mean over the
  second half of |p_t - p_goal|: an intermediate goal on the left hill, given only at meta-train time;
* **unshaped**: L_T = mean over the rollout of |p_t - p_goal|.

On both protocols, at meta-test both losses only get the rollout (and the goal, or the final distance).
The score is the final distance max(p_goal - p_T, 0) (Fig. 6b); solved: 0. Baselines: gradient descent on
the unshaped task loss through the car's dynamics ("task loss", at alpha and, as a labelled upper bound,
at the best of ``baseline_rates`` x alpha on the evaluation problem itself), and iLQR on the open-loop
actions with the cost sum_t (p_t - p_goal)^2 + 0.01 u_t^2 (+ 10 (p_T - p_goal)^2 at the end), which, being
local, settles in the valley (Fig. 6a: its trajectory).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fastadapt.experiments.output import finish, markdown_table, prepare
from fastadapt.validation import require_at_least, require_choice, require_nonempty, require_positive_rates
from fastadapt.losses.regression import LearnedRateLoss
from fastadapt.meta.algorithm import learning_curve
from fastadapt.meta.trainer import TrainerConfig
from fastadapt.meta.evaluation import SHAPED_LOSSES, fresh_start_curves, shaped_and_unshaped
from fastadapt.rl.ilqr import Problem, ilqr
from fastadapt.rl.mountain_car import ClampedLinearPolicy, FrictionMountainCar, LinearPolicy, MountainCar
from fastadapt.losses.policy import ModelTaskLoss, PolicyMetaLoss
from fastadapt.models.mlp import INITS
from fastadapt.rl.rollout import rollout

PROTOCOLS = ("general", "paper")
REPORTED_UPDATES = (0, 1, 2, 5)  # the report reads the curves after these updates (and after the last)
# gradient descent on the task loss at its best rate on the evaluation runs themselves: an upper bound
TUNED = "task loss, best rate (upper bound)"


@dataclasses.dataclass(frozen=True)
class Config(TrainerConfig):
    """The trainer's keys and the task's. Defaults: ours (``protocol=general``); ``PAPER_KEYS`` the
    authors'."""

    # general: a fresh policy per outer iteration, gymnax's car; paper: the authors' car, policy, meta-loss
    # inputs and task losses, one fixed initial policy per seed (module docstring; --paper sets it with
    # the authors' numbers)
    protocol: str = "general"
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
    action_repeat: int = 4  # environment steps per policy step (general protocol)
    start_position: float = -0.5  # the car's start
    goal_position: float = 0.45  # the goal at the top of the right hill
    # the intermediate goal on the left hill that the shaped loss is meta-trained with
    intermediate_position: float = -0.9
    goal_velocity: float = 1.0375  # paper protocol: the goal state's velocity
    intermediate_velocity: float = -0.0055  # paper protocol: the intermediate state's velocity
    shaped_states: int = 15  # paper protocol: the first states whose target is the intermediate state
    loss_hidden: tuple[int, ...] = (64, 64)  # hidden layer widths of the meta-loss network
    loss_init: str = "lecun"  # the meta-loss network's initialisation (lecun, xavier, torch)
    learned_rate: bool = True  # learn the inner step size with the loss
    baseline_rates: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0)  # the task loss's rates (x alpha) tried
    shown_updates: int = 0  # the trajectories figure shows policies after this many updates (0: eval_steps)
    ilqr_iterations: int = 30  # iLQR iterations of the expert that the task loss uses
    # paper protocol: also train from this many fresh random policies per seed (the "why" figure; 0: not)
    fresh_runs: int = 0

    def __post_init__(self):
        object.__setattr__(self, "loss_hidden", tuple(int(h) for h in self.loss_hidden))
        object.__setattr__(self, "baseline_rates", tuple(float(r) for r in self.baseline_rates))
        super().__post_init__()
        require_choice(self, "protocol", PROTOCOLS)
        require_choice(self, "loss_init", INITS)
        require_at_least(self, 1, "horizon", "action_repeat", "loss_hidden", "ilqr_iterations", "shaped_states")
        require_nonempty(self, "baseline_rates")
        require_positive_rates(self, "baseline_rates")
        require_at_least(self, 2, "horizon")
        require_at_least(self, 0, "shown_updates", "fresh_runs")
        for name in ("start_position", "goal_position", "intermediate_position"):
            value = getattr(self, name)
            if not -1.2 <= value <= 0.6:
                raise ValueError(f"config field '{name}' ({value}) is outside the track [-1.2, 0.6]")
        if self.goal_position <= self.start_position:
            raise ValueError(f"config field 'goal_position' ({self.goal_position}) must lie right of 'start_position' "
                             f"({self.start_position})")
        if self.protocol == "paper" and self.shaped_states > self.horizon:
            raise ValueError(f"config field 'shaped_states' ({self.shaped_states}) must not exceed 'horizon' "
                             f"({self.horizon}): the shaped loss needs states after the intermediate ones")
        if self.shown_updates > self.eval_steps:
            raise ValueError(f"config field 'shown_updates' ({self.shown_updates}) must not exceed 'eval_steps' "
                             f"({self.eval_steps})")


# the authors' protocol (module docstring), as key=value overrides (--paper)
PAPER_KEYS = ("protocol=paper", "horizon=35", "action_repeat=1", "start_position=-0.55", "goal_position=0.5",
              "intermediate_position=-0.947", "goal_velocity=1.0375", "intermediate_velocity=-0.0055",
              "shaped_states=15", "alpha=0.001", "eta=0.001", "meta_optimizer=adam", "meta_clip=0", "iters_max=1",
              "loss_hidden=400,400", "loss_init=torch", "learned_rate=false", "epochs=100", "batches_per_epoch=10",
              "seeds=5", "eval_every=10", "eval_steps=20", "eval_seeds=1", "keep=final", "shown_updates=2",
              "fresh_runs=10")


def quick(config: Config) -> Config:
    return dataclasses.replace(config, epochs=4, eval_every=2, seeds=2, eval_steps=6, eval_seeds=2, batches_per_epoch=4,
                               loss_hidden=(16,), ilqr_iterations=3, shown_updates=min(config.shown_updates, 6))


@dataclasses.dataclass(frozen=True)
class MountainCarTask:
    """One task (the start and the goal are fixed); a batch is a placeholder. The general protocol: a
    fresh policy for every outer iteration, positions only, the states constants to the meta-loss."""

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

    def goal_position(self):
        return self.goal

    def score(self, theta, _):
        """The final distance to the goal, max(p_goal - p_T, 0)."""
        return jnp.maximum(self.goal_position() - self.rollout(theta)[0][-1, 0], 0.0)

    def eval_problem(self, split: str, key, index, steps: int):
        return self.start(key), jnp.zeros(steps), jnp.zeros(())

    def saved_arrays(self) -> dict:
        return {}


jax.tree_util.register_dataclass(MountainCarTask, data_fields=["start_state", "goal", "intermediate", "shaped"],
                                 meta_fields=["car", "policy", "horizon"])


@dataclasses.dataclass(frozen=True)
class FixedStartMountainCarTask(MountainCarTask):
    """The authors' protocol (module docstring): every outer iteration and every meta-test run starts from
    the one policy ``theta0``; goals are states (p, v); the meta-loss sees the rollout's own states and
    actions (its gradient runs through the car) and the final distance ||s_T - goal||; the task losses
    are Frobenius norms over all states, the first ``shaped_states`` aimed at the intermediate state."""

    theta0: dict = None
    shaped_states: int = 15
    fresh_starts: bool = False  # start from fresh random policies instead (the "why" figure)

    def start(self, key):
        return self.policy.init(key) if self.fresh_starts else self.theta0

    def unshaped_loss(self, states):
        return jnp.linalg.norm(states - self.goal)

    def shaped_loss(self, states):
        n = self.shaped_states
        return jnp.linalg.norm(states[:n] - self.intermediate) + jnp.linalg.norm(states[n:] - self.goal)

    def loss_inputs(self, theta, batch):
        states, actions = self.rollout(theta)
        final_distance = jax.lax.stop_gradient(jnp.linalg.norm(states[-1] - self.goal))
        extra = {"states": self.car.features(states[:-1]), "model_task_loss": self.unshaped_loss(states)}
        return actions, jnp.reshape(final_distance, (1,)), extra

    def task_loss(self, theta, batch):
        states = self.rollout(theta)[0]
        return jnp.where(self.shaped > 0, self.shaped_loss(states), self.unshaped_loss(states))

    def goal_position(self):
        return self.goal[0]


jax.tree_util.register_dataclass(FixedStartMountainCarTask,
                                 data_fields=["start_state", "goal", "intermediate", "shaped", "theta0"],
                                 meta_fields=["car", "policy", "horizon", "shaped_states", "fresh_starts"])


def initial_policy(config: Config, seed: int):
    """The paper protocol's fixed theta_0 of meta-training seed ``seed`` (its own stream of keys)."""
    car = FrictionMountainCar()
    return ClampedLinearPolicy(car).init(jax.random.fold_in(jax.random.PRNGKey(seed), 7))


def mountain_car_task(config: Config, shaped: bool, seed: int | None = None) -> MountainCarTask:
    """The task of ``config.protocol``; on the paper protocol, with the fixed start of seed ``seed``
    (by default ``config.seed``)."""
    flag = jnp.asarray(1.0 if shaped else 0.0)
    if config.protocol == "paper":
        car = FrictionMountainCar()
        return FixedStartMountainCarTask(
            jnp.asarray([config.start_position, 0.0]), jnp.asarray([config.goal_position, config.goal_velocity]),
            jnp.asarray([config.intermediate_position, config.intermediate_velocity]), flag, car, ClampedLinearPolicy(car),
            config.horizon, initial_policy(config, config.seed if seed is None else seed), config.shaped_states)
    car = MountainCar(config.action_repeat)
    return MountainCarTask(jnp.asarray([config.start_position, 0.0]), jnp.asarray(config.goal_position),
                           jnp.asarray(config.intermediate_position), flag, car, LinearPolicy(car), config.horizon)


def meta_loss(config: Config):
    if config.protocol == "paper":
        loss = PolicyMetaLoss(2, 1, 1, config.loss_hidden, detach_states=False, positive=False,
                              init_weights=config.loss_init)
    else:
        loss = PolicyMetaLoss(2, 1, 1, config.loss_hidden, init_weights=config.loss_init)
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


def meta_train_both(config: Config, directory, progress: bool) -> dict:
    """:func:`shaped_and_unshaped` on ``config``'s protocol: all seeds side by side (general), or, on the
    paper protocol, one run per seed (each with its own theta_0, in ``seed-<s>/``), stacked as if side by
    side (ML3 curves [seeds, runs, steps + 1], the task loss's [seeds x runs, steps + 1]). Also returns
    each seed's tasks ("tasks": [seeds] shaped tasks) for the trajectories."""
    key = jax.random.PRNGKey(config.seed + 99)
    if config.protocol != "paper":
        out = shaped_and_unshaped(config, lambda shaped: mountain_car_task(config, shaped), meta_loss(config), directory,
                                  key, progress)
        return {**out, "tasks": [out["task"]], "seed_params": {n: [out["params"][n]] for n in SHAPED_LOSSES}}
    runs = []
    for s in range(config.seeds):
        one = dataclasses.replace(config, seeds=1, seed=config.seed + s)
        runs.append(shaped_and_unshaped(one, lambda shaped: mountain_car_task(one, shaped), meta_loss(one),
                                        directory / f"seed-{s}", key, progress))
    names = (*SHAPED_LOSSES, "MSE")
    curves = {n: np.concatenate([r["curves"][n] for r in runs]) for n in names}
    return {"curves": curves, "tasks": [r["task"] for r in runs], "batches": runs[0]["batches"],
            "seed_params": {n: [r["params"][n] for r in runs] for n in SHAPED_LOSSES}, "task": runs[0]["task"]}


def task_loss_curves(config: Config, tasks: list, rates) -> dict:
    """Gradient descent on the unshaped task loss through the car from each seed's evaluation starts, at
    each rate: {rate: final distances [seeds x runs, eval_steps + 1]}."""
    from fastadapt.meta.trainer import MetaTrainer

    out = {}
    for rate in rates:
        curves = []
        for s, task in enumerate(tasks):
            trainer = MetaTrainer(dataclasses.replace(config, seeds=1), task, meta_loss(config))
            curves.append(trainer.curves(task.baseline_loss, {}, "meta-test", jax.random.PRNGKey(config.seed + 99), rate))
        out[rate] = np.concatenate(curves)
    return out


def after(curve, updates: int):
    """Column ``updates`` of curves [..., steps + 1] (the value after that many updates)."""
    return curve[..., min(updates, curve.shape[-1] - 1)]


def summarise(curves: dict, updates: int) -> dict:
    """Per method the final distance after ``updates`` updates and the fraction of runs solved (at the
    goal): ML3 mean +- std over seeds (each seed's mean over its runs), a fixed loss's over all runs."""
    out = {}
    for name, c in curves.items():
        values = after(c, updates)
        per_seed = values.mean(1) if name in SHAPED_LOSSES else values
        out[name] = {"mean": float(per_seed.mean()), "std": float(per_seed.std()), "solved": float(np.mean(values <= 0.0))}
        if name in SHAPED_LOSSES:
            out[name]["per_seed"] = per_seed.tolist()
    return out


def fresh_starts(config: Config, out: dict) -> dict:
    """The paper protocol's learned losses (each seed's) and the task loss at alpha, trained from
    ``fresh_runs`` fresh random policies per seed instead of the seed's theta_0 (on its car and goal):
    curves {name: [seeds, runs, steps + 1] or, for the task loss, [seeds x runs, steps + 1]}."""
    key = jax.random.PRNGKey(config.seed + 98)
    fresh = {}
    for name in SHAPED_LOSSES:
        curves = fresh_start_curves(config, list(zip(out["tasks"], out["seed_params"][name])), meta_loss(config),
                                    "meta-test", key, config.fresh_runs, config.alpha)
        fresh[name], fresh["task loss"] = curves["ML3"], curves["task loss"]
    return fresh


def run(config: Config, directory, progress: bool = True, log=print) -> dict:
    """Meta-train the shaped and the unshaped loss (resumable), then Fig. 6 a and b (and, on the paper
    protocol, the same losses from fresh policies: :func:`fresh_starts`)."""
    from fastadapt.experiments.rl.figures import fresh_start_figure, mountain_car_figures

    directory = prepare(directory)
    out = meta_train_both(config, directory, progress)
    curves = {("task loss" if name == "MSE" else name): c for name, c in out["curves"].items()}
    rate_curves = task_loss_curves(config, out["tasks"], [config.alpha * m for m in config.baseline_rates])
    rate_finals = {rate: float(np.mean(c[:, -1])) if np.all(np.isfinite(c)) else float("inf")
                   for rate, c in rate_curves.items()}
    best_rate = min(rate_finals, key=rate_finals.get)
    curves[TUNED] = rate_curves[best_rate]
    ilqr_finals, ilqr_positions = ilqr_baseline(config)
    shown = config.shown_updates or config.eval_steps
    positions = {"iLQR": [ilqr_positions]}
    for name in SHAPED_LOSSES:  # a policy trained by each loss: one per seed's task (one task on ours)
        positions[name] = []
        for task, params in zip(out["tasks"], out["seed_params"][name]):
            theta0 = task.start(jax.random.PRNGKey(config.seed + 7))
            _, theta = learning_curve(task, meta_loss(config), params, config.alpha, theta0, jnp.zeros(shown),
                                      jnp.zeros(()))
            positions[name].append(np.asarray(task.rollout(theta)[0][:, 0]))
    updates = sorted({u for u in REPORTED_UPDATES if u < config.eval_steps} | {config.eval_steps})
    by_updates = {str(u): summarise(curves, u) for u in updates}
    summary = by_updates[str(config.eval_steps)]
    final = {n: v["mean"] if n not in SHAPED_LOSSES else {k: v[k] for k in ("mean", "std", "per_seed")}
             for n, v in summary.items()}
    final["iLQR"] = ilqr_finals[-1]
    figures = mountain_car_figures(directory, config, curves, ilqr_finals, positions, shown)
    fresh = fresh_starts(config, out) if config.protocol == "paper" and config.fresh_runs else None
    if fresh is not None:
        fixed = {n: curves[n] for n in (*SHAPED_LOSSES, "task loss")}
        figures += fresh_start_figure(directory, "mountain_car", fixed, fresh, "final distance to the goal")
    metrics = {"protocol": config.protocol, "final_distance": final,
               "solved_fraction": {n: summary[n]["solved"] for n in SHAPED_LOSSES},
               "by_updates": by_updates, "task_loss_rates": {f"{r:g}": v for r, v in rate_finals.items()},
               "task_loss_best_rate": best_rate,
               "ilqr_final_distance": ilqr_finals, "outer_iterations": config.epochs * out["batches"]}
    if fresh is not None:
        metrics["fresh_starts"] = {str(u): summarise(fresh, u) for u in updates}
    methods = (*SHAPED_LOSSES, "task loss", TUNED)
    fmt = lambda s: f"{s['mean']:.3g} +- {s['std']:.2g} ({s['solved']:.0%})"
    label = lambda n: f"task loss at its best rate, {best_rate:g} (upper bound)" if n == TUNED else n
    rows = [[label(n), *[fmt(by_updates[str(u)][n]) for u in updates]] for n in methods]
    rows.append(["iLQR", *["" for _ in updates[:-1]], f"{ilqr_finals[-1]:.3g} ({config.ilqr_iterations} iterations)"])
    if config.protocol == "paper":
        setting = (f"The authors' protocol: their car, {config.horizon} steps from ({config.start_position:g}, 0) to the "
                   f"goal state ({config.goal_position:g}, {config.goal_velocity:g}); the shaped loss's intermediate "
                   f"state ({config.intermediate_position:g}, {config.intermediate_velocity:g}) for the first "
                   f"{config.shaped_states} states (meta-train only). One fixed initial policy per seed, shared by "
                   f"meta-training and meta-test; {config.epochs * out['batches']} outer iterations of "
                   f"{config.iters_max} inner step(s); {config.seeds} seeds, each its own initial policy.")
    else:
        setting = (f"Start at rest at p = {config.start_position:g}, goal p = {config.goal_position:g}; the shaped "
                   f"loss's intermediate goal p = {config.intermediate_position:g} (meta-train only). {config.horizon} "
                   f"policy steps of {config.action_repeat} car steps. {config.eval_seeds} fresh policies per seed, "
                   f"{config.seeds} seeds.")
    body = [
        setting + f" Policy updates at alpha = {config.alpha:g}; task loss: gradient descent on the unshaped task loss "
        f"through the car, at alpha and at the best of {len(config.baseline_rates)} rates on the evaluation runs "
        f"themselves (an upper bound); iLQR: {config.ilqr_iterations} iterations on the open-loop actions. "
        "Final distance to the goal, max(p_goal - p_T, 0), ML3 mean +- std over seeds; in brackets the fraction "
        "of runs solved (at the goal).", "",
        markdown_table(["method", *["at the start" if u == 0 else f"after {u} update{'s' if u > 1 else ''}"
                                    for u in updates]], rows),
    ]
    if fresh is not None:
        body += ["", f"The same losses from {config.fresh_runs} fresh random policies per seed instead of the one they "
                 "were meta-trained from (figure fresh_starts_mountain_car.png):", "",
                 markdown_table(["method", *["at the start" if u == 0 else f"after {u} update{'s' if u > 1 else ''}"
                                             for u in updates]],
                                [[n, *[fmt(metrics["fresh_starts"][str(u)][n]) for u in updates]]
                                 for n in (*SHAPED_LOSSES, "task loss")])]
    return finish(directory, f"ML3 shaping with intermediate goals: MountainCar (Fig. 6 a, b), protocol={config.protocol}",
                  metrics, body, figures, log)
