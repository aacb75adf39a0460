"""What every meta-trained loss is judged by after meta-training: learning curves (Algorithm 2) of fresh
optimizees trained with each seed's learned loss and with the task's own loss, on the same runs (keys),
the task loss's rate tuned on meta-train data, and the summaries the reports print."""

from __future__ import annotations

import dataclasses

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


def tuned_baseline(trainer: MetaTrainer, config, key) -> tuple[float, dict]:
    """The task-loss baseline's rate, chosen on meta-train data as the learned loss's training is: the
    multiple of ``config.alpha`` in ``config.baseline_rates`` whose curves on the meta-train split end
    lowest (the task's ``baseline_loss``, the mean over runs of the last value); returns (rate, {rate:
    that mean}), a diverged rate's mean being inf."""
    loss = trainer.task.baseline_loss
    finals = {}
    for multiple in config.baseline_rates:
        curves = trainer.curves(loss, {}, "meta-train", key, config.alpha * multiple)
        final = float(np.mean(curves[:, -1]))
        finals[config.alpha * multiple] = final if np.isfinite(final) else float("inf")
    return min(finals, key=finals.get), finals


def evaluate_policies(trainer: MetaTrainer, result, config):
    """The meta-test of a goal-reaching task (one with ``eval_splits``, ``baseline_loss``, an ``env`` with
    ``position(states)`` and ``system_rollout(theta, goal)``; the model-based RL and demonstration
    experiments'): the baseline's tuned rate (:func:`tuned_baseline`), then per split the curves {"ML3": [seeds, runs, steps + 1], "task loss": [runs, steps + 1]}
    and the paths {"positions", "goals"} of the best seed's trained policies on the system. Returns
    (rate, {rate: meta-train final}, curves, paths)."""
    task, loss = trainer.task, trainer.loss
    key = jax.random.PRNGKey(config.seed + 99)
    rate, rate_finals = tuned_baseline(trainer, config, key)
    curves, paths = {}, {}
    for split in task.eval_splits:
        runs = [trainer.trained(loss, seed_params(result, s), split, key) for s in range(config.seeds)]
        curves[split] = {"ML3": np.stack([np.asarray(r[0]) for r in runs]),
                         "task loss": trainer.curves(task.baseline_loss, {}, split, key, rate)}
        goals = trainer.eval_sets(split, key)
        best = runs[result.history["best_seed"]][1]
        states = jax.vmap(lambda th, g: task.system_rollout(th, g)[0])(best, goals)
        paths[split] = {"positions": np.asarray(task.env.position(states)), "goals": np.asarray(goals)}
    return rate, rate_finals, curves, paths


def fresh_start_curves(config, pairs, loss, split: str, key, runs: int, rates) -> dict:
    """Why a loss meta-trained from one fixed initial policy may not be an optimiser: the same learned
    losses and the same task-loss baseline, trained from ``runs`` *fresh* random policies instead of the
    fixed theta_0 they were meta-trained from. ``pairs``: one (task, loss parameters) per seed, the tasks
    having a fixed start and a ``fresh_starts`` switch (the RL paper protocols'); the task loss is
    optimised at ``rates`` (one rate, or one per pair). Returns {"ML3": [seeds, runs, steps + 1], "task loss": [seeds x runs, steps + 1]},
    the same shapes as :func:`evaluate_policies`' curves."""
    fresh_config = dataclasses.replace(config, seeds=1, eval_seeds=runs)
    ml3, task_loss = [], []
    rates = list(rates) if np.ndim(rates) else [rates] * len(pairs)
    for (task, params), rate in zip(pairs, rates):
        trainer = MetaTrainer(fresh_config, dataclasses.replace(task, fresh_starts=True), loss)
        ml3.append(trainer.curves(loss, params, split, key))
        task_loss.append(trainer.curves(task.baseline_loss, {}, split, key, rate))
    return {"ML3": np.stack(ml3), "task loss": np.concatenate(task_loss)}


def stack_seed_curves(runs: list) -> dict:
    """:func:`evaluate_policies`' curves of one run per seed ({split: {"ML3": [1, runs, steps + 1], "task
    loss": [runs, steps + 1]}} each), stacked as if the seeds had run side by side: ML3 [seeds, runs,
    steps + 1], the task loss [seeds x runs, steps + 1]."""
    return {split: {name: np.concatenate([c[split][name] for c in runs]) for name in ("ML3", "task loss")}
            for split in runs[0]}
