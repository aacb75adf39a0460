"""The one meta-trainer: runs Algorithm 1 for any task and meta-loss, evaluates, checkpoints, resumes.

Tasks, meta-losses and this trainer are kept apart (:mod:`fastadapt.meta.task`): inverse dynamics
(:mod:`fastadapt.tasks.inverse_dynamics`) and the experiments' own tasks (:mod:`fastadapt.experiments`) are
tasks, and experiments differ only in their task and config. After every ``eval_every`` epochs the current loss
trains fresh optimizees (``eval_seeds`` of them, under vmap) for ``eval_steps`` SGD steps at the inner
rate alpha on each of the task's evaluation splits (Algorithm 2), and the score they reach is recorded
next to what the task's fixed loss (MSE, cross-entropy) reaches (Fig. 3 a, b of the state-dependent paper).

The loss kept at the end is, per seed, the one of the evaluation with the lowest score on the *first*
split (the meta-train data: model selection on training data only; the meta-test data is never used to
choose). The meta-objective looks a few steps ahead of a young optimizee, while a loss is used for
hundreds of steps, and the evaluation can get worse while the meta-objective still improves.

A task may change between epochs (ML3's model-based RL refits its dynamics model P on rollouts of the
policies the current loss trains, Algorithm 3): if it has ``refresh(epoch, loss, loss_params, config, key)
-> task`` (same array shapes), the trainer calls it after every epoch, before the evaluation, and keeps
the returned task in its checkpoint, so a resumed run goes on with the refreshed task.
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

from fastadapt.config import config_dict
from fastadapt.validation import require_at_least, require_choice, require_positive_rates
from fastadapt.checkpoint import CheckpointError, load_pytree, previous_path, read_archive, save_pytree, write_json
from fastadapt.interrupt import deferred_interrupt
from fastadapt.meta.algorithm import UPDATES, MetaState, closed_form, learning_curve, make_meta_optimizer, meta_epoch


KEEP = ("best", "final")  # which epoch's loss a meta-training run keeps (TrainerConfig.keep)


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """The trainer's keys; experiments' configs extend it. Defaults are the state-dependent paper's
    (Section IV-A.2 and Algorithm 1): alpha=0.001, plain SGD on phi with eta=0.01, iters_max=10 inner
    steps per batch with an update of phi after each (``update='step'``), 300 epochs."""

    alpha: float = 1e-3  # inner-loop step size of the optimizee's gradient steps on the learned loss
    eta: float = 1e-2  # meta step size: the optimizer's rate on the loss parameters phi
    meta_optimizer: str = "sgd"  # the optimizer of phi: sgd or adam
    iters_max: int = 10  # inner gradient steps per batch (per truncation with update=online; batches per stream with update=posterior)
    # when phi is updated: "step" (after every inner step), "unroll" (once per batch, through all iters_max
    # inner steps), "online" (the online meta-objective on streams, in truncations of iters_max steps, as
    # in fastadapt.meta.algorithm) or "posterior" (a closed-form learner, alpaca: the log posterior
    # predictive along streams of iters_max batches)
    update: str = "step"
    meta_clip: float = 0.0  # clip the meta-gradient to this global norm (0: no clipping)
    epochs: int = 300  # meta-training epochs
    batches_per_epoch: int = 0  # meta-train batches per epoch (0: the task's default, one pass over the data)
    seeds: int = 1  # independent meta-training runs (vmapped); the best on the meta-train evaluation is kept
    seed: int = 0  # random seed of meta-training (the runs use seed, seed+1, ...)
    eval_every: int = 10  # evaluate the loss every this many epochs
    eval_steps: int = 100  # optimizee steps in each evaluation
    eval_seeds: int = 5  # fresh optimizees per evaluation
    # the loss kept at the end: "best" (per seed, the evaluation epoch with the lowest score on the first
    # evaluation split, meta-train) or "final" (the last epoch's, what the papers report); the seed kept is
    # then the one whose kept loss scores lowest there
    keep: str = "best"

    def __post_init__(self):
        require_at_least(self, 1, "iters_max", "epochs", "seeds", "eval_every", "eval_steps", "eval_seeds")
        require_at_least(self, 0, "batches_per_epoch", "seed")
        require_positive_rates(self, "alpha", "eta")
        require_positive_rates(self, "meta_clip", allow_zero=True)
        require_choice(self, "update", UPDATES)
        require_choice(self, "keep", KEEP)
        if self.meta_optimizer not in ("sgd", "adam"):
            raise ValueError(f"unknown meta optimizer '{self.meta_optimizer}', expected 'adam' or 'sgd'")


@dataclasses.dataclass
class MetaTrainResult:
    config: TrainerConfig
    loss_params: object  # best seed's parameters
    history: dict
    directory: Path | None
    seed_params: object = None  # every seed's selected parameters, stacked [seeds, ...]


def require_learned(loss) -> None:
    if not loss.learned:
        raise ValueError(f"loss '{loss.name}' has no parameters to meta-train")


class MetaTrainer:
    """Meta-trains ``loss`` on ``task`` with Algorithm 1 and evaluates it with Algorithm 2."""

    def __init__(self, config: TrainerConfig, task, loss):
        require_learned(loss)
        self.config, self.task, self.loss = config, task, loss
        self.meta_optimizer = make_meta_optimizer(config.meta_optimizer, config.eta, config.meta_clip)
        self.num_batches = config.batches_per_epoch or task.default_batches
        if config.update in ("online", "posterior") and not hasattr(task, "meta_stream"):
            raise ValueError(f"update='{config.update}' needs a task that plays streams (meta_stream); "
                             f"{type(task).__name__} has none")
        if closed_form(loss) != (config.update == "posterior"):
            raise ValueError(f"'{loss.name}' adapts in closed form and meta-trains with update=posterior only"
                             if closed_form(loss) else
                             f"update=posterior meta-trains a closed-form learner (alpaca), not the loss '{loss.name}'")
        if config.update == "posterior" and not hasattr(task, "examples"):
            raise ValueError(f"update='posterior' needs a task that gives its batches' examples (examples); "
                             f"{type(task).__name__} has none")
        self._epoch = _compiled_epoch(loss, config.meta_optimizer, config.eta, config.meta_clip, config.alpha,
                                      config.iters_max, self.num_batches, config.update)

    # --- state ---------------------------------------------------------------------------------------
    def initial_state(self) -> tuple[MetaState, jnp.ndarray]:
        keys = jax.random.split(jax.random.PRNGKey(self.config.seed), self.config.seeds)
        loss_params = jax.vmap(self.loss.init)(keys)
        return MetaState(loss_params, jax.vmap(self.meta_optimizer.init)(loss_params)), keys

    def curves(self, loss, loss_params, split: str, key, alpha: float | None = None) -> np.ndarray:
        """Scores [eval_seeds, eval_steps + 1] of fresh optimizees trained with ``loss`` on ``split`` (at
        the inner rate, or at ``alpha``)."""
        return np.asarray(self.trained(loss, loss_params, split, key, alpha)[0])

    def trained(self, loss, loss_params, split: str, key, alpha: float | None = None):
        """The same runs as :meth:`curves`: (scores [eval_seeds, eval_steps + 1], the trained optimizees'
        parameters stacked [eval_seeds, ...]), e.g. for a second metric of the final models."""
        c = self.config
        return _curves(self.task, loss, loss_params, split, key, c.eval_steps, c.alpha if alpha is None else alpha,
                       c.eval_seeds)

    def eval_sets(self, split: str, key):
        """The ``eval_set`` of each run of :meth:`trained` with ``key`` (e.g. each run's goal), stacked."""
        return self._eval_problems(split, key)[2]

    def eval_starts(self, split: str, key):
        """The theta_0 of each run of :meth:`trained` with ``key`` (e.g. to start a baseline from it), stacked."""
        return self._eval_problems(split, key)[0]

    def _eval_problems(self, split: str, key):
        keys = _run_keys(key, self.config.eval_seeds)
        return jax.vmap(lambda k, i: self.task.eval_problem(split, k, i, 1))(keys, jnp.arange(self.config.eval_seeds))

    def summary(self, curves) -> np.ndarray:
        """What an evaluation run scores [runs]: its final score, or, for a task whose ``eval_summary`` is
        ``"mean"`` (online evaluations, each batch scored before the step on it), the mean over the run."""
        curves = np.asarray(curves)
        return curves.mean(-1) if getattr(self.task, "eval_summary", "final") == "mean" else curves[:, -1]

    def evaluate(self, state: MetaState, epoch: int) -> dict:
        """Each seed's current loss scored by :meth:`summary` after ``eval_steps`` steps, per split: mean
        and std over the evaluation seeds, one entry per loss seed."""
        result = {}
        for split in self.task.eval_splits:
            key = jax.random.fold_in(jax.random.PRNGKey(self.config.seed + 1), epoch)
            finals = []
            for s in range(self.config.seeds):
                params = jax.tree.map(lambda a: a[s], state.loss_params)
                finals.append(self.summary(self.curves(self.loss, params, split, key)))
            finals = np.stack(finals)
            result[split] = {"mean": finals.mean(1).tolist(), "std": finals.std(1).tolist()}
        return result

    def baseline(self) -> dict:
        """The same evaluation for the task's fixed loss (a constant line in the meta-train figures)."""
        result = {}
        for split in self.task.eval_splits:
            finals = self.summary(self.curves(self.task.baseline_loss, {}, split, jax.random.PRNGKey(self.config.seed + 1)))
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
        bar = tqdm(range(start, c.epochs), initial=start, total=c.epochs, desc=f"meta-train {self.loss.name}",
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
            save_meta_loss(directory / "loss.npz", c, params, self.task.saved_arrays(),
                           getattr(self.task, "saved_metadata", dict)())
            write_json(directory / "history.json", history)
        return MetaTrainResult(c, params, history, directory, best["params"])

    def _run_epoch(self, epoch: int, state, keys, best, history, directory, bar, on_epoch):
        """One epoch of Algorithm 1, its evaluation, and the checkpoint (before anything can stop the run)."""
        c = self.config
        epoch_keys = jax.vmap(lambda k: jax.random.fold_in(k, epoch))(keys)
        state, task_losses = self._epoch(self.task, state, epoch_keys)
        task_loss = np.asarray(task_losses).mean(1)
        if not np.all(np.isfinite(task_loss)):
            raise FloatingPointError(
                f"meta-training of '{self.loss.name}' diverged at epoch {epoch + 1} (task loss {task_loss}); "
                "try a smaller eta or alpha")
        if self._refreshes:
            key = jax.random.fold_in(jax.random.PRNGKey(c.seed + 2), epoch)
            self.task = self.task.refresh(epoch + 1, self.loss, state.loss_params, c, key)
        history["epoch"].append(epoch + 1)
        history["task_loss"].append(task_loss.tolist())
        if (epoch + 1) % c.eval_every == 0 or epoch + 1 == c.epochs:
            history["eval"].append(self.evaluate(state, epoch + 1))
            history["eval_epoch"].append(epoch + 1)
            selection = history["eval"][-1][self.task.eval_splits[0]]["mean"]
            best = _keep_best(best, state.loss_params, selection, epoch + 1, latest=c.keep == "final")
        bar.set_postfix(task_loss=f"{task_loss.mean():.4f}")
        if directory is not None:
            self._save(directory, state, keys, best, history, epoch + 1)
        if on_epoch is not None:
            on_epoch(epoch + 1, history)
        return state, best

    @property
    def _refreshes(self) -> bool:
        return hasattr(self.task, "refresh")

    def _checkpointed(self, state, keys, best) -> dict:
        tree = {"state": state, "keys": keys, "best": best}
        return {**tree, "task": self.task} if self._refreshes else tree

    def _save(self, directory: Path, state, keys, best, history, epoch: int) -> None:
        meta = {"config": config_dict(self.config), "epoch": epoch, "history": history}
        save_pytree(directory / CHECKPOINT, self._checkpointed(state, keys, best), meta, keep_previous=True)

    def _resume(self, directory: Path, state, keys, best, history):
        path = directory / CHECKPOINT
        if not path.exists():
            return state, keys, best, history, 0
        try:
            tree, meta = load_pytree(path, self._checkpointed(state, keys, best))
            epoch, history = int(meta["epoch"]), meta["history"]
        except (CheckpointError, KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{error if isinstance(error, CheckpointError) else f'{path}: damaged ({error})'}. "
                                  + _recovery_hint(path)) from None
        saved = meta.get("config", {})
        mine = config_dict(self.config)
        defaults = config_dict(type(self.config)())
        changed = {k: (saved.get(k, defaults.get(k)), v) for k, v in mine.items()
                   if k != "epochs" and saved.get(k, defaults.get(k)) != v}
        if changed:
            raise ValueError(
                f"{path} was written with a different config {changed} (saved, requested); "
                "use another run directory"
            )
        if self._refreshes:
            self.task = tree["task"]
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


def _keep_best(best: dict, loss_params, scores, epoch: int, latest: bool = False) -> dict:
    """Per seed, keep the loss parameters whose evaluation (on the first split) is the lowest so far, or
    with ``latest`` the ones just evaluated (``keep='final'``: the last evaluation is the last epoch's)."""
    scores = jnp.asarray(scores)
    better = jnp.ones(scores.shape, bool) if latest else scores < best["score"]
    pick = lambda new, old: jnp.where(better.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)
    return {
        "params": jax.tree.map(pick, loss_params, best["params"]),
        "score": jnp.where(better, scores, best["score"]),
        "epoch": jnp.where(better, epoch, best["epoch"]),
    }


def save_meta_loss(path, config, loss_params, arrays: dict | None = None, metadata: dict | None = None) -> Path:
    """A trained meta-loss with what is needed to use it: its config, parameters, the task's
    ``saved_arrays`` (e.g. a normaliser) and ``saved_metadata`` (e.g. the robot's name)."""
    return save_pytree(path, {"loss_params": loss_params, **(arrays or {})},
                       {**(metadata or {}), "config": config_dict(config)})


@functools.lru_cache(maxsize=32)
def _compiled_epoch(loss, meta_optimizer: str, eta: float, clip: float, alpha: float, iters_max: int, num_batches: int,
                    update: str):
    """One meta-epoch for all seeds (vmap), jitted. The task (its arrays) is an argument, not a constant baked
    into the compiled epoch, and trainers with the same settings share the function and its compilations
    (e.g. the shaped and the unshaped task of one experiment)."""
    epoch = functools.partial(meta_epoch, loss=loss, meta_optimizer=make_meta_optimizer(meta_optimizer, eta, clip),
                              alpha=alpha, iters_max=iters_max, num_batches=num_batches, update=update)
    return jax.jit(jax.vmap(lambda task, state, key: epoch(task, state=state, key=key), in_axes=(None, 0, 0)))


@functools.partial(jax.jit, static_argnames=("loss", "split", "steps", "seeds"))
def _curves(task, loss, loss_params, split: str, key, steps: int, alpha, seeds: int):
    """Algorithm 2 for ``seeds`` evaluation runs of ``task.eval_problem`` side by side (vmap): scores and
    final parameters."""

    def one(k, index):
        theta0, batches, eval_set = task.eval_problem(split, k, index, steps)
        return learning_curve(task, loss, loss_params, alpha, theta0, batches, eval_set)

    return jax.vmap(one)(_run_keys(key, seeds), jnp.arange(seeds))


def _run_keys(key, runs: int):
    """The key of each evaluation run (one scheme for :func:`_curves` and :meth:`MetaTrainer.eval_sets`)."""
    return jax.random.split(key, runs)
