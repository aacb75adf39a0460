"""What every ML3 experiment reports after meta-training: learning curves (Algorithm 2) of fresh
optimizees trained with each seed's learned loss and with the task's own loss, on the same runs (keys)."""

from __future__ import annotations

import jax
import numpy as np

from fastadapt.meta.trainer import MetaTrainer, MetaTrainResult


def seed_params(result: MetaTrainResult, seed: int):
    return jax.tree.map(lambda a: a[seed], result.seed_params)


def compare_curves(trainer: MetaTrainer, result: MetaTrainResult, split: str, key, loss=None,
                   final_metric=None) -> tuple[dict, dict | None]:
    """({"task loss": [runs, steps + 1], "ML3": [seeds, runs, steps + 1]}, finals): the task's score
    along SGD at alpha with its fixed loss and with each seed's selected meta-loss (``loss``: the
    trainer's by default), every loss on the same runs. ``final_metric(thetas) -> [runs]``, if given,
    scores the trained optimizees once more (e.g. accuracy); ``finals`` has the same keys, else is None."""
    loss = loss or trainer.loss
    runs = {"task loss": trainer.trained(trainer.task.baseline_loss, {}, split, key),
            "ML3": [trainer.trained(loss, seed_params(result, s), split, key) for s in range(trainer.config.seeds)]}
    curves = {"task loss": np.asarray(runs["task loss"][0]), "ML3": np.stack([np.asarray(r[0]) for r in runs["ML3"]])}
    if final_metric is None:
        return curves, None
    return curves, {"task loss": np.asarray(final_metric(runs["task loss"][1]))[:, None],
                    "ML3": np.stack([np.asarray(final_metric(r[1])) for r in runs["ML3"]])[:, :, None]}


def final_summary(curves: dict, step: int = -1) -> dict:
    """Values after ``step`` gradient steps (by default the last entry of each curve): ML3 per seed (mean
    over runs), its mean and std over seeds; the task loss's mean."""
    per_seed = curves["ML3"][:, :, step].mean(1)
    return {"ML3": {"mean": float(per_seed.mean()), "std": float(per_seed.std()), "per_seed": per_seed.tolist()},
            "task loss": float(curves["task loss"][:, step].mean())}


def meta_train_evaluations(history: dict, split: str = "meta-train") -> np.ndarray:
    """The trainer's evaluations on ``split``: [evaluations, seeds]."""
    return np.asarray([e[split]["mean"] for e in history["eval"]])


SHAPED_LOSSES = ("shaped ML3", "unshaped ML3")


def shaped_and_unshaped(config, make_task, loss, directory, key, progress: bool = True,
                        final_metric: str | None = None) -> dict:
    """Meta-train ``loss`` twice, on ``make_task(shaped=True)`` (the task loss with the extra information,
    eq. 9) and on ``make_task(shaped=False)`` (the plain task loss), each into its own subdirectory of
    ``directory`` (resumable), and evaluate both on the same meta-test runs as the task's fixed loss.

    Returns {"curves": {name: [seeds, runs, steps + 1] or, for the fixed loss "MSE", [runs, steps + 1]},
    "finals": the same for the task method ``final_metric`` of the final optimizees (or None),
    "params": each loss's selected parameters, "history": each loss's trainer history, "task": the
    shaped task, "batches": outer iterations per epoch}."""
    out = {"curves": {}, "finals": {}, "params": {}, "history": {}}
    for name, shaped in zip(SHAPED_LOSSES, (True, False)):
        task = make_task(shaped=shaped)
        trainer = MetaTrainer(config, task, loss)
        result = trainer.run(directory / ("loss-shaped" if shaped else "loss-unshaped"), progress=progress)
        metric = getattr(task, final_metric) if final_metric else None
        curves, finals = compare_curves(trainer, result, "meta-test", key, final_metric=metric)
        out["curves"][name], out["curves"]["MSE"] = curves["ML3"], curves["task loss"]
        if finals is not None:
            out["finals"][name], out["finals"]["MSE"] = finals["ML3"], finals["task loss"]
        out["params"][name], out["history"][name] = result.loss_params, result.history
        if shaped:
            out["task"], out["batches"] = task, trainer.num_batches
    return out


def shaped_summary(curves: dict, step: int = -1) -> dict:
    """Values per loss after ``step`` gradient steps (by default the final ones): the shaped and unshaped
    ML3 losses' mean and std over seeds, the fixed loss's mean."""
    summary = {name: final_summary({"ML3": curves[name], "task loss": curves["MSE"]}, step)["ML3"]
               for name in SHAPED_LOSSES}
    summary["MSE"] = float(curves["MSE"][:, step].mean())
    return summary
