"""Shaping ML3 with expert demonstrations (paper section 4.2.4, Fig. 6 c, d), as a task of the one
meta-trainer, on the differentiable ReacherGoal (:class:`~fastadapt.rl.envs.ReacherGoal`).

An expert exists only at meta-train time: iLQR (:mod:`fastadapt.rl.ilqr`) plans a reaching trajectory
(x_0 .. x_T, u_0 .. u_{T-1}) to each of four training targets g_k (cost 1e-3 ||u||^2 per step, then
100 ||p(x_T) - g||^2 + 0.1 ||qdot_T||^2; controls clipped to the torque limit).

Meta-train, for a training target g_k: a fresh policy pi_theta(s, g) rolls out on the system, takes an
inner step theta_new = theta - alpha grad M_phi(s_t, a_t, g - p(s_t)) on its own rollout (the meta-loss
never sees the expert), and phi is updated with the behavioural-cloning task loss of the paper,

    L_T(theta_new) = (1/T) sum_t || pi_theta_new(x_t, g_k) - u_t ||^2   on target k's demonstration.

Meta-test: on new targets, where no expert exists, fresh policies are trained with M_phi on their own
rollouts (Algorithm 5) and scored by the final distance to the target. The baseline is plain behavioural
cloning: a fresh policy trained by SGD on the cloning loss of all four demonstrations (the only data
there is), scored on the same new targets, at the rate among ``baseline_rates`` x alpha that does best
on the training targets.

That is ``protocol=general``, ours. The ML3 authors published no code for this experiment, so
``protocol=paper`` (``--paper``, ``PAPER_KEYS``) is the paper's text (the cloning task loss above, four
training targets, new targets at meta-test) in the setting of the authors' code for the same reacher
(their MBRL reacher, :mod:`fastadapt.experiments.rl.mbrl`'s ``protocol=paper``), :class:`PaperDemoTask`:

* **one initial policy theta_0 per seed**, shared by meta-training, meta-test and the cloning baseline;
* their policy u = a_max clip(f([s, g_state] / scale), -1, 1) with the goal *state* g_state = (q*, 0)
  (inverse kinematics), the state an input constant;
* their meta-loss softplus(g([s_t, u_t, ||s_T - g_state||] / scale)), 400 x 400 ELU, torch's
  initialisation, no learned rate (:func:`~fastadapt.losses.policy.authors_reacher_meta_loss`);
* one inner SGD step at 1e-4 per outer iteration, Adam 1e-2 on phi, 3,000 outer iterations, the loss kept
  at the end, 5 seeds (each its own run, its own theta_0); scored after 1, 2, 5 and 20 updates.

``fresh_runs`` > 0 also trains from that many fresh random policies per seed (the "why" figure).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from fastadapt.experiments.output import finish, markdown_table, prepare
from fastadapt.validation import require_at_least, require_choice, require_positive_rates
from fastadapt.meta.trainer import MetaTrainer, TrainerConfig
from fastadapt.rl.envs import ReacherGoal, check_goals, check_sector, sector_goals
from fastadapt.rl.ilqr import Problem, ilqr, trajectory
from fastadapt.losses.policy import ModelTaskLoss, PolicyMetaLoss, authors_reacher_meta_loss
from fastadapt.losses.regression import LearnedRateLoss
from fastadapt.meta.evaluation import evaluate_policies, final_summary, fresh_start_curves, stack_seed_curves
from fastadapt.rl.rollout import ClampedGoalPolicy, GoalPolicy, rollout


@dataclasses.dataclass(frozen=True)
class Config(TrainerConfig):
    alpha: float = 0.01
    eta: float = 1e-3
    meta_optimizer: str = "adam"
    meta_clip: float = 1.0
    iters_max: int = 5
    epochs: int = 40
    batches_per_epoch: int = 10
    seeds: int = 3
    eval_every: int = 10
    eval_steps: int = 50
    eval_seeds: int = 8
    horizon: int = 40  # steps per episode
    # meta-train targets as x,y pairs separated by ';'
    train_targets: tuple[tuple[float, float], ...] = ((0.606, 0.35), (0.239, 0.658), (-0.239, 0.658), (-0.606, 0.35))
    test_radius: tuple[float, float] = (0.5, 0.9)  # meta-test targets' distance from the base, min,max
    test_degrees: tuple[float, float] = (15.0, 165.0)  # meta-test targets' directions in degrees, min,max
    ilqr_iterations: int = 50  # iLQR iterations of each expert demonstration
    policy_hidden: tuple[int, ...] = (64, 64)  # hidden layer widths of the policy
    loss_hidden: tuple[int, ...] = (128, 128)  # hidden layer widths of the meta-loss network
    learned_rate: bool = True  # learn the inner step size with the loss
    # behavioural-cloning rates searched for the baseline
    baseline_rates: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0, 30.0)
    # general: fresh policies, ours; paper: one initial policy per seed, the authors' reacher setting
    protocol: str = "general"
    # protocol=paper: also train from this many fresh random policies per seed (the "why" figure; 0: not)
    fresh_runs: int = 0

    def __post_init__(self):
        object.__setattr__(self, "train_targets", tuple(tuple(float(v) for v in g) for g in self.train_targets))
        for name in ("test_radius", "test_degrees", "baseline_rates"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        for name in ("policy_hidden", "loss_hidden"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        super().__post_init__()
        require_at_least(self, 1, "horizon", "ilqr_iterations", "policy_hidden", "loss_hidden")
        require_positive_rates(self, "baseline_rates")
        require_choice(self, "protocol", ("general", "paper"))
        require_at_least(self, 0, "fresh_runs")
        check_goals(ReacherGoal(), self.train_targets)
        check_sector(ReacherGoal(), self.test_radius, self.test_degrees, "meta-test targets")


# the paper's text in the setting of the authors' reacher code (module docstring)
PAPER_KEYS = ("protocol=paper", "alpha=0.0001", "eta=0.01", "meta_clip=0", "iters_max=1", "learned_rate=false",
              "loss_hidden=400,400", "epochs=300", "batches_per_epoch=10", "seeds=5", "eval_every=30", "eval_steps=20",
              "keep=final", "baseline_rates=30,100,300,1000,3000", "fresh_runs=10")


def quick(config: Config) -> Config:
    return dataclasses.replace(config, epochs=3, eval_every=3, seeds=1, batches_per_epoch=3, iters_max=2,
                               eval_steps=5, eval_seeds=3, horizon=20, ilqr_iterations=10, loss_hidden=(16, 16),
                               baseline_rates=(1.0, 10.0))


@dataclasses.dataclass(frozen=True)
class ReachCost:
    """iLQR's cost of reaching ``goal``: 1e-3 ||u||^2 per step; 100 ||p(x_T) - g||^2 + 0.1 ||qdot_T||^2."""

    env: ReacherGoal
    goal: tuple[float, float]

    def running(self, x, u):
        return 1e-3 * u @ u

    def final(self, x):
        return 100.0 * jnp.sum(jnp.square(self.env.position(x) - jnp.asarray(self.goal))) + 0.1 * x[2:] @ x[2:]


def expert_demonstrations(env: ReacherGoal, targets, horizon: int, iterations: int):
    """iLQR's plans to each target: states [K, T + 1, 4], controls [K, T, 2] (clipped to the torque limit,
    then re-rolled so the states are the ones the clipped controls reach). iLQR is local: it starts from
    no torque and from +-0.5 on the shoulder, and the cheapest of the three plans is kept."""
    states, controls = [], []
    for goal in targets:
        cost = ReachCost(env, tuple(float(v) for v in goal))
        problem = Problem(env.step, cost.running, cost.final)
        starts = [jnp.zeros((horizon, env.action_dim))] + [jnp.zeros((horizon, env.action_dim)).at[:, 0].set(v)
                                                           for v in (0.5, -0.5)]
        solution = min((ilqr(problem, env.initial_state(), us, iterations=iterations) for us in starts),
                       key=lambda sol: sol.costs[-1])
        us = jnp.clip(solution.controls, -env.max_action, env.max_action)
        states.append(trajectory(problem, env.initial_state(), us))
        controls.append(us)
    return jnp.stack(states), jnp.stack(controls)


@dataclasses.dataclass(frozen=True)
class DemoTask:
    """A batch is {"goal": g [2], "demo": the index of its demonstration}."""

    expert_states: jnp.ndarray  # [K, T + 1, 4]
    expert_controls: jnp.ndarray  # [K, T, 2]
    train_goals: jnp.ndarray  # [K, 2]
    test_goals: jnp.ndarray  # [n, 2]
    env: ReacherGoal
    policy: GoalPolicy
    horizon: int

    eval_splits = ("meta-train", "meta-test")
    default_batches = 10
    baseline_loss = ModelTaskLoss("behavioural cloning", "bc_loss")

    def policy_goal(self, goal):
        """What the policy is given of the goal: the position itself."""
        return goal

    def system_rollout(self, theta, goal):
        return rollout(self.env.step, self.policy, theta, self.env.initial_state(), self.policy_goal(goal), self.horizon)

    def cloning_error(self, theta, index):
        """(1/T) sum_t ||pi_theta(x_t, g) - u_t||^2 on demonstration ``index``."""
        actions = self.policy.apply(theta, self.expert_states[index, :-1], self.policy_goal(self.train_goals[index]))
        return jnp.mean(jnp.sum(jnp.square(actions - self.expert_controls[index]), -1))

    def all_demos_error(self, theta):
        """The cloning error averaged over every demonstration (the baseline's loss)."""
        return jnp.mean(jax.vmap(functools.partial(self.cloning_error, theta))(jnp.arange(self.train_goals.shape[0])))

    def distance(self, state, goal):
        return jnp.sqrt(jnp.sum(jnp.square(self.env.position(state) - goal)) + 1e-12)

    # --- the trainer's interface ---------------------------------------------------------------------------
    def start(self, key):
        return self.policy.init(key)

    def meta_batches(self, key, count):
        index = jax.random.randint(key, (count,), 0, self.train_goals.shape[0])
        batch = {"goal": self.train_goals[index], "demo": index}
        return batch, batch

    def loss_inputs(self, theta, batch):
        goal = batch["goal"]
        states = jax.lax.stop_gradient(self.system_rollout(theta, goal)[0][:-1])
        actions = self.policy.apply(theta, states, goal)
        extra = {"states": self.env.features(states), "bc_loss": self.all_demos_error(theta)}
        return actions, goal - self.env.position(states), extra

    def task_loss(self, theta, batch):
        return self.cloning_error(theta, batch["demo"])

    def score(self, theta, goal):
        """The final distance to the goal on the system."""
        return self.distance(self.system_rollout(theta, goal)[0][-1], goal)

    def eval_problem(self, split: str, key, index, steps: int):
        goals = self.train_goals if split == "meta-train" else self.test_goals
        goal = goals[index % goals.shape[0]]
        batches = {"goal": jnp.broadcast_to(goal, (steps, 2)), "demo": jnp.zeros(steps, jnp.int32)}
        return self.start(key), batches, goal

    def saved_arrays(self) -> dict:
        return {}


jax.tree_util.register_dataclass(DemoTask, data_fields=["expert_states", "expert_controls", "train_goals", "test_goals"],
                                 meta_fields=["env", "policy", "horizon"])


@dataclasses.dataclass(frozen=True)
class PaperDemoTask(DemoTask):
    """The paper protocol (module docstring): every outer iteration, meta-test run and cloning run starts
    from ``theta0`` (or, with ``fresh_starts``, from fresh policies); the policy sees the goal state; the
    meta-loss sees [s_t, u_t, ||s_T - goal state||], constants but u_t."""

    theta0: object = None
    fresh_starts: bool = False

    def start(self, key):
        return self.policy.init(key) if self.fresh_starts else self.theta0

    def policy_goal(self, goal):
        return self.env.target_state(goal)

    def loss_inputs(self, theta, batch):
        goal = batch["goal"]
        target = self.policy_goal(goal)
        states = jax.lax.stop_gradient(self.system_rollout(theta, goal)[0])
        actions = self.policy.apply(theta, states[:-1], target)
        final = jnp.linalg.norm(states[-1] - target)[None]
        return actions, final, {"states": states[:-1], "bc_loss": self.all_demos_error(theta)}


jax.tree_util.register_dataclass(PaperDemoTask,
                                 data_fields=["expert_states", "expert_controls", "train_goals", "test_goals", "theta0"],
                                 meta_fields=["env", "policy", "horizon", "fresh_starts"])


def demo_task(config: Config, start_seed: int | None = None) -> DemoTask:
    """The experts, the meta-test targets (drawn once from ``seed``) and, on the paper protocol, the one
    initial policy of ``start_seed`` (by default ``seed``)."""
    env = ReacherGoal()
    targets = jnp.asarray(config.train_targets)
    states, controls = expert_demonstrations(env, targets, config.horizon, config.ilqr_iterations)
    test = sector_goals(jax.random.PRNGKey(config.seed), config.eval_seeds, config.test_radius, config.test_degrees)
    if config.protocol == "paper":
        policy = ClampedGoalPolicy(env, config.policy_hidden)
        start = config.seed if start_seed is None else start_seed
        theta0 = policy.init(jax.random.fold_in(jax.random.PRNGKey(start), 7))
        return PaperDemoTask(states, controls, targets, test, env, policy, config.horizon, theta0)
    return DemoTask(states, controls, targets, test, env, GoalPolicy(env, config.policy_hidden), config.horizon)


def meta_loss(config: Config):
    if config.protocol == "paper":
        loss = authors_reacher_meta_loss(ReacherGoal().state_dim, 2, config.loss_hidden)
    else:
        loss = PolicyMetaLoss(ReacherGoal.feature_dim, 2, 2, config.loss_hidden)
    return LearnedRateLoss(loss) if config.learned_rate else loss


def meta_train_and_evaluate(config: Config, directory, progress: bool) -> dict:
    """Meta-train and :func:`evaluate_policies`: all seeds side by side in ``loss/`` (general) or, on the
    paper protocol, one run per seed (its own theta_0; the same experts and targets) in ``seed-<s>/loss/``,
    stacked as if side by side (ML3 curves [seeds, runs, steps + 1], cloning's [seeds x runs, steps + 1];
    the paths of the first seed). Returns {"tasks", "results", "rates", "rate_finals", "curves", "paths"}."""
    paper = config.protocol == "paper"
    runs = [dataclasses.replace(config, seeds=1, seed=config.seed + s) for s in range(config.seeds)] if paper else [config]
    out = {"tasks": [], "results": [], "rates": [], "rate_finals": [], "curves": [], "paths": []}
    for s, one in enumerate(runs):
        task = demo_task(dataclasses.replace(one, seed=config.seed), start_seed=one.seed)
        trainer = MetaTrainer(one, task, meta_loss(one))
        result = trainer.run(directory / (f"seed-{s}/loss" if paper else "loss"), progress=progress)
        rate, rate_finals, curves, paths = evaluate_policies(trainer, result, one)
        for name, value in (("tasks", task), ("results", result), ("rates", rate), ("rate_finals", rate_finals),
                            ("curves", curves), ("paths", paths)):
            out[name].append(value)
    out["curves"], out["paths"] = stack_seed_curves(out["curves"]), out["paths"][0]
    return out


def run(config: Config, directory, progress: bool = True, log=print) -> dict:
    """Experts, meta-training (resumable), then Fig. 6 c (targets and reaching paths) and d (final distance
    on new targets along training: ML3 against behavioural cloning); on the paper protocol also the same
    losses from fresh policies (``fresh_runs``)."""
    from fastadapt.experiments.rl.figures import demo_figures, fresh_start_figure

    directory = prepare(directory)
    out = meta_train_and_evaluate(config, directory, progress)
    task, curves, results, rates = out["tasks"][0], out["curves"], out["results"], out["rates"]
    expert_finals = np.asarray(jax.vmap(task.distance)(task.expert_states[:, -1], task.train_goals))
    expert_paths = np.asarray(task.env.position(task.expert_states))
    figures = demo_figures(directory, config, curves, out["paths"], expert_paths)
    summary = {split: final_summary(c) for split, c in curves.items()}
    updates = [u for u in (0, 1, 2, 5) if u < config.eval_steps] + [config.eval_steps]
    after = {split: {str(u): final_summary(c, u) for u in updates} for split, c in curves.items()}
    fresh = None
    if config.protocol == "paper" and config.fresh_runs:
        pairs = [(t, r.loss_params) for t, r in zip(out["tasks"], results)]
        fresh = {split: fresh_start_curves(config, pairs, meta_loss(config), split, jax.random.PRNGKey(config.seed + 98),
                                           config.fresh_runs, rates) for split in task.eval_splits}
        label = lambda c: {"ML3": c["ML3"], "behavioural cloning": c["task loss"]}
        figures += fresh_start_figure(directory, "demonstrations", label(curves["meta-test"]), label(fresh["meta-test"]),
                                      "final distance to a new target")
    metrics = {"protocol": config.protocol, "final_distance": summary, "after_updates": after,
               "expert_final_distance": expert_finals.tolist(),
               "baseline_rate": rates[0] if len(rates) == 1 else rates,
               "baseline_rate_finals": [{f"{k:g}": v for k, v in f.items()} for f in out["rate_finals"]],
               "curves_mean": {split: {"ML3": c["ML3"].mean((0, 1)).tolist(), "behavioural cloning": c["task loss"].mean(0).tolist()}
                               for split, c in curves.items()},
               "history": [{"eval_epoch": r.history["eval_epoch"], "task_loss": r.history["task_loss"]} for r in results]}
    if len(rates) == 1:
        metrics["baseline_rate_finals"], metrics["history"] = metrics["baseline_rate_finals"][0], metrics["history"][0]
    if fresh is not None:
        metrics["fresh_starts"] = {split: {str(u): final_summary(c, u) for u in updates} for split, c in fresh.items()}
    fmt = lambda s: f"{s['mean']:.3g} +- {s['std']:.2g}"
    header = ["targets", *["at the start" if u == 0 else f"after {u}" for u in updates]]
    rows = lambda table: [[split, *[f"{fmt(v['ML3'])} / {v['task loss']:.3g}" for v in table[split].values()]]
                          for split in task.eval_splits]
    rate_text = f"{rates[0]:g}" if len(set(rates)) == 1 else ", ".join(f"{r:g}" for r in rates) + " (per seed)"
    if config.protocol == "paper":
        setting = (f"The paper protocol: one initial policy per seed, shared by meta-training, meta-test and cloning; "
                   f"{config.epochs * config.batches_per_epoch} outer iterations of {config.iters_max} inner step(s); "
                   f"{config.seeds} seeds, each its own run.")
    else:
        setting = f"Fresh policies for every run; {config.seeds} meta-loss seeds side by side."
    body = [
        f"ReacherGoal with iLQR demonstrations for {len(config.train_targets)} training targets (the experts end "
        f"{expert_finals.mean():.3g} from their targets on average). {setting} ML3 (mean +- std over seeds) trains "
        f"policies for {config.eval_steps} steps on their own rollouts; behavioural cloning trains them on all "
        f"demonstrations at rate {rate_text} (the best of {', '.join(f'{k:g}' for k in out['rate_finals'][0])} on the "
        f"training targets). Meta-test: {config.eval_seeds} new targets, {config.test_radius[0]:g} to "
        f"{config.test_radius[1]:g} from the base at {config.test_degrees[0]:g} to {config.test_degrees[1]:g} degrees. "
        "Final distance, ML3 / behavioural cloning, after each number of updates:", "",
        markdown_table(header, rows(after)),
    ]
    if fresh is not None:
        body += ["", f"The same losses and cloning from {config.fresh_runs} fresh random policies per seed instead of "
                 "the one they were meta-trained from (figure fresh_starts_demonstrations.png):", "",
                 markdown_table(header, rows(metrics["fresh_starts"]))]
    return finish(directory, f"ML3 shaped by expert demonstrations: ReacherGoal (Fig. 6 c, d), protocol={config.protocol}",
                  metrics, body, figures, log)
