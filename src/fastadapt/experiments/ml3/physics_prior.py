"""ML3 section 4.2.2 (Fig. 5 c, d): shaping a meta-loss for inverse-dynamics learning with the
simulator's true inertia matrix, a physics prior available only at meta-train time.

The optimizee is :class:`fastadapt.models.lagrangian.LagrangianModel`, u_theta = M_theta(q) qdd +
F_theta(q, qd) with M_theta positive definite. Data: random sine trajectories of a simulated arm
(:mod:`fastadapt.sim.rigid_body`; ``planar``, the paper's ReacherGoal, and ``iiwa`` in place of its
Sawyer), exact torques u and inertia matrices M(q) from PyBullet. Torques are seen in units of the
data's root mean square torque over all joints, sigma (MSE below is in those units: a model that predicts
zero torque scores 1). One scale for all joints, as the paper's plain MSE in newton-metres weighs them: per
joint scales would weigh the iiwa's wrist torques (0.007 N m) as much as its shoulder's (37 N m), and the
wrist's coupling terms in M_theta would then need a step size 10 times smaller.

Meta-train (Algorithm 1, ``iters_max`` inner steps on minibatches of ``batch_size`` samples from the
meta-train trajectories, phi updated after each): the meta-loss M_phi(u_theta / sigma, u / sigma)
(ML3's network on predicted and measured torques) is trained with one of two task losses:

* **shaped** (eq. 9): L_T = beta MSE(u_theta, u) + gamma mean_ij ((M_theta(q) - M(q))_ij / sqrt(D_i D_j))^2,
  D_j the mean of M_jj (``shaped_beta`` = 1, ``shaped_gamma`` = 1). The paper's task loss (section 4.2.2)
  is the shaping term alone and unscaled, L_T = (M_theta(q) - M(q))^2: ``shaped_beta=0
  inertia_scaled=false`` (``PAPER_KEYS``; the paper states no budget, and the authors' code has no
  physics-prior experiment, so the rest stays ours);
* **unshaped**: L_T = MSE(u_theta, u).

At meta-test time the losses see only torques: fresh models are trained with each loss, and with MSE, for
``eval_steps`` SGD steps at alpha on the first half of each of ``test_trajectories`` new trajectories,
scored by the torque MSE on their second halves (Fig. 5 c, d). The inertia error of the final models is
reported too.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from fastadapt.losses.regression import mse
from fastadapt.checkpoint import CheckpointError, read_archive, save_pytree
from fastadapt.experiments.output import finish, markdown_table, prepare
from fastadapt.validation import require_at_least, require_choice, require_positive_rates
from fastadapt.losses import make_loss
from fastadapt.losses.regression import MLPLoss
from fastadapt.meta.trainer import TrainerConfig
from fastadapt.meta.evaluation import SHAPED_LOSSES, shaped_and_unshaped, shaped_summary
from fastadapt.models.lagrangian import LagrangianModel
from fastadapt.models.mlp import check_activation


# the arms of fastadapt.sim.rigid_body.ARMS
ROBOT_NAMES = {"planar": "2-link planar arm (ReacherGoal)", "iiwa": "KUKA iiwa (in place of Sawyer)"}


@dataclasses.dataclass(frozen=True)
class Config(TrainerConfig):
    alpha: float = 0.01
    eta: float = 1e-3
    meta_optimizer: str = "adam"
    iters_max: int = 50  # 10 learns a loss that is fast for 10 steps, then stalls (docs/RESULTS.md)
    epochs: int = 40
    batches_per_epoch: int = 10
    seeds: int = 5
    eval_every: int = 10
    eval_steps: int = 200
    eval_seeds: int = 10
    arms: tuple[str, ...] = ("planar", "iiwa")  # robot arms with exact inertia matrices: planar (2 links), iiwa (7)
    train_trajectories: int = 20  # simulated meta-train trajectories per arm
    test_trajectories: int = 10  # simulated meta-test trajectories per arm
    trajectory_steps: int = 200  # samples per trajectory
    dt: float = 0.02  # sampling step of the trajectories in seconds
    batch_size: int = 32  # samples per inner step
    shaped_beta: float = 1.0  # weight of the plain torque error in the shaped task loss (beta, eq 9)
    shaped_gamma: float = 1.0  # weight of the shaping term (the inertia-matrix error) in the shaped task loss (gamma, eq 9)
    # the inertia error in units of sqrt(D_i D_j) (ours); false: the paper's plain (M_theta - M)^2 in kg m^2
    inertia_scaled: bool = True
    hidden: tuple[int, ...] = (64, 64)  # hidden layer widths of the Lagrangian model
    activation: str = "tanh"  # the model's activation
    loss_hidden: tuple[int, ...] = (40, 40)  # hidden layer widths of the meta-loss network

    def __post_init__(self):
        for name in ("arms", "hidden", "loss_hidden"):
            kind = str if name == "arms" else int
            object.__setattr__(self, name, tuple(kind(v) for v in getattr(self, name)))
        super().__post_init__()
        if not self.arms:
            raise ValueError("config field 'arms' must not be empty")
        require_choice(self, "arms", sorted(ROBOT_NAMES))
        require_at_least(self, 1, "train_trajectories", "test_trajectories", "batch_size", "hidden", "loss_hidden")
        require_at_least(self, 4, "trajectory_steps")
        require_positive_rates(self, "dt")
        require_positive_rates(self, "shaped_beta", "shaped_gamma", allow_zero=True)
        check_activation(self.activation)
        if self.shaped_beta == 0 and self.shaped_gamma == 0:
            raise ValueError("config fields 'shaped_beta' and 'shaped_gamma' are both 0: the shaped task loss would be 0")


# the paper's shaped task loss (module docstring), as key=value overrides (--paper)
PAPER_KEYS = ("shaped_beta=0", "inertia_scaled=false")


def quick(config: Config) -> Config:
    return dataclasses.replace(config, epochs=4, iters_max=10, eval_every=2, seeds=2, eval_steps=50, eval_seeds=4, arms=("planar",),
                               train_trajectories=4, test_trajectories=2, trajectory_steps=100)


FIELDS = ("q", "qd", "qdd", "u", "M")


@dataclasses.dataclass(frozen=True)
class PhysicsPriorTask:
    """Samples (dicts of q, qd, qdd, u [n, J], M [n, J, J]): ``train`` (minibatches of meta-training and
    of the meta-train evaluations), ``train_eval`` (scores of the meta-train evaluations), ``test_fit``
    and ``test_eval`` (the first and second halves of the new trajectories)."""

    train: dict
    train_eval: dict
    test_fit: dict
    test_eval: dict
    model: LagrangianModel
    batch_size: int
    beta: float
    gamma: float
    torque_unit: float  # sigma, the root mean square torque over all joints and samples
    inertia_root: jnp.ndarray  # [J] the inertia error's unit per joint: sqrt(D_j), or ones (the paper's plain error)

    eval_splits = ("meta-train", "meta-test")
    default_batches = 10

    @property
    def baseline_loss(self):
        return make_loss("mse", self.model.num_joints)

    def start(self, key):
        return self.model.init(key)

    def _minibatches(self, key, samples: dict, count: int) -> dict:
        index = jax.random.randint(key, (count, self.batch_size), 0, samples["q"].shape[0])
        return {k: v[index] for k, v in samples.items()}

    def meta_batches(self, key, count):
        inner_key, outer_key = jax.random.split(key)
        return self._minibatches(inner_key, self.train, count), self._minibatches(outer_key, self.train, count)

    def _normalized(self, theta, batch):
        """(u_theta, u) / sigma."""
        return self.model.apply(theta, batch["q"], batch["qd"], batch["qdd"]) / self.torque_unit, batch["u"] / self.torque_unit

    def loss_inputs(self, theta, batch):
        return (*self._normalized(theta, batch), None)

    def inertia_error(self, theta, batch):
        """mean_ij ((M_theta(q) - M(q))_ij / (r_i r_j))^2 over the batch, r = sqrt(D) (``inertia_scaled``)
        or ones (the paper's (M_theta(q) - M(q))^2)."""
        root = self.inertia_root
        error = (self.model.inertia(theta, batch["q"]) - batch["M"]) / (root[:, None] * root[None, :])
        return jnp.mean(jnp.square(error))

    def task_loss(self, theta, batch):
        """beta MSE + gamma inertia error (eq. 9); beta = 1, gamma = 0 is the unshaped task loss."""
        return self.beta * self.score(theta, batch) + self.gamma * self.inertia_error(theta, batch)

    def score(self, theta, batch):
        return mse(*self._normalized(theta, batch))

    def eval_problem(self, split: str, key, index, steps: int):
        fit, held_out = (self.train, self.train_eval) if split == "meta-train" else (self.test_fit, self.test_eval)
        init_key, batch_key = jax.random.split(key)
        return self.model.init(init_key), self._minibatches(batch_key, fit, steps), held_out

    def final_inertia_error(self, thetas):
        """The inertia error of meta-test runs' final models on the held-out samples [runs]."""
        return jax.vmap(lambda theta: self.inertia_error(theta, self.test_eval))(thetas)

    def saved_arrays(self) -> dict:
        return {}


# beta, gamma and sigma are data, not static: the shaped and the unshaped task share one compiled trainer
jax.tree_util.register_dataclass(PhysicsPriorTask, data_fields=["train", "train_eval", "test_fit", "test_eval", "beta",
                                                                "gamma", "torque_unit", "inertia_root"],
                                 meta_fields=["model", "batch_size"])


TRAJECTORIES = "trajectories.npz"


def arm_data(config: Config, arm: str, directory=None) -> dict:
    """Meta-train and meta-test trajectories of ``arm``, drawn with ``seed`` (different trajectories).

    With a ``directory`` they are saved there as ``trajectories.npz`` and read back when the run resumes,
    so a resumed run sees the very same samples, also on a machine without PyBullet. A file drawn with
    other settings is refused, not overwritten."""
    drawn_with = {"arm": arm, "train_trajectories": config.train_trajectories, "seed": config.seed,
                  "test_trajectories": config.test_trajectories, "trajectory_steps": config.trajectory_steps,
                  "dt": config.dt}
    path = Path(directory) / TRAJECTORIES if directory is not None else None
    if path is not None and path.exists():
        stored, metadata = read_archive(path, "trajectory file")
        if metadata.get("drawn_with") != drawn_with:
            raise ValueError(f"{path} holds trajectories drawn with {metadata.get('drawn_with')}, this run asks for "
                             f"{drawn_with}; use another run directory")
        try:
            return {part: {k: stored[f"['{part}']['{k}']"] for k in FIELDS} for part in ("train", "test")}
        except KeyError as missing:
            raise CheckpointError(f"{path}: trajectory file has no entry {missing}") from None
    from fastadapt.sim.rigid_body import dynamics_dataset  # PyBullet is needed only to draw new trajectories

    draw = lambda count, seed: dynamics_dataset(arm, count, config.trajectory_steps, config.dt, seed)
    data = {"train": draw(config.train_trajectories, config.seed), "test": draw(config.test_trajectories, config.seed + 10_000)}
    if path is not None:
        save_pytree(path, data, {"drawn_with": drawn_with})
    return data


def physics_prior_task(config: Config, data: dict, shaped: bool) -> PhysicsPriorTask:
    train, test = data["train"], data["test"]
    flat = lambda d, part=slice(None): {k: jnp.asarray(v[:, part].reshape(-1, *v.shape[2:])) for k, v in d.items()}
    num_joints = train["q"].shape[-1]
    half = config.trajectory_steps // 2
    model = LagrangianModel(
        num_joints,
        inertia_scale=tuple(float(v) for v in np.diagonal(train["M"], axis1=-2, axis2=-1).reshape(-1, num_joints).mean(0)),
        torque_scale=tuple(float(v) for v in np.sqrt(np.mean(np.square(train["u"].reshape(-1, num_joints)), 0)) + 1e-6),
        velocity_scale=tuple(float(v) for v in train["qd"].reshape(-1, num_joints).std(0) + 1e-6),
        hidden=config.hidden, activation=config.activation)
    train_samples = flat(train)
    every = max(1, train_samples["q"].shape[0] // 1000)  # at most ~1000 samples score the meta-train evaluations
    beta, gamma = (config.shaped_beta, config.shaped_gamma) if shaped else (1.0, 0.0)
    return PhysicsPriorTask(train_samples, {k: v[::every] for k, v in train_samples.items()},
                            flat(test, slice(0, half)), flat(test, slice(half, None)), model, config.batch_size,
                            beta, gamma, float(np.sqrt(np.mean(np.square(train["u"])))),
                            jnp.sqrt(jnp.asarray(model.inertia_scale)) if config.inertia_scaled else jnp.ones(num_joints))


def meta_loss(config: Config, num_joints: int) -> MLPLoss:
    return MLPLoss(num_joints, config.loss_hidden)



def early_steps(config: Config) -> tuple[int, ...]:
    """The gradient steps the report reads besides the last: how fast each loss gets there."""
    return tuple(step for step in (10, 50) if step < config.eval_steps)


def run(config: Config, directory, progress: bool = True, log=print) -> dict:
    """For each arm: meta-train the shaped and the unshaped loss (resumable), evaluate on new trajectories."""
    from fastadapt.experiments.ml3.figures import physics_prior_figure

    directory = prepare(directory)
    results, metrics = {}, {"arms": {}}
    key = jax.random.PRNGKey(config.seed + 99)
    for arm in config.arms:
        log(f"physics prior, {ROBOT_NAMES[arm]}: {config.train_trajectories} meta-train and "
            f"{config.test_trajectories} meta-test trajectories of {config.trajectory_steps} samples")
        data = arm_data(config, arm, directory / arm)
        num_joints = data["train"]["q"].shape[-1]
        out = shaped_and_unshaped(config, lambda shaped: physics_prior_task(config, data, shaped),
                                  meta_loss(config, num_joints), directory / arm, key, progress,
                                  final_metric="final_inertia_error")
        results[arm] = out["curves"]
        metrics["arms"][arm] = {"meta_test_final_torque_mse": shaped_summary(out["curves"]),
                                "meta_test_torque_mse_after": {str(step): shaped_summary(out["curves"], step)
                                                               for step in early_steps(config)},
                                "meta_test_final_inertia_error": shaped_summary(out["finals"])}
    figure = physics_prior_figure(directory / "fig5cd_physics_prior.png", config, results,
                                  {arm: ROBOT_NAMES[arm] for arm in config.arms})
    fmt = lambda s: f"{s['mean']:.3g} +- {s['std']:.2g}" if isinstance(s, dict) else f"{s:.3g}"
    rows = [[ROBOT_NAMES[arm], name, *(fmt(m["meta_test_torque_mse_after"][str(step)][name]) for step in early_steps(config)),
             fmt(m["meta_test_final_torque_mse"][name]), fmt(m["meta_test_final_inertia_error"][name])]
            for arm, m in metrics["arms"].items() for name in (*SHAPED_LOSSES, "MSE")]
    metrics["outer_iterations"] = config.epochs * config.batches_per_epoch
    header = ["arm", "loss", *(f"torque MSE after {step} steps" for step in early_steps(config)),
              f"after {config.eval_steps}", "inertia error"]
    body = [
        f"Inverse-dynamics models u = M(q) qdd + F(q, qd) trained from scratch on new trajectories for "
        f"{config.eval_steps} SGD steps at alpha = {config.alpha:g} (minibatches of {config.batch_size}); "
        f"{metrics['outer_iterations']} outer iterations of {config.iters_max} inner steps, {config.seeds} seeds "
        f"(mean +- std over seeds). Torque MSE in units of the data's mean square (predicting zero scores 1), on "
        f"held-out halves of the new trajectories; the inertia error of the final models:", "",
        markdown_table(header, rows),
    ]
    return finish(directory, "ML3: shaping with the true inertia matrix (Fig. 5 c, d)", metrics, body, [figure], log)
