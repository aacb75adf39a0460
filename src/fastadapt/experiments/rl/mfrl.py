"""ML3 for model-free RL (paper sections 3.2.2 and 4.1.3, Fig. 4; Algorithms 4 and 5; Appendix C), as a
task of the one meta-trainer, on gymnasium's MuJoCo ReacherGoal and AntGoal (:mod:`fastadapt.rl.mujoco_goal`).

The optimizee is a Gaussian policy pi_theta(a | s) = N(mu_theta(s), diag(sigma_theta^2)) (:class:`GaussianPolicy`;
the goal is part of s), and a task is a goal g. For each meta-train goal (Algorithm 4):

1. theta_0 is drawn fresh (``start``); ``episodes`` episodes of ``horizon`` steps are rolled out with
   pi_theta on the real environment (MuJoCo, on the host: the samples are data);
2. theta_new = theta - alpha grad_theta M_phi(s, a, mu, sigma, R) (R: the reward-to-go, normalised over the
   batch; Algorithm 4 passes the rewards to the update);
3. pi_theta_new is rolled out (new episodes, on the real environment) and phi is updated with the gradient
   of the surrogate task loss of eq. 8, L_T = -mean_n A_n (1/T) sum_t log pi_theta_new(a_nt | s_nt), which
   reaches phi through theta_new (the samples are constants). A_n is episode n's return R_g(tau_n)
   normalised over the batch (minus the batch mean, over the batch std): eq. 8 with a baseline, the
   same expected gradient with less variance. ``iters_max`` such steps per goal, phi updated after each.

That is ``protocol=general``, ours: phi is updated after every inner step with theta_i held fixed
(``update=step``), each step rolls out twice (for the update and for the task loss).

``protocol=paper`` (``--paper``) is Algorithm 4 as written: theta_0 fresh per goal, tau_0 rolled out, and
for i < I (``iters_max`` = 10): theta_{i+1} = optimize(theta_i, M_phi, tau_i), tau_{i+1} rolled out with
theta_{i+1}, L_T^i the surrogate on tau_{i+1}; then phi <- phi - eta grad_phi (1/I) sum_i L_T^i, one update
per goal through all I steps (``update=unroll`` on stepwise batches: step i's task-loss rollout is step
i + 1's experience, the same seed and the same theta, so the same episodes). ``optimize`` is the paper's
"SGD on the meta-loss with mini-batches of experience (s_i, a_i, r_i)": ``minibatches`` SGD steps, each on
every ``minibatches``-th sample of tau_i (the paper gives no batch size: 5 minibatches of 100 of the 500
samples is ours). Meta-test uses the same update. PPO starts from the same initial policy as ML3 and
policy gradient on each goal (sbx's actor is the same 64 x 64 tanh network with a log-std per action).
The computation rolls each tau_{i+1} out twice (once for the task loss, once for the next step's
experience: the rollouts are host callbacks, which JAX does not share); the samples Algorithm 4 needs are
(I + 1) rollouts per goal, and that is what :func:`env_steps` counts.

Meta-test (Algorithm 5): a fresh policy takes ``eval_steps`` SGD steps at alpha on M_phi, each on new
rollouts of ``episodes`` episodes; it is scored before each step and after the last by the paper's metric
of one rollout of its mean action (:func:`~fastadapt.rl.mujoco_goal.metric`). Baselines, on the same goals
and the same number of samples: the surrogate itself (plain policy gradient) at the rate among
``baseline_rates`` x alpha that does best on meta-train goals, and PPO (:mod:`fastadapt.rl.ppo`).
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from fastadapt.experiments.output import finish, markdown_table, prepare
from fastadapt.validation import require_at_least, require_choice, require_positive_rates
from fastadapt.losses.regression import LearnedRateLoss
from fastadapt.meta.trainer import MetaTrainer, TrainerConfig
from fastadapt.meta.evaluation import seed_params, tuned_baseline
from fastadapt.models.mlp import apply_mlp, init_mlp
from fastadapt.losses.policy import GaussianPolicyMetaLoss, PolicyGradientLoss, surrogate
from fastadapt.rl.mujoco_goal import goal_spec, metric, rollout_callback
from fastadapt.rl.ppo import ppo_curve, samples_to_fraction


@dataclasses.dataclass(frozen=True)
class GaussianPolicy:
    """mu_theta(s) = MLP(s) (tanh hidden layers), sigma = exp(log_std) (one learned entry per action)."""

    obs_dim: int
    action_dim: int
    hidden: tuple[int, ...] = (64, 64)
    init_log_std: float = -0.5

    def init(self, key):
        return {"mean": init_mlp(key, (self.obs_dim, *self.hidden, self.action_dim), last_scale=0.1),
                "log_std": jnp.full(self.action_dim, self.init_log_std)}

    def apply(self, theta, obs):
        mu = apply_mlp(theta["mean"], obs, "tanh")
        return mu, jnp.broadcast_to(jnp.exp(theta["log_std"]), mu.shape)


@dataclasses.dataclass(frozen=True)
class Config(TrainerConfig):
    """The trainer's keys and the task's. Defaults: ReacherGoal at a budget this 2-core machine runs in
    minutes; ``fastadapt rl mfrl-ant`` sets AntGoal's."""

    env: str = "reacher"  # the environment: reacher (Reacher-v5) or ant (Ant-v5)
    # general: phi updated after every inner step (ours); paper: Algorithm 4 as written (module docstring;
    # needs update=unroll; --paper sets it)
    protocol: str = "general"
    alpha: float = 0.01
    eta: float = 3e-4
    meta_optimizer: str = "adam"
    meta_clip: float = 1.0
    iters_max: int = 3
    epochs: int = 40
    batches_per_epoch: int = 5
    seeds: int = 2
    eval_every: int = 10
    eval_steps: int = 20
    eval_seeds: int = 4
    horizon: int = 50  # steps per episode
    episodes: int = 10  # episodes per policy update
    minibatches: int = 1  # SGD steps per policy update, each on every minibatches-th sample of its rollouts
    goal_radius: float = 0.2  # reacher: goals uniform in the disc of this radius; ant: on the circle
    policy_hidden: tuple[int, ...] = (64, 64)  # hidden layer widths of the Gaussian policy
    init_log_std: float = -0.5  # the policy's initial log standard deviation
    loss_hidden: tuple[int, ...] = (128, 128)  # hidden layer widths of the meta-loss network
    learned_rate: bool = True  # learn the inner step size with the loss
    # policy-gradient rates searched (on meta-train goals) for the baseline
    baseline_rates: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0)
    # policies the learned loss also trains (Fig. 4c, d), widths separated by ';'
    architectures: tuple[tuple[int, ...], ...] = ((64,), (64, 64), (64, 64, 64), (64, 64, 64, 64))
    ppo_learning_rate: float = 3e-4  # sbx PPO's learning rate
    ppo_batch_size: int = 100  # sbx PPO's minibatch size
    ppo_epochs: int = 10  # sbx PPO's epochs per update

    def __post_init__(self):
        for name in ("policy_hidden", "loss_hidden"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        object.__setattr__(self, "baseline_rates", tuple(float(v) for v in self.baseline_rates))
        object.__setattr__(self, "architectures", tuple(tuple(int(h) for h in a) for a in self.architectures))
        super().__post_init__()
        require_choice(self, "env", ("reacher", "ant"))
        require_choice(self, "protocol", ("general", "paper"))
        require_at_least(self, 1, "horizon", "episodes", "policy_hidden", "loss_hidden", "ppo_batch_size", "ppo_epochs",
                         "minibatches")
        if self.protocol == "paper" and self.update != "unroll":
            raise ValueError(f"protocol=paper is Algorithm 4 as written, one update of phi through all inner steps: "
                             f"it needs update=unroll, got update={self.update}")
        if self.samples_per_update % self.minibatches:
            raise ValueError(f"config field 'minibatches' ({self.minibatches}) must divide the samples of an update "
                             f"(episodes x horizon = {self.samples_per_update})")
        require_positive_rates(self, "goal_radius", "baseline_rates", "ppo_learning_rate")
        spec = goal_spec(self.env)
        if self.goal_radius > spec.reach:
            raise ValueError(f"goal_radius {self.goal_radius:g} is outside the {self.env}'s workspace "
                             f"(at most {spec.reach:g})")

    @property
    def samples_per_update(self) -> int:
        return self.episodes * self.horizon


# Algorithm 4 as written (module docstring), 10 goals at meta-test, 3 seeds, as key=value overrides (--paper)
PAPER_KEYS = ("protocol=paper", "update=unroll", "iters_max=10", "minibatches=5", "seeds=3", "eval_seeds=10")


def quick(config: Config) -> Config:
    return dataclasses.replace(config, epochs=2, eval_every=1, seeds=1, batches_per_epoch=2, iters_max=1,
                               eval_steps=3, eval_seeds=2, episodes=4, horizon=min(config.horizon, 20),
                               loss_hidden=(16, 16), baseline_rates=(1.0,), architectures=((32,), (64, 64)),
                               minibatches=1)



ANT_SCALES = {
    "small": {"horizon": 100, "goal_radius": 1.0, "episodes": 5, "epochs": 10, "batches_per_epoch": 4,
              "eval_steps": 20, "eval_every": 5},
    "full": {"horizon": 1000, "goal_radius": 2.0, "episodes": 10, "epochs": 100, "batches_per_epoch": 10,
             "eval_steps": 50, "eval_every": 10},
}


@dataclasses.dataclass(frozen=True)
class AntConfig(Config):
    """``fastadapt rl mfrl-ant`` (Fig. 4 b, d): AntGoal, gymnasium's Ant-v5.

    Scaled down to fit a 2-core machine (``scale=small``, the default): episodes of 100 steps (5 s) instead
    of Ant-v5's 1000, goals on a circle of 1 m, 5 episodes per update, 10 meta-epochs of 4 goals.
    ``scale=full`` is the paper-sized setting for a bigger machine: 1000-step episodes, goals on a circle of
    2 m (our choice: the paper gives no radius), 10 episodes per update, 100 meta-epochs and 50 updates at
    meta-test. ``scale`` sets those keys (:data:`ANT_SCALES`) where they are left 0; keys given explicitly
    win."""

    env: str = "ant"
    # small (a budget this machine runs in minutes) or full (the paper's); 0-valued keys take the scale's
    scale: str = "small"
    horizon: int = 0  # 0: the scale's
    goal_radius: float = 0.0
    episodes: int = 0
    epochs: int = 0
    batches_per_epoch: int = 0
    eval_steps: int = 0
    eval_every: int = 0
    loss_hidden: tuple[int, ...] = (128, 128)

    def __post_init__(self):
        require_choice(self, "scale", tuple(ANT_SCALES))
        for key, value in ANT_SCALES[self.scale].items():
            if not getattr(self, key):
                object.__setattr__(self, key, value)  # the dataclass idiom for a derived field of a frozen class
        super().__post_init__()

@dataclasses.dataclass(frozen=True)
class MFRLTask:
    """A batch is {"goal": g [2], "seed": the rollouts' seed}."""

    test_goals: jnp.ndarray
    env: str
    policy: GaussianPolicy
    horizon: int
    episodes: int
    goal_radius: float
    unroll_steps: int = 0  # > 0: stepwise batches of this many steps (Algorithm 4's shared rollouts)
    minibatches: int = 1  # SGD steps per policy update, on minibatches of its experience

    eval_splits = ("meta-train", "meta-test")
    default_batches = 5
    baseline_loss = PolicyGradientLoss()

    @property
    def stepwise_batches(self) -> bool:
        return self.unroll_steps > 0

    @property
    def spec(self):
        return goal_spec(self.env)

    def sample_goals(self, key, count: int):
        """Reacher: uniform in the disc of ``goal_radius``; ant: uniform on the circle of that radius."""
        angle_key, radius_key = jax.random.split(key)
        angle = jax.random.uniform(angle_key, (count,), minval=0.0, maxval=2 * jnp.pi)
        radius = self.goal_radius * (jnp.sqrt(jax.random.uniform(radius_key, (count,))) if self.env == "reacher" else 1.0)
        return jnp.stack([radius * jnp.cos(angle), radius * jnp.sin(angle)], -1)

    def rollouts(self, theta, batch, stochastic: bool = True) -> dict:
        """``episodes`` sampled episodes (or one of the mean action) of pi_theta towards batch's goal."""
        count = self.episodes if stochastic else 1
        goals = jnp.broadcast_to(batch["goal"], (count, 2))
        return rollout_callback(self.spec, self.horizon, theta["mean"], jnp.exp(theta["log_std"]), goals,
                                batch["seed"], stochastic)

    # --- the trainer's interface ---------------------------------------------------------------------------
    def start(self, key):
        return self.policy.init(key)

    def meta_batches(self, key, count):
        """``count`` goals, each with the rollouts' seeds of the inner update and of the task loss; stepwise
        (Algorithm 4): I + 1 seeds per goal, step i's outer seed being step i + 1's inner one."""
        goal_key, inner_key, outer_key = jax.random.split(key, 3)
        goals = self.sample_goals(goal_key, count)
        if self.stepwise_batches:
            seeds = jax.random.randint(inner_key, (count, self.unroll_steps + 1), 0, 2 ** 30)
            steps = jnp.broadcast_to(goals[:, None], (count, self.unroll_steps, 2))
            return {"goal": steps, "seed": seeds[:, :-1]}, {"goal": steps, "seed": seeds[:, 1:]}
        seeds = lambda k: jax.random.randint(k, (count,), 0, 2 ** 30)
        return {"goal": goals, "seed": seeds(inner_key)}, {"goal": goals, "seed": seeds(outer_key)}

    def experience(self, theta, batch) -> dict:
        """The rollouts of ``batch`` as samples [episodes, horizon, ...]: observations, actions, the
        reward-to-go normalised over the batch, each episode's normalised return (constants)."""
        out = self.rollouts(theta, batch)
        to_go = jnp.cumsum(out["rewards"][:, ::-1], 1)[:, ::-1]
        return {"obs": out["obs"], "actions": out["actions"], "returns": _normalised(to_go),
                "advantage": jnp.broadcast_to(_normalised(to_go[:, :1]), to_go.shape)}

    def inputs_of(self, theta, data):
        """What the meta-loss sees of experience ``data``: pi_theta's mean and std at its states, its
        actions, and {states, returns, advantage}."""
        mu, sigma = self.policy.apply(theta, data["obs"])
        extra = {"states": data["obs"], "returns": data["returns"], "advantage": data["advantage"]}
        return {"mu": mu, "sigma": sigma}, data["actions"], extra

    def loss_inputs(self, theta, batch):
        return self.inputs_of(theta, self.experience(theta, batch))

    def minibatch_inputs(self, theta, data, k):
        """The meta-loss's inputs on minibatch ``k``: every ``minibatches``-th sample of the flattened
        experience, starting at sample k."""
        flat = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), data)
        count = flat["obs"].shape[0] // self.minibatches
        picked = jax.tree.map(lambda a: jax.lax.dynamic_slice_in_dim(a.reshape((count, self.minibatches) + a.shape[1:]),
                                                                     k, 1, axis=1)[:, 0], flat)
        return self.inputs_of(theta, picked)

    def task_loss(self, theta, batch):
        """L_T: the surrogate of eq. 8 on new rollouts of pi_theta."""
        pred, actions, extra = self.loss_inputs(theta, batch)
        return surrogate(pred, actions, extra["advantage"])

    def score(self, theta, eval_set):
        """Minus the paper's metric of one rollout of the mean action (lower is better)."""
        return -metric(self.spec, self.rollouts(theta, eval_set, stochastic=False)["distances"])[0]

    def eval_problem(self, split: str, key, index, steps: int):
        start_key, goal_key, seed_key, eval_key = jax.random.split(key, 4)
        if split == "meta-train":
            goal = self.sample_goals(goal_key, 1)[0]
        else:
            goal = self.test_goals[index % self.test_goals.shape[0]]
        batches = {"goal": jnp.broadcast_to(goal, (steps, 2)), "seed": jax.random.randint(seed_key, (steps,), 0, 2 ** 30)}
        return self.start(start_key), batches, {"goal": goal, "seed": jax.random.randint(eval_key, (), 0, 2 ** 30)}

    def saved_arrays(self) -> dict:
        return {}


jax.tree_util.register_dataclass(MFRLTask, data_fields=["test_goals"],
                                 meta_fields=["env", "policy", "horizon", "episodes", "goal_radius", "unroll_steps",
                                              "minibatches"])


def _normalised(values):
    """(values - mean) / (std + 1e-6) over all entries."""
    return (values - values.mean()) / (values.std() + 1e-6)


def mfrl_task(config: Config, hidden: tuple[int, ...] | None = None) -> MFRLTask:
    """The task with ``eval_seeds`` meta-test goals drawn once from ``seed``; the policy has ``hidden``
    layers (default ``policy_hidden``)."""
    spec = goal_spec(config.env)
    task = MFRLTask(jnp.zeros((1, 2)), config.env,
                    GaussianPolicy(spec.obs_dim, spec.action_dim, hidden or config.policy_hidden, config.init_log_std),
                    config.horizon, config.episodes, config.goal_radius,
                    unroll_steps=config.iters_max if config.protocol == "paper" else 0, minibatches=config.minibatches)
    goals = task.sample_goals(jax.random.fold_in(jax.random.PRNGKey(config.seed), 7), config.eval_seeds)
    return dataclasses.replace(task, test_goals=goals)


def meta_loss(config: Config):
    spec = goal_spec(config.env)
    loss = GaussianPolicyMetaLoss(spec.obs_dim, spec.action_dim, config.loss_hidden)
    return LearnedRateLoss(loss) if config.learned_rate else loss


def sample_summary(samples, curves: dict, fraction: float = 0.8) -> dict:
    """Per method (curves: name -> mean performance [updates + 1], higher better): its final value and
    the samples to reach ``fraction`` of its own improvement, and of the best method's final."""
    best = max(float(c[-1]) for c in curves.values())
    return {name: {"final": float(c[-1]), "samples_to_80_own": samples_to_fraction(samples, c, fraction),
                   "samples_to_80_best": samples_to_fraction(samples, c, fraction, best)}
            for name, c in curves.items()}


def run(config: Config, directory, progress: bool = True, log=print) -> dict:
    """Meta-train the loss (resumable), then Fig. 4: (a/b) performance against samples on meta-test goals,
    ML3 against plain policy gradient and PPO; (c/d) ML3 training policies of other architectures."""
    from fastadapt.experiments.rl.figures import mfrl_figures

    directory = prepare(directory)
    timings = {}
    task, loss = mfrl_task(config), meta_loss(config)
    trainer = MetaTrainer(config, task, loss)
    start = time.perf_counter()
    result = trainer.run(directory / "loss", progress=progress)
    timings["meta-train (this run)"] = time.perf_counter() - start
    key = jax.random.PRNGKey(config.seed + 99)
    start = time.perf_counter()
    rate, rate_finals = tuned_baseline(trainer, config, key)
    timings["policy-gradient rate search"] = time.perf_counter() - start

    start = time.perf_counter()
    best_seed = result.history["best_seed"]
    ml3 = np.stack([trainer.curves(loss, seed_params(result, s), "meta-test", key) for s in range(config.seeds)])
    timings["ML3 meta-test"] = time.perf_counter() - start
    start = time.perf_counter()
    pg = trainer.curves(task.baseline_loss, {}, "meta-test", key, rate)
    timings["policy-gradient meta-test"] = time.perf_counter() - start

    eval_sets = trainer.eval_sets("meta-test", key)
    goals, eval_seeds = np.asarray(eval_sets["goal"]), np.asarray(eval_sets["seed"])
    starts = trainer.eval_starts("meta-test", key)  # paper protocol: PPO from ML3's initial policy on each goal
    ppo_runs = []
    for i, (goal, eval_seed) in enumerate(tqdm(list(zip(goals, eval_seeds)), desc="PPO", disable=not progress, leave=False)):
        initial = jax.tree.map(lambda a: np.asarray(a[i]), starts) if config.protocol == "paper" else None
        ppo_runs.append(ppo_curve(task.spec, goal, config.horizon, config.eval_steps, config.samples_per_update,
                                  config.seed + i, int(eval_seed), config.policy_hidden, config.ppo_learning_rate,
                                  config.ppo_batch_size, config.ppo_epochs, initial_policy=initial))
    timings["PPO meta-test"] = sum(r["train_seconds"] + r["collect_seconds"] for r in ppo_runs)
    ppo = np.asarray([r["performance"] for r in ppo_runs])

    architectures = {}
    start = time.perf_counter()
    for hidden in config.architectures:
        other = MetaTrainer(config, mfrl_task(config, hidden), loss)
        architectures[hidden] = -other.curves(loss, seed_params(result, best_seed), "meta-test", key)
    timings["architectures meta-test"] = time.perf_counter() - start

    samples = config.samples_per_update * np.arange(config.eval_steps + 1)
    performance = {"ML3": -ml3, "policy gradient": -pg, "PPO": ppo}  # higher is better
    means = {"ML3": performance["ML3"].mean(1).mean(0), "policy gradient": performance["policy gradient"].mean(0),
             "PPO": ppo.mean(0)}
    counts = sample_summary(samples, means)
    figures = mfrl_figures(directory, config, samples, performance, architectures)
    ppo_train = sum(r["train_seconds"] for r in ppo_runs) / (len(ppo_runs) * config.eval_steps * config.samples_per_update)
    metrics = {
        "env": config.env, "protocol": config.protocol, "samples_per_update": config.samples_per_update,
        "samples": samples.tolist(),
        "performance_mean": {k: v.tolist() for k, v in means.items()},
        "ML3_final_per_seed": performance["ML3"][:, :, -1].mean(1).tolist(),
        "samples_to_80": counts, "baseline_rate": rate, "baseline_rate_finals": {f"{k:g}": v for k, v in rate_finals.items()},
        "architectures": {"x".join(map(str, h)): float(v[:, -1].mean()) for h, v in architectures.items()},
        "seconds": timings, "ppo_update_seconds_per_sample": ppo_train,
        "env_steps": env_steps(config, trainer.num_batches),
        "history": {"eval_epoch": result.history["eval_epoch"], "task_loss": result.history["task_loss"],
                    "meta_train_eval": [e["meta-train"]["mean"] for e in result.history["eval"]]},
    }
    fmt_count = lambda v: "never" if v is None else f"{v:,}"
    rows = [[name, f"{means[name][0]:.4g}", f"{c['final']:.4g}", fmt_count(c["samples_to_80_own"]),
             fmt_count(c["samples_to_80_best"])] for name, c in counts.items()]
    body = [
        f"{config.env}: {config.eval_seeds} meta-test goals, each a fresh policy trained for {config.eval_steps} "
        f"updates of {config.samples_per_update} samples ({config.episodes} episodes of {config.horizon} steps). "
        f"Performance: the paper's metric of one rollout of the mean action (higher is better). ML3: mean over "
        f"{config.seeds} meta-loss seeds; plain policy gradient (the surrogate of eq. 8) at rate {rate:g}, the best of "
        f"{', '.join(f'{k:g}' for k in rate_finals)} on meta-train goals; PPO (sbx) with one update per "
        f"{config.samples_per_update} samples"
        + (", from the same initial policy as ML3 and policy gradient on each goal" if config.protocol == "paper" else
           ", from its own initialisation") + f". Meta-training (protocol={config.protocol}"
        + (": Algorithm 4, phi updated once per goal through all inner steps" if config.protocol == "paper" else
           ": phi updated after every inner step") + f"): {config.epochs * trainer.num_batches} goals of "
        f"{config.iters_max} inner steps of {config.minibatches} minibatch SGD step(s), "
        f"{metrics['env_steps']['meta-train']:,} environment steps.", "",
        markdown_table(["method", "performance at the start", "final performance", "samples to 80% of its own final",
                        "samples to 80% of the best final"], rows), "",
        "Other policy architectures trained with the same (best-seed) loss, final performance: "
        + ", ".join(f"{k}: {v:.4g}" for k, v in metrics["architectures"].items()) + ".", "",
        "Wall time on this machine (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()) + ".",
    ]
    title = f"ML3 for model-free RL: {'ReacherGoal' if config.env == 'reacher' else 'AntGoal'} (Fig. 4)"
    return finish(directory, title, metrics, body, figures, log)


def env_steps(config: Config, batches: int) -> dict:
    """Environment steps of each part: meta-training (each inner step rolls out episodes for the update
    and for the task loss, per seed; Algorithm 4: I + 1 rollouts per goal, each scoring one step and
    feeding the next) and its evaluations, and each meta-test method."""
    per_update = config.samples_per_update
    evaluations = len([e for e in range(1, config.epochs + 1) if e % config.eval_every == 0 or e == config.epochs])
    per_run = config.eval_steps * (per_update + config.horizon) + config.horizon
    rollouts = config.iters_max + 1 if config.protocol == "paper" else 2 * config.iters_max
    return {"meta-train": config.seeds * config.epochs * batches * rollouts * per_update,
            "meta-train evaluations": evaluations * 2 * config.seeds * config.eval_seeds * per_run,
            "meta-test per method and goal": config.eval_steps * per_update}
