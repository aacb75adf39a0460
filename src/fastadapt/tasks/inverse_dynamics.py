"""Inverse-dynamics learning as a task of the one meta-trainer (the state-dependent-losses paper).

The optimizee is an MLP from normalised (q, qd, qdd) [3J] to torques [J]. A meta-train batch is a window
of K consecutive samples of one meta-train trajectory, split into halves A (first K/2, the inner step)
and B (last K/2, the task loss MSE(f_theta_new(x_B), y_B)). The meta-loss sees the normalised state
(q, qd) [2J] as its extra input. Evaluations train fresh models for ``eval_steps`` SGD steps on random
half-windows of the meta-train or the meta-test data and score the MSE on up to ``eval_points`` samples.

Online meta-objective (``update='online'``, :func:`fastadapt.meta.algorithm.online_epoch`): each epoch
plays one stretch of a meta-train trajectory as a stream of batches of ``stream_batch`` consecutive
samples (5, the online protocol's), ``batches_per_epoch`` truncations of ``iters_max`` steps; by default
as many truncations as fit into the longest meta-train trajectory. The evaluations are online too:
``eval_steps`` consecutive batches of ``stream_batch`` samples from a random start, each scored before
the step on it, summarised by the mean (the online error the pipeline reports), so the loss kept is the
one that streams best on the meta-train data.

ALPaCA (``loss='alpaca'`` with ``update='posterior'``, :mod:`fastadapt.models.alpaca`): the network and
its Bayesian last layer's prior are meta-learned on streams of ``iters_max`` batches of ``stream_batch``
samples of one meta-train trajectory (``batches_per_epoch`` streams per epoch; by default as many as
the meta-train samples fill), and evaluated online like ``update='online'``: the posterior updated
batch after batch, each batch scored before its update.

Warm start (``start='pretrained'``, beyond the paper): the loss is meta-trained for adapting models that
are already trained, the practitioner's protocol. The meta-train trajectories are split alternately in
two: ``pretrain_models`` networks are fitted offline (Adam on MSE) to the first half, and Algorithm 1
starts each batch from one of them instead of a random theta, on windows of the *other* half. The loss
thus learns how far to move a trained model on data it has not seen, which may be not at all. The
evaluations start from the same pretrained models.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from fastadapt.optim.pretrain import pretrain
from fastadapt.losses.regression import mse
from fastadapt.checkpoint import CheckpointError, load_pytree, read_archive
from fastadapt.data.batches import Normalizer, Samples, gather_windows, normalised_samples, window_starts
from fastadapt.data.trajectory import DataError, Dataset
from fastadapt.validation import require_at_least, require_positive_rates
from fastadapt.losses import make_loss
from fastadapt.meta.trainer import MetaTrainer, TrainerConfig, require_learned, save_meta_loss
from fastadapt.models.alpaca import ALPaCA
from fastadapt.models.mlp import InverseDynamicsMLP, check_activation

ALPACA = "alpaca"  # the closed-form learner's name in loss=


@dataclasses.dataclass(frozen=True)
class InverseDynamicsConfig(TrainerConfig):
    """The trainer's keys (defaults: the paper's alpha=0.001, SGD on phi with eta=0.01, iters_max=10,
    300 epochs) and the task's: K=256 samples per batch, the model, the evaluation set."""

    # the learned loss: mlp, structured or state-dependent; or alpaca (a Bayesian last layer, with update=posterior)
    loss: str = "state-dependent"
    batch_size: int = 256  # samples K per meta-train window (halves A and B); even
    hidden: tuple[int, ...] = (64, 64)  # hidden layer widths of the inverse-dynamics MLP
    activation: str = "tanh"  # the MLP's activation (tanh, relu, elu, softplus)
    eval_points: int = 2048  # samples scored in each evaluation
    # the optimizees meta-training starts from: random, or pretrained (a warm start; module docstring)
    start: str = "random"
    pretrain_models: int = 5  # start=pretrained: networks fitted offline to warm-start from
    pretrain_steps: int = 3000  # start=pretrained: Adam steps of each offline fit
    pretrain_rate: float = 1e-3  # start=pretrained: Adam's rate of the offline fits
    stream_batch: int = 5  # samples per step of the online meta-objective (update='online')
    learned_rate: bool = False  # learn a log step size with the loss (fastadapt.losses.regression.LearnedRateLoss)
    layer_rates: bool = False  # and one log step size per layer of the model (implies learned_rate)

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        super().__post_init__()
        require_at_least(self, 1, "batch_size", "eval_points", "pretrain_models", "pretrain_steps", "hidden",
                         "stream_batch")
        require_positive_rates(self, "pretrain_rate")
        check_activation(self.activation)
        if self.loss == ALPACA or self.update == "posterior":
            if (self.loss, self.update) != (ALPACA, "posterior"):
                raise ValueError(f"loss={ALPACA} meta-trains with update=posterior, and update=posterior meta-trains "
                                 f"loss={ALPACA} only; got loss={self.loss}, update={self.update}")
            if self.start != "random" or self.learned_rate or self.layer_rates:
                raise ValueError(f"loss={ALPACA} adapts in closed form from its own meta-learned network: start, "
                                 "learned_rate and layer_rates do not apply")
        else:
            make_loss(self.loss, 1)  # an unknown loss name fails here, not after the run directory is made
        if self.start not in ("random", "pretrained"):
            raise ValueError(f"unknown start '{self.start}', expected 'random' or 'pretrained'")
        if self.batch_size % 2:
            raise ValueError(f"batch_size must be even (it is split in halves A and B), got {self.batch_size}")

    def unused_keys(self) -> dict[str, str]:
        streams = self.update in ("online", "posterior")
        unused = {} if streams else {"stream_batch": "it is used with update=online or posterior only"}
        if self.loss == ALPACA:
            closed = "alpaca adapts in closed form, from its own meta-learned network"
            unused.update({"batch_size": "alpaca meta-trains on streams of stream_batch samples", "start": closed,
                           "learned_rate": closed, "layer_rates": closed})
        if self.start == "pretrained":
            return unused
        reason = "it is used with start=pretrained only"
        return {**unused, "pretrain_models": reason, "pretrain_steps": reason, "pretrain_rate": reason}

    def model(self, num_joints: int) -> InverseDynamicsMLP:
        return InverseDynamicsMLP(num_joints, self.hidden, self.activation)

    def make_loss(self, num_joints: int):
        """The loss these keys meta-train (with its learned scalar or per-layer step sizes, if any), or the
        ALPaCA learner on the model."""
        if self.loss == ALPACA:
            return ALPaCA(self.model(num_joints))
        return make_loss(self.loss, num_joints, self.learned_rate, len(self.hidden) + 1 if self.layer_rates else 0)


@dataclasses.dataclass(frozen=True)
class InverseDynamicsTask:
    """Normalised meta-train and meta-test samples, window starts, evaluation sets and, for warm starts,
    the stacked pretrained models [P, ...]. A pytree: the arrays are traced, the rest is static."""

    train: Samples
    train_starts: jnp.ndarray
    test: Samples
    test_starts: jnp.ndarray
    eval_train: Samples
    eval_test: Samples
    normalizer: Normalizer
    start_params: object  # None: fresh models
    stream_starts: object  # update='online': where a meta-train stream may start; else None
    model: InverseDynamicsMLP
    batch_size: int
    default_batches: int
    stream_batch: int
    online_eval_starts: object = None  # update='online': (meta-train, meta-test) starts of evaluation streams
    eval_summary: str = "final"  # "mean" for online evaluations (MetaTrainer.summary)
    robot: str = "unknown"  # the meta-train data's robot, stored in the loss file

    eval_splits = ("meta-train", "meta-test")

    @property
    def baseline_loss(self):
        return make_loss("mse", self.model.num_joints)

    def start(self, key):
        if self.start_params is None:
            return self.model.init(key)
        count = jax.tree.leaves(self.start_params)[0].shape[0]
        pick = jax.random.randint(key, (), 0, count)
        return jax.tree.map(lambda a: a[pick], self.start_params)

    def meta_batches(self, key, count):
        """``count`` random windows of K samples, split into halves A (inner) and B (outer)."""
        chosen = jax.random.choice(key, self.train_starts, (count,))
        windows = gather_windows(self.train, chosen, self.batch_size)
        half = self.batch_size // 2
        return Samples(windows.x[:, :half], windows.y[:, :half]), Samples(windows.x[:, half:], windows.y[:, half:])

    def meta_stream(self, key, steps: int) -> Samples:
        """``steps`` consecutive batches [steps, stream_batch, ...] of one meta-train trajectory, from a
        random start."""
        return self._stream(self.train, jax.random.choice(key, self.stream_starts), steps)

    def _stream(self, samples: Samples, start, steps: int) -> Samples:
        """``steps`` batches of ``stream_batch`` consecutive samples from ``start``: [steps, stream_batch, ...]."""
        window = gather_windows(samples, start[None], steps * self.stream_batch)
        return Samples(window.x.reshape(steps, self.stream_batch, -1), window.y.reshape(steps, self.stream_batch, -1))

    def examples(self, batches: Samples):
        """(x, y): what a closed-form learner regresses on."""
        return batches.x, batches.y

    def loss_inputs(self, theta, batch: Samples):
        return self.model.apply(theta, batch.x), batch.y, batch.state

    def task_loss(self, theta, batch: Samples):
        return mse(self.model.apply(theta, batch.x), batch.y)

    score = task_loss

    def eval_problem(self, split: str, key, index, steps: int):
        """A fresh (or the ``index``-th pretrained) model and ``steps`` random half-windows of ``split``
        scored on its evaluation set, or, online, a stream of ``steps`` consecutive batches (no evaluation
        set: each batch is scored before the step on it)."""
        samples, starts, eval_set = ((self.train, self.train_starts, self.eval_train) if split == "meta-train"
                                     else (self.test, self.test_starts, self.eval_test))
        init_key, pick_key = jax.random.split(key)
        if self.online_eval_starts is not None:
            starts = self.online_eval_starts[0 if split == "meta-train" else 1]
            batches, eval_set = self._stream(samples, jax.random.choice(pick_key, starts), steps), None
        else:
            batches = gather_windows(samples, jax.random.choice(pick_key, starts, (steps,)), self.batch_size // 2)
        if self.start_params is None:
            theta0 = self.model.init(init_key)
        else:
            count = jax.tree.leaves(self.start_params)[0].shape[0]
            theta0 = jax.tree.map(lambda a: a[index % count], self.start_params)
        return theta0, batches, eval_set

    def saved_arrays(self) -> dict:
        return {"normalizer": self.normalizer._asdict()}

    def saved_metadata(self) -> dict:
        return {"robot": self.robot}


jax.tree_util.register_dataclass(
    InverseDynamicsTask,
    data_fields=["train", "train_starts", "test", "test_starts", "eval_train", "eval_test", "normalizer", "start_params",
                 "stream_starts", "online_eval_starts"],
    meta_fields=["model", "batch_size", "default_batches", "stream_batch", "eval_summary", "robot"],
)


def _eval_set(samples: Samples, points: int, key) -> Samples:
    n = samples.x.shape[0]
    if n <= points:
        return samples
    index = jax.random.choice(key, n, (points,), replace=False)
    return Samples(samples.x[index], samples.y[index])


def inverse_dynamics_task(config: InverseDynamicsConfig, train: Dataset, test: Dataset,
                          normalizer: Normalizer | None = None) -> InverseDynamicsTask:
    """The task for ``train`` and ``test`` trajectories; the normaliser is fitted to ``train`` unless given.
    With ``start='pretrained'`` this pretrains the start models (see the module docstring)."""
    test.check_joints(train.num_joints, "meta-test data")
    normalizer = normalizer or Normalizer.fit(train)
    model = config.model(train.num_joints)
    start_params = None
    if config.start == "pretrained":
        train, start_params = _warm_start_split(config, model, normalizer, train)
    train_samples, test_samples = normalised_samples(train, normalizer), normalised_samples(test, normalizer)
    eval_key = jax.random.PRNGKey(config.seed + 10_000)
    default_batches = max(1, train.num_samples // config.batch_size)
    stream_starts = online_eval_starts = None
    if config.update in ("online", "posterior"):
        for data, name in ((train, "meta-train"), (test, "meta-test")):
            if not data.ordered:
                raise DataError(f"the {name} data has rows in no time order (imported without time stamps); "
                                f"update={config.update} meta-trains on streams, which need time order"
                                + (": use update=step" if config.update == "online" else ""))
        default_batches, stream_starts = (_stream_plan if config.update == "online" else _posterior_plan)(config, train)
        online_eval_starts = tuple(_evaluation_stream_starts(config, data, name)
                                   for data, name in ((train, "meta-train"), (test, "meta-test")))
    return InverseDynamicsTask(
        train=train_samples, train_starts=jnp.asarray(window_starts(train, config.batch_size)),
        test=test_samples, test_starts=jnp.asarray(window_starts(test, config.batch_size // 2)),
        eval_train=_eval_set(train_samples, config.eval_points, eval_key),
        eval_test=_eval_set(test_samples, config.eval_points, eval_key),
        normalizer=normalizer, start_params=start_params, stream_starts=stream_starts, model=model,
        batch_size=config.batch_size, default_batches=default_batches, stream_batch=config.stream_batch,
        online_eval_starts=online_eval_starts, eval_summary="final" if online_eval_starts is None else "mean",
        robot=train.robot,
    )


def _consecutive_windows(data: Dataset, steps: int, batch: int, what: str, unit: str, name: str, fix: str):
    """Starts of every window of ``steps`` x ``batch`` consecutive samples of ``data``; a ValueError naming
    ``what`` needs them and ``fix`` when no trajectory is that long."""
    needed = steps * batch
    longest = max(len(traj) for traj in data)
    if needed > longest:
        raise ValueError(f"{what} {steps} {unit} x {batch} samples = {needed} consecutive samples, but the longest "
                         f"{name} trajectory has {longest}; {fix}")
    return jnp.asarray(window_starts(data, needed))


def _evaluation_stream_starts(config: InverseDynamicsConfig, data: Dataset, name: str) -> jnp.ndarray:
    """Starts of the online evaluations' streams of ``eval_steps`` batches of ``stream_batch`` samples."""
    return _consecutive_windows(data, config.eval_steps, config.stream_batch, "update=online evaluates on streams of",
                                "steps", name, "lower eval_steps")


def _stream_plan(config: InverseDynamicsConfig, train: Dataset) -> tuple[int, jnp.ndarray]:
    """(truncations per epoch by default, the starts of every stream of an epoch's length) for
    update='online'; an epoch of T truncations of M steps needs (T M + 1) stream_batch consecutive samples."""
    longest = max(len(traj) for traj in train)
    default = max(1, (longest // config.stream_batch - 1) // config.iters_max)
    truncations = config.batches_per_epoch or default
    needed = (truncations * config.iters_max + 1) * config.stream_batch
    if needed > longest:
        raise ValueError(
            f"update=online plays {truncations} truncations x {config.iters_max} steps (+1) of {config.stream_batch} "
            f"samples = {needed} consecutive samples per epoch, but the longest meta-train trajectory has {longest}; "
            "lower batches_per_epoch or iters_max")
    return default, jnp.asarray(window_starts(train, needed))


def _posterior_plan(config: InverseDynamicsConfig, train: Dataset) -> tuple[int, jnp.ndarray]:
    """(streams per epoch by default: as many as the meta-train samples fill, the starts of every stream
    of ``iters_max`` batches) for update='posterior'."""
    starts = _consecutive_windows(train, config.iters_max, config.stream_batch,
                                  "update=posterior meta-trains on streams of", "batches", "meta-train", "lower iters_max")
    return max(1, train.num_samples // (config.iters_max * config.stream_batch)), starts


def _warm_start_split(config: InverseDynamicsConfig, model, normalizer, train: Dataset):
    """Pretrain on the even-indexed meta-train trajectories; meta-train on the odd-indexed ones."""
    if len(train) < 2:
        raise ValueError("warm-start meta-training (start='pretrained') needs at least 2 meta-train "
                         f"trajectories (one to pretrain on, one to adapt on), got {len(train)}")
    fit, adapt = train.take(range(0, len(train), 2)), train.take(range(1, len(train), 2))
    c = config
    params, _ = pretrain(model, normalised_samples(fit, normalizer), c.pretrain_models, c.pretrain_steps,
                         c.pretrain_rate, c.batch_size, c.seed + 20_000)
    return adapt, params


def inverse_dynamics_trainer(config: InverseDynamicsConfig, train: Dataset, test: Dataset,
                             normalizer: Normalizer | None = None) -> MetaTrainer:
    """The one meta-trainer on the inverse-dynamics task, for the loss named in ``config.loss``."""
    loss = config.make_loss(train.num_joints)
    require_learned(loss)
    return MetaTrainer(config, inverse_dynamics_task(config, train, test, normalizer), loss)


def save_loss(path, config: InverseDynamicsConfig, loss_params, normalizer: Normalizer, robot: str = "unknown") -> Path:
    """A trained loss with everything needed to use it: config (loss, model), parameters, normalizer, and
    the name of the robot it was meta-trained on."""
    return save_meta_loss(path, config, loss_params, {"normalizer": normalizer._asdict()}, {"robot": robot})


def loss_robot(path) -> str | None:
    """The robot a trained loss was meta-trained on (None for a file written before it was recorded)."""
    _, meta = read_archive(Path(path), "trained loss")
    robot = meta.get("robot")
    return robot if isinstance(robot, str) else None


def load_loss(path):
    """Returns (config, loss, loss_params, normalizer) from a file written by :func:`save_loss`."""
    path = Path(path)
    stored, meta = read_archive(path, "trained loss")
    if "config" not in meta or "['normalizer']['y_mean']" not in stored:
        raise CheckpointError(f"{path}: not a trained loss (no loss config or normaliser; was it written by "
                              "'fastadapt meta-train'?)")
    known = {f.name for f in dataclasses.fields(InverseDynamicsConfig)}
    unknown = sorted(set(meta["config"]) - known)
    if unknown:
        raise CheckpointError(f"{path}: unknown loss config field(s) {unknown}; was it written by a newer fastadapt?")
    try:
        config = InverseDynamicsConfig(**meta["config"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: invalid loss config ({error})") from None
    joints = int(stored["['normalizer']['y_mean']"].shape[0]) if stored["['normalizer']['y_mean']"].ndim == 1 else 0
    if joints < 1:
        raise CheckpointError(f"{path}: the normaliser has no joints")
    loss = config.make_loss(joints)
    zeros = jnp.zeros(joints)
    template = {
        "loss_params": loss.init(jax.random.PRNGKey(0)),
        "normalizer": {"x_mean": jnp.zeros(3 * joints), "x_std": jnp.zeros(3 * joints), "y_mean": zeros, "y_std": zeros},
    }
    tree, _ = load_pytree(path, template, "trained loss")
    for name, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if not np.all(np.isfinite(leaf)):
            raise CheckpointError(f"{path}: entry '{jax.tree_util.keystr(name)}' holds NaN/inf")
    normalizer = Normalizer(**tree["normalizer"])
    if not np.all(np.asarray(normalizer.x_std) > 0) or not np.all(np.asarray(normalizer.y_std) > 0):
        raise CheckpointError(f"{path}: the normaliser's scales must be > 0")
    return config, loss, tree["loss_params"], normalizer
