"""The commands that work on the user's own data files rather than an experiment's: ``fastadapt data``
(simulate, inspect, convert, import), ``fastadapt meta-train`` (one learned loss on the user's meta-train
and meta-test files, :mod:`fastadapt.tasks.inverse_dynamics`) and ``fastadapt adapt``, here: fresh models
adapted online on the user's stream with a trained loss and with MSE, at one rate (by default the one the
loss file carries, the rate it was meta-trained for), beside the classical anchors: RLS on random Fourier
features and linear RLS (:mod:`fastadapt.adapt.rls`). ``adapt`` sees no meta-train data, so the anchors
run at the ``rls.*`` keys (defaults: the setting ``fastadapt run sim`` chose on its meta-train data;
``run schunk`` chose the same but a length scale of 8); ``fastadapt run`` chooses them on meta-train data.
An ALPaCA file (``meta-train loss=alpaca update=posterior``) adapts by its posterior instead of SGD, with
the forgetting factor ``rls.forgetting``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from fastadapt.adapt.online import (
    Method, alpaca_label, alpaca_scores, initial_models, joint_errors, overall, phase_table, rls_scores,
)
from fastadapt.adapt.rls import RLSConfig
from fastadapt.data.batches import sequential_stream
from fastadapt.data.trajectory import STILL_RANGE, DataError, Dataset, concatenate
from fastadapt.losses import make_loss
from fastadapt.meta.algorithm import closed_form
from fastadapt.validation import require_at_least, require_positive_rates


@dataclasses.dataclass(frozen=True)
class AdaptConfig:
    batch_size: int = 5  # samples per online step
    seeds: int = 5  # fresh models adapted per method
    rate: float | None = None  # SGD rate of both the trained loss and MSE (default: the loss file's own rate alpha)
    # the RLS anchors' setting (random Fourier features; linear RLS shares forgetting and reg); not tuned here
    rls: RLSConfig = RLSConfig()
    seed: int = 0  # random seed of the models' initialisation

    def __post_init__(self):
        require_at_least(self, 1, "batch_size", "seeds")
        require_at_least(self, 0, "seed")
        if self.rate is not None:
            require_positive_rates(self, "rate")


def with_loss_rate(config: AdaptConfig, meta_config) -> AdaptConfig:
    """``config`` with its rate set: the one given, else the rate the loss was meta-trained for."""
    return config if config.rate is not None else dataclasses.replace(config, rate=meta_config.alpha)


def adapt_summary(config: AdaptConfig, meta_config, loss, loss_params, normalizer, dataset) -> dict:
    """Fresh models adapted online on ``dataset`` with the trained loss and with MSE, at one rate, and the
    RLS anchors at ``config.rls``: {method: {"overall": mean online MSE (normalised), "phases": Table I's
    per-phase mean and std, "overall_nm2": the same in Nm^2, "rms_nm": RMS error per joint in Nm}}.

    Physical units: tau = y_n y_std + y_mean, so a squared error e_j in normalised units is e_j y_std_j^2
    Nm^2; "overall_nm2" is the mean over joints of that, "rms_nm" its square root per joint."""
    model = meta_config.model(normalizer.num_joints)
    stream = sequential_stream(dataset, normalizer, config.batch_size)
    starts = initial_models(model, config.seeds, config.seed)
    mse = make_loss("mse", normalizer.num_joints)
    methods = {f"mse, sgd {config.rate:g}": Method("mse", mse, {}, "sgd", config.rate)}
    if not closed_form(loss):
        methods = {f"{loss.name}, sgd {config.rate:g}": Method(loss.name, loss, loss_params, "sgd", config.rate), **methods}
    errors = {name: joint_errors(model, method, starts, [stream]) for name, method in methods.items()}
    if closed_form(loss):  # the one meta-trained network of the file, its posterior updated online
        one = jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[None], loss_params)
        errors = {alpaca_label(config.rls.forgetting): alpaca_scores(loss, one, [stream], config.rls.forgetting,
                                                                     per_joint=True), **errors}
    for rls in (config.rls, dataclasses.replace(config.rls, features=0)):
        errors[rls.label] = rls_scores(rls, [stream], config.seeds, config.seed, per_joint=True)
    scale = np.square(np.asarray(normalizer.y_std, np.float64))
    summary = {}
    for name, e in errors.items():
        scores, physical = e.mean(-1), np.mean(e, axis=(0, 1, 2)) * scale
        summary[name] = {"overall": overall(scores), "phases": phase_table(scores, stream),
                         "overall_nm2": float(physical.mean()) if np.all(np.isfinite(physical)) else float("inf"),
                         "rms_nm": np.sqrt(physical).tolist()}
    return summary


def physical_table(summary: dict) -> str:
    """The online error of each method in normalised units, Nm^2 and RMS Nm per joint (markdown)."""
    joints = len(next(iter(summary.values()))["rms_nm"])
    lines = ["| method | online MSE (normalised) | Nm^2 | RMS Nm per joint (" + ", ".join(str(j + 1) for j in range(joints))
             + ") |", "|---|---|---|---|"]
    for name, v in summary.items():
        lines.append(f"| {name} | {v['overall']:.4g} | {v['overall_nm2']:.4g} | "
                     + ", ".join(f"{r:.3g}" for r in v["rms_nm"]) + " |")
    return "\n".join(lines)


def data_warnings(dataset: Dataset, what) -> list[str]:
    """What is suspicious but not wrong in a user's data: joints that barely move (a loss meta-trained on
    them learns nothing about those joints, and the normaliser's input scale shrinks to their jitter)."""
    still = dataset.still_joints()
    if not still:
        return []
    joints = ", ".join(f"{j + 1} ({r:.2g} rad)" for j, r in still)
    return [f"{what}: joint(s) {joints} move less than {STILL_RANGE:g} rad over the whole file; a model or loss "
            "fitted to it learns nothing about them, and scores on a moving stream will be meaningless"]


def robot_warnings(loss_robot: str | None, dataset: Dataset, what) -> list[str]:
    """A loss meta-trained on one robot, adapting on another's stream with the same joint count."""
    known = lambda name: name not in (None, "", "unknown")
    if known(loss_robot) and known(dataset.robot) and loss_robot != dataset.robot:
        return [f"the loss was meta-trained on robot '{loss_robot}', {what} is robot '{dataset.robot}': its "
                f"normaliser and weights are '{loss_robot}''s (same joint count, so it runs)"]
    return []


def check_output_file(out: Path, force: bool) -> Path:
    """An output data file: a .npz or .csv path that is not a directory, not replaced without ``force``."""
    if out.suffix not in (".npz", ".csv"):
        raise DataError(f"{out}: unknown data format '{out.suffix}', expected .npz or .csv")
    if out.is_dir():
        raise DataError(f"{out} is a directory; give a file path ending in .npz or .csv")
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; pass --force to replace it")
    return out


def simulated_dataset(kind: str, noise: bool) -> Dataset:
    """``sine``: the simulated iiwa's sine motions; ``pick-place``: its pick-and-place trials, one dataset."""
    from fastadapt.sim import motions  # PyBullet: only when simulating

    if kind == "sine":
        return motions.sine_dataset(noise=noise)
    return concatenate(motions.pick_and_place_dataset(noise=noise))


def describe_dataset(path, dataset: Dataset) -> list[str]:
    """``fastadapt data inspect``: one line for the file, one per trajectory."""
    lines = [f"{path}: {len(dataset)} trajectories, {dataset.num_samples} samples, {dataset.num_joints} joints, "
             f"robot '{dataset.robot}'"]
    for i, traj in enumerate(dataset):
        lines.append(f"  {i:3d} {traj.phase or '-':>12s}  T={len(traj):5d}  dt={traj.dt:.4g}s  payload={traj.payload:g}kg  "
                     f"|tau|max={abs(traj.tau).max():.3g}Nm")
    return lines
