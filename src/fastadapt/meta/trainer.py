"""The meta-trainer: runs Algorithm 1 for epochs, evaluates the losses, checkpoints, resumes.

One trainer serves every learned loss and dataset; experiments differ only in their config. After every
``eval_every`` epochs the current loss trains fresh models (``eval_seeds`` of them, under vmap) for
``eval_steps`` SGD steps at the inner rate alpha on the meta-train and the meta-test data, and the MSE
they reach is recorded next to what the plain MSE loss reaches (Fig. 3 a, b).

The loss kept at the end is, per seed, the one of the evaluation with the lowest *meta-train* MSE
(model selection on the training data only; the meta-test data is never used to choose). The
meta-objective looks one step ahead of a model at most ``iters_max`` steps old, while a loss is used for
hundreds of steps, and the 100-step evaluation can get worse while the meta-objective still improves.

Warm start (``start='pretrained'``, beyond the paper): the loss is meta-trained for adapting models that
are already trained, the practitioner's protocol. The meta-train trajectories are split alternately in
two: ``pretrain_models`` networks are fitted offline (Adam on MSE) to the first half, and Algorithm 1
starts each batch from one of them instead of a random theta, on windows of the *other* half. The loss
thus learns how far to move a trained model on data it has not seen, which may be not at all. The
evaluations start from the same pretrained models.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from fastadapt.adapt.pretrain import pretrain
from fastadapt.adapt.runner import run_updates
from fastadapt.experiments.config import config_dict
from fastadapt.experiments.validation import require_at_least, require_positive_rates
from fastadapt.checkpoint import CheckpointError, load_pytree, previous_path, read_archive, save_pytree, write_json
from fastadapt.data.batches import Normalizer, Samples, gather_windows, normalised_samples, window_starts
from fastadapt.data.trajectory import Dataset
from fastadapt.interrupt import deferred_interrupt
from fastadapt.losses import make_loss
from fastadapt.meta.algorithm import MetaState, make_meta_optimizer, meta_epoch
from fastadapt.models.mlp import InverseDynamicsMLP, check_activation


@dataclasses.dataclass(frozen=True)
class MetaTrainConfig:
    """Defaults are the paper's (Section IV-A.2 and Algorithm 1): K=256, alpha=0.001, plain SGD on phi
    with eta=0.01, iters_max=10, 300 epochs."""

    loss: str = "state-dependent"
    batch_size: int = 256
    alpha: float = 1e-3
    eta: float = 1e-2
    meta_optimizer: str = "sgd"
    iters_max: int = 10
    epochs: int = 300
    batches_per_epoch: int = 0  # 0: one pass, num_samples // batch_size
    seeds: int = 1
    seed: int = 0
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    eval_every: int = 10
    eval_steps: int = 100
    eval_seeds: int = 5
    eval_points: int = 2048
    start: str = "random"  # or "pretrained": warm-start meta-training (see the module docstring)
    pretrain_models: int = 5
    pretrain_steps: int = 3000
    pretrain_rate: float = 1e-3

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        require_at_least(self, 1, "batch_size", "iters_max", "epochs", "seeds", "eval_every", "eval_steps", "eval_seeds",
                         "eval_points", "pretrain_models", "pretrain_steps", "hidden")
        require_at_least(self, 0, "batches_per_epoch", "seed")
        require_positive_rates(self, "alpha", "eta", "pretrain_rate")
        check_activation(self.activation)
        make_loss(self.loss, 1)  # an unknown loss name fails here, not after the run directory is made
        if self.meta_optimizer not in ("sgd", "adam"):
            raise ValueError(f"unknown meta optimizer '{self.meta_optimizer}', expected 'adam' or 'sgd'")
        if self.start not in ("random", "pretrained"):
            raise ValueError(f"unknown start '{self.start}', expected 'random' or 'pretrained'")
        if self.batch_size % 2:
            raise ValueError(f"batch_size must be even (it is split in halves A and B), got {self.batch_size}")

    def unused_keys(self) -> dict[str, str]:
        if self.start == "pretrained":
            return {}
        reason = "it is used with start=pretrained only"
        return {"pretrain_models": reason, "pretrain_steps": reason, "pretrain_rate": reason}

    def model(self, num_joints: int) -> InverseDynamicsMLP:
        return InverseDynamicsMLP(num_joints, self.hidden, self.activation)


@dataclasses.dataclass
class MetaTrainResult:
    config: MetaTrainConfig
    loss_params: object  # best seed's parameters
    normalizer: Normalizer
    history: dict
    directory: Path | None


def _eval_set(samples: Samples, points: int, key) -> Samples:
    n = samples.x.shape[0]
    if n <= points:
        return samples
    index = jax.random.choice(key, n, (points,), replace=False)
    return Samples(samples.x[index], samples.y[index])


def learning_curves(model, loss, loss_params, key, samples: Samples, starts, steps: int, batch_size: int,
                    alpha: float, seeds: int, eval_set: Samples, init_params=None):
    """MSE on ``eval_set`` while models train with ``loss``: [seeds, steps + 1] (step 0 = the start).
    Models start fresh, or from the stacked ``init_params`` [P, ...] (seed i from model i mod P)."""
    keys = jax.random.split(key, seeds)

    def one(k, index):
        init_key, pick_key = jax.random.split(k)
        chosen = jax.random.choice(pick_key, starts, (steps,))
        batches = gather_windows(samples, chosen, batch_size)
        theta0 = model.init(init_key) if init_params is None else jax.tree.map(lambda a: a[index], init_params)
        theta, scores = run_updates(model, loss, "sgd", alpha, loss_params, theta0, batches, eval_set)
        final = jnp.mean(jnp.square(model.apply(theta, eval_set.x) - eval_set.y))
        return jnp.concatenate([scores, final[None]])

    count = 1 if init_params is None else jax.tree.leaves(init_params)[0].shape[0]
    return jax.vmap(one)(keys, jnp.arange(seeds) % count)


class MetaTrainer:
    """Meta-trains one learned loss on ``train`` and evaluates it on ``train`` and ``test``."""

    def __init__(self, config: MetaTrainConfig, train: Dataset, test: Dataset, normalizer: Normalizer | None = None):
        self.config = config
        self.loss = make_loss(config.loss, train.num_joints)
        if not self.loss.learned:
            raise ValueError(f"loss '{config.loss}' has no parameters to meta-train")
        test.check_joints(train.num_joints, "meta-test data")
        self.normalizer = normalizer or Normalizer.fit(train)
        self.model = config.model(train.num_joints)
        self.meta_optimizer = make_meta_optimizer(config.meta_optimizer, config.eta)
        self.start_params = None
        if config.start == "pretrained":
            train, self.start_params = self._warm_start_split(train)
        self.train = normalised_samples(train, self.normalizer)
        self.test = normalised_samples(test, self.normalizer)
        self.train_starts = jnp.asarray(window_starts(train, config.batch_size))
        self.test_starts = jnp.asarray(window_starts(test, config.batch_size // 2))
        self.num_batches = config.batches_per_epoch or max(1, train.num_samples // config.batch_size)
        self._epoch = jax.jit(jax.vmap(
            functools.partial(meta_epoch, self.model, self.loss, self.meta_optimizer, config.alpha,
                              config.iters_max, config.batch_size, self.num_batches),
            in_axes=(0, 0, None, None, None),
        ))
        eval_key = jax.random.PRNGKey(config.seed + 10_000)
        self.eval_sets = {
            "meta-train": _eval_set(self.train, config.eval_points, eval_key),
            "meta-test": _eval_set(self.test, config.eval_points, eval_key),
        }

    def _warm_start_split(self, train: Dataset):
        """Pretrain on the even-indexed meta-train trajectories; meta-train on the odd-indexed ones."""
        if len(train) < 2:
            raise ValueError("warm-start meta-training (start='pretrained') needs at least 2 meta-train "
                             f"trajectories (one to pretrain on, one to adapt on), got {len(train)}")
        fit, adapt = train.take(range(0, len(train), 2)), train.take(range(1, len(train), 2))
        c = self.config
        params, _ = pretrain(self.model, normalised_samples(fit, self.normalizer), c.pretrain_models,
                             c.pretrain_steps, c.pretrain_rate, c.batch_size, c.seed + 20_000)
        return adapt, params

    # --- state ---------------------------------------------------------------------------------------
    def initial_state(self) -> tuple[MetaState, jnp.ndarray]:
        keys = jax.random.split(jax.random.PRNGKey(self.config.seed), self.config.seeds)
        loss_params = jax.vmap(self.loss.init)(keys)
        return MetaState(loss_params, jax.vmap(self.meta_optimizer.init)(loss_params)), keys

    def curves(self, loss, loss_params, split: str, key) -> np.ndarray:
        """Learning curves [seeds, eval_steps + 1] of fresh models trained with ``loss`` on ``split``."""
        samples, starts = (self.train, self.train_starts) if split == "meta-train" else (self.test, self.test_starts)
        c = self.config
        return np.asarray(learning_curves(
            self.model, loss, loss_params, key, samples, starts, c.eval_steps, c.batch_size // 2,
            c.alpha, c.eval_seeds, self.eval_sets[split], self.start_params,
        ))

    def evaluate(self, state: MetaState, epoch: int) -> dict:
        """Final MSE after ``eval_steps`` steps with each seed's current loss, per split: mean and std
        over the evaluation seeds, one entry per loss seed."""
        result = {}
        for split in self.eval_sets:
            key = jax.random.fold_in(jax.random.PRNGKey(self.config.seed + 1), epoch)
            finals = []
            for s in range(self.config.seeds):
                params = jax.tree.map(lambda a: a[s], state.loss_params)
                finals.append(self.curves(self.loss, params, split, key)[:, -1])
            finals = np.stack(finals)
            result[split] = {"mean": finals.mean(1).tolist(), "std": finals.std(1).tolist()}
        return result

    def baseline(self) -> dict:
        """The same evaluation for the plain MSE loss (a constant line in Fig. 3 a, b)."""
        mse_loss = make_loss("mse", self.model.num_joints)
        result = {}
        for split in self.eval_sets:
            finals = self.curves(mse_loss, {}, split, jax.random.PRNGKey(self.config.seed + 1))[:, -1]
            result[split] = {"mean": float(finals.mean()), "std": float(finals.std())}
        return result

    # --- the loop ------------------------------------------------------------------------------------
    def run(self, directory=None, progress: bool = True, on_epoch: Callable | None = None) -> MetaTrainResult:
        """Meta-train for ``config.epochs``. With a ``directory``, a checkpoint is written atomically after
        every epoch and an existing one with the same config is resumed from."""
        c = self.config
        state, keys = self.initial_state()
        best = {"params": state.loss_params, "score": jnp.full(c.seeds, jnp.inf), "epoch": jnp.zeros(c.seeds, jnp.int32)}
        history = {"epoch": [], "task_loss": [], "eval": [], "eval_epoch": [], "baseline": None}
        start = 0
        directory = Path(directory) if directory else None
        if directory is not None:
            state, keys, best, history, start = self._resume(directory, state, keys, best, history)
        if history["baseline"] is None:
            history["baseline"] = self.baseline()
        bar = tqdm(range(start, c.epochs), initial=start, total=c.epochs, desc=f"meta-train {c.loss}",
                   disable=not progress, leave=False)
        with deferred_interrupt("this epoch's checkpoint" if directory is not None else "this epoch") as stop:
            for epoch in bar:
                state, best = self._run_epoch(epoch, state, keys, best, history, directory, bar, on_epoch)
                stop.check()
        bar.close()
        seed = int(jnp.argmin(best["score"]))

        params = jax.tree.map(lambda a: a[seed], best["params"])
        history["best_seed"] = seed
        history["selected_epoch"] = int(best["epoch"][seed])
        if directory is not None:
            save_loss(directory / "loss.npz", c, params, self.normalizer)
            write_json(directory / "history.json", history)
        return MetaTrainResult(c, params, self.normalizer, history, directory)

    def _run_epoch(self, epoch: int, state, keys, best, history, directory, bar, on_epoch):
        """One epoch of Algorithm 1, its evaluation, and the checkpoint (before anything can stop the run)."""
        c = self.config
        epoch_keys = jax.vmap(lambda k: jax.random.fold_in(k, epoch))(keys)
        state, task_losses = self._epoch(state, epoch_keys, self.train, self.train_starts, self.start_params)
        task_loss = np.asarray(task_losses).mean(1)
        if not np.all(np.isfinite(task_loss)):
            raise FloatingPointError(
                f"meta-training of '{c.loss}' diverged at epoch {epoch + 1} (task loss {task_loss}); "
                "try a smaller eta or alpha")
        history["epoch"].append(epoch + 1)
        history["task_loss"].append(task_loss.tolist())
        if (epoch + 1) % c.eval_every == 0 or epoch + 1 == c.epochs:
            history["eval"].append(self.evaluate(state, epoch + 1))
            history["eval_epoch"].append(epoch + 1)
            best = _keep_best(best, state.loss_params, history["eval"][-1]["meta-train"]["mean"], epoch + 1)
        bar.set_postfix(task_mse=f"{task_loss.mean():.4f}")
        if directory is not None:
            self._save(directory, state, keys, best, history, epoch + 1)
        if on_epoch is not None:
            on_epoch(epoch + 1, history)
        return state, best

    def _save(self, directory: Path, state, keys, best, history, epoch: int) -> None:
        meta = {"config": config_dict(self.config), "epoch": epoch, "history": history}
        save_pytree(directory / CHECKPOINT, {"state": state, "keys": keys, "best": best}, meta, keep_previous=True)

    def _resume(self, directory: Path, state, keys, best, history):
        path = directory / CHECKPOINT
        if not path.exists():
            return state, keys, best, history, 0
        try:
            tree, meta = load_pytree(path, {"state": state, "keys": keys, "best": best})
            epoch, history = int(meta["epoch"]), meta["history"]
        except (CheckpointError, KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{error if isinstance(error, CheckpointError) else f'{path}: damaged ({error})'}. "
                                  + _recovery_hint(path)) from None
        saved = meta.get("config", {})
        mine = config_dict(self.config)
        changed = {k: (saved.get(k), v) for k, v in mine.items() if k != "epochs" and saved.get(k) != v}
        if changed:
            raise ValueError(
                f"{path} was written with a different config {changed} (saved, requested); "
                "use another run directory"
            )
        return tree["state"], tree["keys"], tree["best"], history, epoch


CHECKPOINT = "checkpoint.npz"


def _recovery_hint(path: Path) -> str:
    """How to go on from a damaged checkpoint: the previous one, if it is whole, or a restart."""
    previous = previous_path(path)
    try:
        _, meta = read_archive(previous)
        return (f"To resume from the previous checkpoint (epoch {int(meta['epoch'])}), replace it: "
                f"mv {previous} {path}; or restart the run with --force")
    except (OSError, ValueError, KeyError, TypeError):
        return "No whole previous checkpoint is left: restart the run with --force"


def _keep_best(best: dict, loss_params, scores, epoch: int) -> dict:
    """Per seed, keep the loss parameters whose evaluation (meta-train MSE) is the lowest so far."""
    scores = jnp.asarray(scores)
    better = scores < best["score"]
    pick = lambda new, old: jnp.where(better.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)
    return {
        "params": jax.tree.map(pick, loss_params, best["params"]),
        "score": jnp.where(better, scores, best["score"]),
        "epoch": jnp.where(better, epoch, best["epoch"]),
    }


def save_loss(path, config: MetaTrainConfig, loss_params, normalizer: Normalizer) -> Path:
    """A trained loss with everything needed to use it: config (loss, model), parameters, normalizer."""
    return save_pytree(path, {"loss_params": loss_params, "normalizer": normalizer._asdict()},
                       {"config": config_dict(config)})


def load_loss(path):
    """Returns (config, loss, loss_params, normalizer) from a file written by :func:`save_loss`."""
    path = Path(path)
    stored, meta = read_archive(path, "trained loss")
    if "config" not in meta or "['normalizer']['y_mean']" not in stored:
        raise CheckpointError(f"{path}: not a trained loss (no loss config or normaliser; was it written by "
                              "'fastadapt meta-train'?)")
    known = {f.name for f in dataclasses.fields(MetaTrainConfig)}
    unknown = sorted(set(meta["config"]) - known)
    if unknown:
        raise CheckpointError(f"{path}: unknown loss config field(s) {unknown}; was it written by a newer fastadapt?")
    try:
        config = MetaTrainConfig(**meta["config"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: invalid loss config ({error})") from None
    joints = int(stored["['normalizer']['y_mean']"].shape[0]) if stored["['normalizer']['y_mean']"].ndim == 1 else 0
    if joints < 1:
        raise CheckpointError(f"{path}: the normaliser has no joints")
    loss = make_loss(config.loss, joints)
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
