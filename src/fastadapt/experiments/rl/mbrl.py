"""ML3 for model-based RL (paper section 3.2.1 and 4.1.2, Fig. 3; Algorithms 3 and 5; Appendix B), as a
task of the one meta-trainer.

The optimizee is a goal-conditioned policy pi_theta(s, g) (:class:`~fastadapt.rl.rollout.GoalPolicy`) of a
differentiable system (:mod:`fastadapt.rl.envs`: PointmassGoal or ReacherGoal), and a task is a goal g.

Meta-train (Algorithm 3), for each goal drawn in the meta-train sector of the plane:

1. theta_0 is drawn fresh (``start``); tau = (s_0, a_0, ..., s_T) is rolled out with pi_theta under the
   learned dynamics model P;
2. theta_new = theta - alpha grad_theta M_phi(s_t, a_t, g) (the meta-loss sees the states as constants
   and the actions a_t = pi_theta(s_t, g), so its gradient never goes through the dynamics;
   by default (``loss_goal=relative``) it sees the goal as g - p(s_t), from the point reached, not g itself:
   the same information, and what lets a loss trained on one quadrant generalise to the opposite one);
3. tau_new is rolled out with pi_theta_new under P and phi is updated with the gradient of the task loss
   L_T = || p(s_T) - g ||, the final distance to the goal *under P*, backpropagated through P, the
   policy and the inner step (``iters_max`` such steps per goal, phi updated after each, as in
   Algorithm 1).
4. Every ``refresh_every`` epochs, policies trained by the current loss (``refresh_rollouts`` of them, on
   meta-train goals) are rolled out on the real system and P is refitted on all transitions so far
   (:meth:`MBRLTask.refresh`, called by the trainer). P starts from ``babbling_rollouts`` rollouts of
   uniformly random actions.

Meta-test (Algorithm 5): a fresh policy is trained for ``eval_steps`` steps of SGD at alpha on M_phi, on
rollouts of the *real system*; P is not used. The score is the final distance on the real system. The
baseline is the task loss itself, optimised by gradient descent through P (the paper's comparison, which
needs P at meta-test time), at the rate among ``baseline_rates`` x alpha that does best on meta-train goals.

That is ``protocol=general``, ours. ``protocol=paper`` is the ML3 authors' MBRL reacher code
(facebookresearch/LearningToLearn, ``ml3/experiments/run_mbrl_reacher_exp.py``, ``ml3_train.py``,
``optimizee.py``, ``mbrl_utils.py``) on our JAX arm (:class:`PaperMBRLTask`; ``--paper`` for
``mbrl-reacher``):

* **one initial policy per seed**, shared by meta-training and meta-test (their ``policy.reset()`` reloads
  it every outer iteration), one meta-train goal and one meta-test goal 27% of the reach away from it (the
  authors' goals (0.0253, 0.1986) and (0.0553, 0.1509) m on their 0.21 m arm, scaled to this 1 m one), the
  arm starting stretched (0, 0);
* their policy, u = a_max clip(f([s, g_state] / (1, 1, 8, 8, 1, 1, 1, 1)), -1, 1), 64 x 64 tanh, the state
  detached as an input, g_state = (q*, 0) with q* the joint angles of the goal (inverse kinematics);
* their meta-loss: softplus(g([s_t, u_t, ||s_T - g_state||] / (1, 1, 8, 8, 1, 1, 1))), 400 x 400 ELU,
  the states and the final distance constants, no learned rate;
* their dense task loss in joint space (``task_loss=dense``): 10 ||q_T - q*|| + mean_t ||q_t - q*|| +
  1e-4 mean_t ||qd_t|| over all states, under P;
* their P: an ensemble of 3 probabilistic networks (Gaussian NLL), fitted to 3 random-action rollouts and
  refitted every 300 outer iterations with one real rollout of the policy after the inner step;
* one inner SGD step at 1e-4, Adam at 1e-2 on phi, 3,000 outer iterations, 5 seeds (each its own run:
  the start is the task's).

Where it still differs: our arm (1 kg, 0.5 m links, |u| <= 2 Nm, dt 0.05, 40 steps) is not their PyBullet
reacher (gym's reacher.xml, 0.1 + 0.11 m, |u| <= 1 with gravity and Coriolis compensation added, dt
0.01, 65 steps); P sees our features (cos, sin, speed / 10) and is fitted by full-batch Adam, theirs the
raw state by 500 epochs of minibatches of 64. For the point mass, which the authors' code does not
cover, ``--paper`` is the paper's text: the 40 x 40 meta-loss of section 4.1 and 5 seeds, on our
quadrants.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from fastadapt.experiments.output import finish, markdown_table, prepare
from fastadapt.validation import require_at_least, require_choice, require_positive_rates
from fastadapt.losses.regression import LearnedRateLoss
from fastadapt.meta.algorithm import inner_step
from fastadapt.meta.trainer import MetaTrainer, TrainerConfig
from fastadapt.meta.evaluation import (evaluate_policies, final_summary, fresh_start_curves, meta_train_evaluations,
                                       stack_seed_curves)
from fastadapt.rl.envs import GoalError, check_goals, check_sector, make_env, sector_goals
from fastadapt.losses.policy import ModelTaskLoss, PolicyMetaLoss, authors_reacher_meta_loss
from fastadapt.rl.rollout import (ClampedGoalPolicy, DynamicsModel, GoalPolicy, add_transitions, empty_buffer, fit_model,
                                  rollout)


GOAL_VIEWS = ("absolute", "relative")
TASK_LOSSES = ("final", "dense")


@dataclasses.dataclass(frozen=True)
class Config(TrainerConfig):
    """The trainer's keys and the task's. Defaults: PointmassGoal; ``fastadapt rl mbrl-reacher`` sets the
    ReacherGoal ones. Meta-loss and policy sizes are the authors' (400 x 400 ELU with a softplus output and
    a learned rate; 64 x 64 tanh); P is refitted every 100 outer iterations (Appendix B)."""

    env: str = "pointmass"  # the environment: pointmass or reacher
    # general: ours; paper: the authors' MBRL reacher code (module docstring; --paper sets it for the reacher)
    protocol: str = "general"
    alpha: float = 0.01
    eta: float = 1e-3
    meta_optimizer: str = "adam"
    meta_clip: float = 1.0
    iters_max: int = 5
    epochs: int = 60
    batches_per_epoch: int = 10
    seeds: int = 3
    eval_every: int = 10
    eval_steps: int = 50
    eval_seeds: int = 10
    horizon: int = 30  # steps per episode
    goal_radius: tuple[float, float] = (0.5, 1.5)  # goals' distance from the start, min,max
    train_degrees: tuple[float, float] = (-45.0, 45.0)  # meta-train goals' directions in degrees, min,max
    test_degrees: tuple[float, float] = (135.0, 225.0)  # meta-test goals' directions in degrees, min,max
    refresh_every: int = 10  # refit the dynamics model P every this many epochs
    refresh_rollouts: int = 10  # real rollouts added to P's data at each refit
    babbling_rollouts: int = 3  # random-action rollouts P is first fitted on
    model_fit_steps: int = 500  # Adam steps of each fit of P
    model_fit_rate: float = 3e-3  # Adam's rate of those fits
    model_capacity: int = 20000  # transitions P's data holds (the oldest are dropped)
    model_hidden: tuple[int, ...] = (100, 30)  # hidden layer widths of P
    policy_hidden: tuple[int, ...] = (64, 64)  # hidden layer widths of the policy
    loss_hidden: tuple[int, ...] = (400, 400)  # hidden layer widths of the meta-loss network
    learned_rate: bool = True  # learn the inner step size with the loss
    loss_goal: str = "relative"  # the meta-loss sees g - p(s_t), the goal seen from the reached point; or "absolute": g
    baseline_rates: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0)  # rates searched for the task-loss baseline
    # final: the final distance under P; dense: the authors' 10 |q_T - q*| + mean |q_t - q*| + 1e-4 mean |qd_t|
    task_loss: str = "final"
    model_members: int = 1  # P's ensemble size (the authors': 3)
    model_probabilistic: bool = False  # P's networks predict a variance too and fit the Gaussian likelihood
    start_angles: tuple[float, float] = (0.0, 1.5)  # the reacher's start (joint angles, rad)
    train_goal: tuple[float, float] = (0.1207, 0.9459)  # protocol=paper: the one meta-train goal (x, y)
    test_goal: tuple[float, float] = (0.2633, 0.7186)  # protocol=paper: the one meta-test goal (x, y)
    # protocol=paper: also train from this many fresh random policies per seed (the "why" figure; 0: not)
    fresh_runs: int = 0

    def __post_init__(self):
        for name in ("goal_radius", "train_degrees", "test_degrees", "baseline_rates", "start_angles", "train_goal",
                     "test_goal"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        for name in ("model_hidden", "policy_hidden", "loss_hidden"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        super().__post_init__()
        require_at_least(self, 1, "horizon", "refresh_every", "refresh_rollouts", "babbling_rollouts", "model_fit_steps",
                         "model_capacity", "model_hidden", "policy_hidden", "loss_hidden")
        require_positive_rates(self, "model_fit_rate", "baseline_rates")
        require_choice(self, "loss_goal", GOAL_VIEWS)
        require_choice(self, "protocol", ("general", "paper"))
        require_choice(self, "task_loss", TASK_LOSSES)
        require_at_least(self, 1, "model_members")
        require_at_least(self, 0, "fresh_runs")
        env = make_env(self.env)
        check_sector(env, self.goal_radius, self.train_degrees, "meta-train goals")
        check_sector(env, self.goal_radius, self.test_degrees, "meta-test goals")
        if self.protocol == "paper":
            try:
                check_goals(env, [self.train_goal, self.test_goal])
            except GoalError as error:
                raise GoalError(f"protocol=paper's train_goal/test_goal: {error}") from None


# the paper's text for the point mass (the authors' code has none): section 4.1's 40 x 40 meta-loss, 5 seeds
PAPER_KEYS = ("loss_hidden=40,40", "seeds=5")


def quick(config: Config) -> Config:
    return dataclasses.replace(config, epochs=4, eval_every=2, seeds=2, eval_steps=10, eval_seeds=4, refresh_every=2,
                               refresh_rollouts=2, model_fit_steps=100, loss_hidden=(32, 32), batches_per_epoch=4)



@dataclasses.dataclass(frozen=True)
class ReacherConfig(Config):
    """``fastadapt rl mbrl-reacher`` (Fig. 3c): ReacherGoal. Goals lie 0.4 to 0.9 m from the base (the arm
    reaches 1 m); meta-train goals in the first quadrant, meta-test goals in the second."""

    env: str = "reacher"
    horizon: int = 40
    goal_radius: tuple[float, float] = (0.4, 0.9)
    train_degrees: tuple[float, float] = (0.0, 90.0)
    test_degrees: tuple[float, float] = (90.0, 180.0)

    # the authors' MBRL reacher code (module docstring): 3,000 outer iterations of one inner step, P refitted
    # every 300 with one real rollout
    PAPER_KEYS = ("protocol=paper", "task_loss=dense", "model_members=3", "model_probabilistic=true",
                  "start_angles=0,0", "alpha=0.0001", "eta=0.01", "meta_clip=0", "iters_max=1", "learned_rate=false",
                  "loss_hidden=400,400", "epochs=300", "batches_per_epoch=10", "refresh_every=30", "refresh_rollouts=1",
                  "model_fit_steps=2000", "model_fit_rate=0.001", "model_capacity=1000", "seeds=5", "eval_every=30", "eval_steps=20",
                  "eval_seeds=1", "keep=final", "baseline_rates=1,10,100,1000", "fresh_runs=10")

@dataclasses.dataclass(frozen=True)
class MBRLTask:
    """A batch is {"goal": g [2], "on_model": 1 (roll out under P: meta-train) or 0 (the real system)}."""

    model_params: object
    buffer: dict
    model_error: jnp.ndarray
    test_goals: jnp.ndarray
    env: object
    policy: GoalPolicy
    model: DynamicsModel
    horizon: int
    goal_radius: tuple[float, float]
    train_degrees: tuple[float, float]
    refresh_every: int
    refresh_rollouts: int
    fit_steps: int
    fit_rate: float
    relative_goal: bool = False
    dense: bool = False  # the task loss: the authors' dense one (dense_task_loss), else the final distance

    eval_splits = ("meta-train", "meta-test")
    default_batches = 10
    baseline_loss = ModelTaskLoss()

    # --- rollouts ----------------------------------------------------------------------------------------
    def system_rollout(self, theta, goal):
        return rollout(self.env.step, self.policy, theta, self.env.initial_state(), goal, self.horizon)

    def model_rollout(self, theta, goal):
        step = functools.partial(self.model.step, self.model_params)
        return rollout(step, self.policy, theta, self.env.initial_state(), goal, self.horizon)

    def distance(self, state, goal):
        return jnp.sqrt(jnp.sum(jnp.square(self.env.position(state) - goal)) + 1e-12)

    def train_goals(self, key, count: int):
        return sector_goals(key, count, self.goal_radius, self.train_degrees)

    # --- the trainer's interface ---------------------------------------------------------------------------
    def start(self, key):
        return self.policy.init(key)

    def meta_batches(self, key, count):
        batch = {"goal": self.train_goals(key, count), "on_model": jnp.ones(count)}
        return batch, batch

    def visited(self, theta, batch):
        """(the rollout under P, differentiable; the states the meta-loss sees, constants: under P at
        meta-train time, on the real system at meta-test)."""
        model_states, _ = self.model_rollout(theta, batch["goal"])
        system_states, _ = self.system_rollout(theta, batch["goal"])
        return model_states, jax.lax.stop_gradient(jnp.where(batch["on_model"] > 0, model_states, system_states))

    def loss_inputs(self, theta, batch):
        goal = batch["goal"]
        model_states, states = self.visited(theta, batch)
        states = states[:-1]
        actions = self.policy.apply(theta, states, goal)
        shown = goal - self.env.position(states) if self.relative_goal else goal
        extra = {"states": self.env.features(states), "model_task_loss": self.model_loss(model_states, goal)}
        return actions, shown, extra

    def model_loss(self, states, goal):
        """The task loss of a rollout's states: the dense one, or the final distance to the goal."""
        if self.dense:
            return dense_task_loss(states, self.env.target_state(goal))
        return self.distance(states[-1], goal)

    def task_loss(self, theta, batch):
        """L_T under P: the final distance to the goal (or the dense loss)."""
        states, _ = self.model_rollout(theta, batch["goal"])
        return self.model_loss(states, batch["goal"])

    def score(self, theta, goal):
        """The final distance to the goal on the real system."""
        states, _ = self.system_rollout(theta, goal)
        return self.distance(states[-1], goal)

    def eval_problem(self, split: str, key, index, steps: int):
        start_key, goal_key = jax.random.split(key)
        if split == "meta-train":
            goal = self.train_goals(goal_key, 1)[0]
        else:
            goal = self.test_goals[index % self.test_goals.shape[0]]
        batches = {"goal": jnp.broadcast_to(goal, (steps, 2)), "on_model": jnp.zeros(steps)}
        return self.start(start_key), batches, goal

    def saved_arrays(self) -> dict:
        return {"model_params": self.model_params}

    # --- Algorithm 3, lines 10-11 ------------------------------------------------------------------------
    def refresh(self, epoch: int, loss, loss_params, config, key):
        """Every ``refresh_every`` epochs: roll out on the real system policies trained with ``iters_max``
        inner steps on each seed's current loss, from fresh starts, for ``refresh_rollouts`` meta-train
        goals, add the transitions to the buffer and refit P (the seeds share P)."""
        if epoch % self.refresh_every:
            return self
        states, actions = _trained_rollouts(self, loss, loss_params, config.alpha, config.iters_max, key,
                                            self.refresh_rollouts)
        return self.with_data(states, actions)

    def with_data(self, states, actions) -> "MBRLTask":
        """The task with rollouts (states [..., T + 1, S], actions [..., T, A]) added to P's data and P refitted."""
        buffer = add_transitions(self.buffer, *self.model.transitions(states, actions))
        params, error = fit_model(self.model, self.model_params, buffer, self.fit_steps, self.fit_rate)
        return dataclasses.replace(self, model_params=params, buffer=buffer, model_error=error)


jax.tree_util.register_dataclass(
    MBRLTask, data_fields=["model_params", "buffer", "model_error", "test_goals"],
    meta_fields=["env", "policy", "model", "horizon", "goal_radius", "train_degrees", "refresh_every",
                 "refresh_rollouts", "fit_steps", "fit_rate", "relative_goal", "dense"])


def dense_task_loss(states, target):
    """The authors' reacher task loss over states [T + 1, 2 dof] and the target state (q*, 0):
    10 ||q_T - q*|| + mean_t ||q_t - q*|| + 1e-4 mean_t ||qd_t||."""
    dof = states.shape[-1] // 2
    norm = lambda x: jnp.sqrt(jnp.sum(jnp.square(x), -1) + 1e-12)
    errors = norm(states[:, :dof] - target[:dof])
    return 10.0 * errors[-1] + jnp.mean(errors) + 1e-4 * jnp.mean(norm(states[:, dof:]))


@dataclasses.dataclass(frozen=True)
class PaperMBRLTask(MBRLTask):
    """The authors' protocol (module docstring): every outer iteration and every evaluation starts from
    ``theta0``; one meta-train goal, one meta-test goal; the policy sees the goal state (q*, 0); the
    meta-loss sees [s_t, u_t, ||s_T - goal state||] (constants but u_t); the dense task loss under P."""

    theta0: object = None
    train_goal: jnp.ndarray = None
    test_goal: jnp.ndarray = None
    fresh_starts: bool = False  # start from fresh random policies instead (the "why" figure)

    def start(self, key):
        return self.policy.init(key) if self.fresh_starts else self.theta0

    def system_rollout(self, theta, goal):
        return super().system_rollout(theta, self.env.target_state(goal))

    def model_rollout(self, theta, goal):
        return super().model_rollout(theta, self.env.target_state(goal))

    def train_goals(self, key, count: int):
        return jnp.broadcast_to(self.train_goal, (count, 2))

    def loss_inputs(self, theta, batch):
        goal = batch["goal"]
        model_states, states = self.visited(theta, batch)
        target = self.env.target_state(goal)
        actions = self.policy.apply(theta, states[:-1], target)
        final = jnp.linalg.norm(states[-1] - target)[None]
        return actions, final, {"states": states[:-1], "model_task_loss": self.model_loss(model_states, goal)}

    def eval_problem(self, split: str, key, index, steps: int):
        goal = self.train_goal if split == "meta-train" else self.test_goal
        batches = {"goal": jnp.broadcast_to(goal, (steps, 2)), "on_model": jnp.zeros(steps)}
        return self.start(key), batches, goal


jax.tree_util.register_dataclass(
    PaperMBRLTask, data_fields=["model_params", "buffer", "model_error", "test_goals", "theta0", "train_goal", "test_goal"],
    meta_fields=["env", "policy", "model", "horizon", "goal_radius", "train_degrees", "refresh_every",
                 "refresh_rollouts", "fit_steps", "fit_rate", "relative_goal", "dense", "fresh_starts"])


@functools.partial(jax.jit, static_argnames=("loss", "iters", "count"))
def _trained_rollouts(task: MBRLTask, loss, loss_params, alpha, iters: int, key, count: int):
    """Real-system rollouts [seeds, count, ...] of policies trained by each seed's loss (``loss_params``
    stacked over seeds) with ``iters`` inner steps under P, from fresh starts, on ``count`` meta-train goals."""
    goal_key, start_key = jax.random.split(key)
    goals = task.train_goals(goal_key, count)
    starts = jax.random.split(start_key, count)

    def one(params, start, goal):
        batch = {"goal": goal, "on_model": jnp.ones(())}
        theta = jax.lax.fori_loop(0, iters, lambda _, th: inner_step(task, loss, alpha, params, th, batch),
                                  task.start(start))
        return task.system_rollout(theta, goal)

    return jax.vmap(lambda params: jax.vmap(functools.partial(one, params))(starts, goals))(loss_params)


def babbling_rollouts(env, key, count: int, horizon: int):
    """``count`` rollouts of uniformly random actions in [-a_max, a_max] from the start state."""
    actions = jax.random.uniform(key, (count, horizon, env.action_dim), minval=-env.max_action, maxval=env.max_action)

    def one(acts):
        def body(s, a):
            s2 = env.step(s, a)
            return s2, s2
        _, states = jax.lax.scan(body, env.initial_state(), acts)
        return jnp.concatenate([env.initial_state()[None], states])

    return jax.vmap(one)(actions), actions


def system(config: Config):
    """The system of ``config.env`` (the reacher starting at ``start_angles``)."""
    return make_env(config.env, start_angles=config.start_angles) if config.env == "reacher" else make_env(config.env)


def mbrl_task(config: Config) -> MBRLTask:
    """The task with P fitted to ``babbling_rollouts`` random rollouts, and ``eval_seeds`` meta-test goals
    drawn once in the meta-test sector (all from ``seed``); on the paper protocol, the one initial
    policy of ``seed`` and the config's two goals."""
    env = system(config)
    key = jax.random.PRNGKey(config.seed)
    model_key, babble_key, test_key = jax.random.split(key, 3)
    model = DynamicsModel(env, config.model_hidden, config.model_members, config.model_probabilistic)
    common = dict(
        model_params=model.init(model_key), buffer=empty_buffer(model, config.model_capacity),
        model_error=jnp.zeros(()),
        test_goals=sector_goals(test_key, config.eval_seeds, config.goal_radius, config.test_degrees),
        env=env, model=model, horizon=config.horizon, goal_radius=config.goal_radius,
        train_degrees=config.train_degrees, refresh_every=config.refresh_every, refresh_rollouts=config.refresh_rollouts,
        fit_steps=config.model_fit_steps, fit_rate=config.model_fit_rate, relative_goal=config.loss_goal == "relative",
        dense=config.task_loss == "dense")
    if config.protocol == "paper":
        policy = ClampedGoalPolicy(env, config.policy_hidden)
        theta0 = policy.init(jax.random.fold_in(key, 7))
        task = PaperMBRLTask(**common, policy=policy, theta0=theta0, train_goal=jnp.asarray(config.train_goal),
                             test_goal=jnp.asarray(config.test_goal))
    else:
        task = MBRLTask(**common, policy=GoalPolicy(env, config.policy_hidden))
    return task.with_data(*babbling_rollouts(env, babble_key, config.babbling_rollouts, config.horizon))


def meta_loss(config: Config, env=None):
    env = env or system(config)
    if config.protocol == "paper":
        loss = authors_reacher_meta_loss(env.state_dim, env.action_dim, config.loss_hidden)
    else:
        loss = PolicyMetaLoss(env.feature_dim, env.action_dim, 2, config.loss_hidden)
    return LearnedRateLoss(loss) if config.learned_rate else loss


def curve_mean(curves: dict) -> dict:
    """The distance averaged over the updates of a run (how fast a loss gets there): ML3 per seed (mean
    over runs), its mean and std over seeds; the task loss's mean."""
    per_seed = curves["ML3"].mean(-1).mean(-1)
    return {"ML3": {"mean": float(per_seed.mean()), "std": float(per_seed.std()), "per_seed": per_seed.tolist()},
            "task loss": float(curves["task loss"].mean())}


def meta_train_and_evaluate(config: Config, directory, progress: bool) -> dict:
    """Meta-train and :func:`evaluate_policies`: all seeds side by side in ``loss/`` (general), or, on the
    paper protocol, one run per seed (each with its own initial policy and P) in ``seed-<s>/loss/``,
    stacked as if side by side (ML3 curves [seeds, runs, steps + 1], the task loss's [seeds x runs, steps +
    1]; the paths of the first seed). Returns {"tasks", "results", "rates", "rate_finals", "curves",
    "paths", "batches"}, one entry per run in the lists."""
    runs = [config] if config.protocol != "paper" else [dataclasses.replace(config, seeds=1, seed=config.seed + s)
                                                         for s in range(config.seeds)]
    out = {"tasks": [], "results": [], "rates": [], "rate_finals": [], "curves": [], "paths": []}
    for s, one in enumerate(runs):
        task = mbrl_task(one)
        trainer = MetaTrainer(one, task, meta_loss(one, task.env))
        result = trainer.run(directory / ("loss" if len(runs) == 1 and config.protocol != "paper" else f"seed-{s}/loss"),
                             progress=progress)
        rate, rate_finals, curves, paths = evaluate_policies(trainer, result, one)
        for name, value in (("tasks", trainer.task), ("results", result), ("rates", rate), ("rate_finals", rate_finals),
                            ("curves", curves), ("paths", paths)):
            out[name].append(value)
    out["batches"] = trainer.num_batches
    out["curves"], out["paths"] = stack_seed_curves(out["curves"]), out["paths"][0]
    return out


def run(config: Config, directory, progress: bool = True, log=print) -> dict:
    """Meta-train the loss (resumable), then Fig. 3: trajectories on meta-train and meta-test goals, and the
    final distance along meta-test training with the learned loss and with the task loss through P."""
    from fastadapt.experiments.rl.figures import fresh_start_figure, mbrl_figures

    directory = prepare(directory)
    out = meta_train_and_evaluate(config, directory, progress)
    curves, task, results = out["curves"], out["tasks"][0], out["results"]
    figures = mbrl_figures(directory, config, curves, out["paths"])
    fresh = None
    if config.protocol == "paper" and config.fresh_runs:
        pairs = [(t, r.loss_params) for t, r in zip(out["tasks"], results)]
        fresh = {split: fresh_start_curves(config, pairs, meta_loss(config, task.env), split,
                                           jax.random.PRNGKey(config.seed + 98), config.fresh_runs, out["rates"])
                 for split in task.eval_splits}
        for split in task.eval_splits:
            name = f"mbrl_{config.env}_{split}"
            label = lambda curves: {"ML3": curves["ML3"], "task loss through P": curves["task loss"]}
            figures += fresh_start_figure(directory, name, label(curves[split]), label(fresh[split]),
                                          f"final distance to the {split} goal")
    summary = {split: final_summary(c) for split, c in curves.items()}
    along = {split: curve_mean(c) for split, c in curves.items()}
    start_distance = {split: float(np.mean(c["task loss"][:, 0])) for split, c in curves.items()}
    after = {split: {str(u): final_summary(c, u) for u in (1, 2, 5) if u < config.eval_steps} for split, c in curves.items()}
    histories = [{"eval_epoch": r.history["eval_epoch"], "meta_train_mean": meta_train_evaluations(r.history).tolist(),
                  "task_loss": r.history["task_loss"]} for r in results]
    rates = out["rates"]
    metrics = {
        "env": config.env, "protocol": config.protocol, "final_distance": summary, "after_updates": after,
        "mean_distance_over_updates": along, "start_distance": start_distance,
        "baseline_rate": rates[0] if len(rates) == 1 else rates,
        "baseline_rate_finals": [{f"{k:g}": v for k, v in f.items()} for f in out["rate_finals"]],
        "model_error": [float(t.model_error) for t in out["tasks"]],
        "model_transitions": int(task.buffer["count"]), "outer_iterations": config.epochs * out["batches"],
        "history": histories[0] if len(histories) == 1 else histories,
    }
    if fresh is not None:
        metrics["fresh_starts"] = {split: {str(u): final_summary(c, u) for u in (0, 1, 2, 5, config.eval_steps)
                                           if u <= config.eval_steps} for split, c in fresh.items()}
    if len(rates) == 1:
        metrics["baseline_rate_finals"], metrics["model_error"] = metrics["baseline_rate_finals"][0], metrics["model_error"][0]
    fmt = lambda s: f"{s['mean']:.3g} +- {s['std']:.2g}"
    rows = [[split, f"{start_distance[split]:.3g}", fmt(summary[split]["ML3"]), f"{summary[split]['task loss']:.3g}",
             fmt(along[split]["ML3"]), f"{along[split]['task loss']:.3g}"] for split in task.eval_splits]
    rate_text = f"{rates[0]:g}" if len(set(rates)) == 1 else ", ".join(f"{r:g}" for r in rates) + " (per seed)"
    errors = [float(t.model_error) for t in out["tasks"]]
    if config.protocol == "paper":
        goals = (f"The authors' protocol: one initial policy per seed, shared by meta-training and meta-test; one "
                 f"meta-train goal ({config.train_goal[0]:g}, {config.train_goal[1]:g}) and one meta-test goal "
                 f"({config.test_goal[0]:g}, {config.test_goal[1]:g}); {config.seeds} seeds, each its own run.")
    else:
        goals = (f"Meta-train goals at {config.train_degrees[0]:g} to {config.train_degrees[1]:g} degrees, meta-test "
                 f"goals at {config.test_degrees[0]:g} to {config.test_degrees[1]:g} degrees.")
    body = [
        f"{config.env}: {config.eval_seeds} goals per split, each a policy trained for {config.eval_steps} "
        f"steps. ML3 (mean +- std over {config.seeds} meta-loss seeds) trains on real-system rollouts without P; "
        f"the task loss ({config.task_loss}) is optimised through P at rate {rate_text} (the best of "
        f"{', '.join(f'{k:g}' for k in out['rate_finals'][0])} on meta-train goals). {goals} P: "
        f"{config.model_members} {'probabilistic ' if config.model_probabilistic else ''}network(s), "
        f"{int(task.buffer['count'])} transitions, acceleration MSE {', '.join(f'{e:.3g}' for e in errors)}. "
        f"{config.epochs * out['batches']} outer iterations of {config.iters_max} inner steps.", "",
        markdown_table(["goals", "distance at the start", "final distance, ML3", "final distance, task loss through P",
                        "mean over updates, ML3", "mean over updates, task loss"], rows), "",
        "ML3 after " + "; ".join(f"{u} update{'s' if int(u) > 1 else ''}: " + ", ".join(
            f"{split} {fmt(after[split][u]['ML3'])}" for split in task.eval_splits) for u in after[task.eval_splits[0]]) + ".",
    ]
    if fresh is not None:
        updates = list(metrics["fresh_starts"][task.eval_splits[0]])
        body += ["", f"The same losses and the task loss through P from {config.fresh_runs} fresh random policies per "
                 "seed instead of the one they were meta-trained from (figures fresh_starts_*.png): final distance "
                 "after " + ", ".join(updates) + " updates, ML3 | task loss through P:", "",
                 markdown_table(["goal", *[f"after {u}" for u in updates]],
                                [[split, *[f"{fmt(v['ML3'])} / {v['task loss']:.3g}" for v in metrics["fresh_starts"][split].values()]]
                                 for split in task.eval_splits])]
    title = f"ML3 for model-based RL: {'PointmassGoal' if config.env == 'pointmass' else 'ReacherGoal'} (Fig. 3)"
    return finish(directory, title, metrics, body, figures, log)
