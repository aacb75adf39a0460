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
from fastadapt.meta.evaluation import evaluate_policies, final_summary, meta_train_evaluations
from fastadapt.rl.envs import check_sector, make_env, sector_goals
from fastadapt.losses.policy import ModelTaskLoss, PolicyMetaLoss
from fastadapt.rl.rollout import DynamicsModel, GoalPolicy, add_transitions, empty_buffer, fit_model, rollout


GOAL_VIEWS = ("absolute", "relative")


@dataclasses.dataclass(frozen=True)
class Config(TrainerConfig):
    """The trainer's keys and the task's. Defaults: PointmassGoal; ``fastadapt rl mbrl-reacher`` sets the
    ReacherGoal ones. Meta-loss and policy sizes are the authors' (400 x 400 ELU with a softplus output and
    a learned rate; 64 x 64 tanh); P is refitted every 100 outer iterations (Appendix B)."""

    env: str = "pointmass"  # the environment: pointmass or reacher
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

    def __post_init__(self):
        for name in ("goal_radius", "train_degrees", "test_degrees", "baseline_rates"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        for name in ("model_hidden", "policy_hidden", "loss_hidden"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        super().__post_init__()
        require_at_least(self, 1, "horizon", "refresh_every", "refresh_rollouts", "babbling_rollouts", "model_fit_steps",
                         "model_capacity", "model_hidden", "policy_hidden", "loss_hidden")
        require_positive_rates(self, "model_fit_rate", "baseline_rates")
        require_choice(self, "loss_goal", GOAL_VIEWS)
        env = make_env(self.env)
        check_sector(env, self.goal_radius, self.train_degrees, "meta-train goals")
        check_sector(env, self.goal_radius, self.test_degrees, "meta-test goals")


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

    def loss_inputs(self, theta, batch):
        goal = batch["goal"]
        model_states, _ = self.model_rollout(theta, goal)
        system_states, _ = self.system_rollout(theta, goal)
        states = jax.lax.stop_gradient(jnp.where(batch["on_model"] > 0, model_states, system_states)[:-1])
        actions = self.policy.apply(theta, states, goal)
        shown = goal - self.env.position(states) if self.relative_goal else goal
        extra = {"states": self.env.features(states), "model_task_loss": self.distance(model_states[-1], goal)}
        return actions, shown, extra

    def task_loss(self, theta, batch):
        """L_T: the final distance to the goal under P."""
        states, _ = self.model_rollout(theta, batch["goal"])
        return self.distance(states[-1], batch["goal"])

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
                 "refresh_rollouts", "fit_steps", "fit_rate", "relative_goal"])


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


def mbrl_task(config: Config) -> MBRLTask:
    """The task with P fitted to ``babbling_rollouts`` random rollouts, and ``eval_seeds`` meta-test goals
    drawn once in the meta-test sector (all from ``seed``)."""
    env = make_env(config.env)
    key = jax.random.PRNGKey(config.seed)
    model_key, babble_key, test_key = jax.random.split(key, 3)
    model = DynamicsModel(env, config.model_hidden)
    task = MBRLTask(
        model_params=model.init(model_key), buffer=empty_buffer(model, config.model_capacity),
        model_error=jnp.zeros(()),
        test_goals=sector_goals(test_key, config.eval_seeds, config.goal_radius, config.test_degrees),
        env=env, policy=GoalPolicy(env, config.policy_hidden),
        model=model, horizon=config.horizon, goal_radius=config.goal_radius, train_degrees=config.train_degrees,
        refresh_every=config.refresh_every, refresh_rollouts=config.refresh_rollouts,
        fit_steps=config.model_fit_steps, fit_rate=config.model_fit_rate, relative_goal=config.loss_goal == "relative")
    return task.with_data(*babbling_rollouts(env, babble_key, config.babbling_rollouts, config.horizon))


def meta_loss(config: Config, env=None):
    env = env or make_env(config.env)
    loss = PolicyMetaLoss(env.feature_dim, env.action_dim, 2, config.loss_hidden)
    return LearnedRateLoss(loss) if config.learned_rate else loss


def curve_mean(curves: dict) -> dict:
    """The distance averaged over the updates of a run (how fast a loss gets there): ML3 per seed (mean
    over runs), its mean and std over seeds; the task loss's mean."""
    per_seed = curves["ML3"].mean(-1).mean(-1)
    return {"ML3": {"mean": float(per_seed.mean()), "std": float(per_seed.std()), "per_seed": per_seed.tolist()},
            "task loss": float(curves["task loss"].mean())}


def run(config: Config, directory, progress: bool = True, log=print) -> dict:
    """Meta-train the loss (resumable), then Fig. 3: trajectories on meta-train and meta-test goals, and the
    final distance along meta-test training with the learned loss and with the task loss through P."""
    from fastadapt.experiments.rl.figures import mbrl_figures

    directory = prepare(directory)
    task = mbrl_task(config)
    loss = meta_loss(config, task.env)
    trainer = MetaTrainer(config, task, loss)
    result = trainer.run(directory / "loss", progress=progress)
    task = trainer.task
    rate, rate_finals, curves, trajectories = evaluate_policies(trainer, result, config)
    figures = mbrl_figures(directory, config, curves, trajectories)
    summary = {split: final_summary(c) for split, c in curves.items()}
    along = {split: curve_mean(c) for split, c in curves.items()}
    start_distance = {split: float(np.mean(c["task loss"][:, 0])) for split, c in curves.items()}
    metrics = {
        "env": config.env, "final_distance": summary, "mean_distance_over_updates": along,
        "start_distance": start_distance,
        "baseline_rate": rate, "baseline_rate_finals": {f"{k:g}": v for k, v in rate_finals.items()},
        "model_error": float(task.model_error), "model_transitions": int(task.buffer["count"]),
        "outer_iterations": config.epochs * trainer.num_batches,
        "history": {"eval_epoch": result.history["eval_epoch"],
                    "meta_train_mean": meta_train_evaluations(result.history).tolist(),
                    "task_loss": result.history["task_loss"]},
    }
    fmt = lambda s: f"{s['mean']:.3g} +- {s['std']:.2g}"
    rows = [[split, f"{start_distance[split]:.3g}", fmt(summary[split]["ML3"]), f"{summary[split]['task loss']:.3g}",
             fmt(along[split]["ML3"]), f"{along[split]['task loss']:.3g}"] for split in task.eval_splits]
    body = [
        f"{config.env}: {config.eval_seeds} goals per split, each a fresh policy trained for {config.eval_steps} "
        f"steps. ML3 (mean +- std over {config.seeds} meta-loss seeds) trains on real-system rollouts without P; "
        f"the task loss (final distance) is optimised through P at rate {rate:g} (the best of "
        f"{', '.join(f'{k:g}' for k in rate_finals)} on meta-train goals). Meta-train goals at "
        f"{config.train_degrees[0]:g} to {config.train_degrees[1]:g} degrees, meta-test goals at "
        f"{config.test_degrees[0]:g} to {config.test_degrees[1]:g} degrees. P: {int(task.buffer['count'])} "
        f"transitions, acceleration MSE {float(task.model_error):.3g}. {config.epochs * trainer.num_batches} "
        f"outer iterations of {config.iters_max} inner steps.", "",
        markdown_table(["goals", "distance at the start", "final distance, ML3", "final distance, task loss through P",
                        "mean over updates, ML3", "mean over updates, task loss"], rows),
    ]
    title = f"ML3 for model-based RL: {'PointmassGoal' if config.env == 'pointmass' else 'ReacherGoal'} (Fig. 3)"
    return finish(directory, title, metrics, body, figures, log)
