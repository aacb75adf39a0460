"""From trajectories to arrays a jitted learner consumes: normalisation, windows, streams.

Statistics come from the meta-train data (see :class:`Normalizer`). Losses and the reported MSE live in
normalised torque units: an MSE of 1.0 is the error of always predicting the meta-train mean torque.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from fastadapt.data.trajectory import DataError, Dataset

STD_FLOOR = 1e-6


class Normalizer(NamedTuple):
    """x_n = (x - x_mean) / x_std and y_n = (tau - y_mean) / y_std.

    Means are per dimension; scales are shared within a group, the RMS of the per-joint standard
    deviations of q, of qd, of qdd and of tau. A shared torque scale keeps the MSE proportional to the
    error in Nm^2 (a wrist joint that barely moved in the meta-train data does not get its errors
    magnified a hundredfold), and shared input scales keep every joint's inputs on one footing.
    """

    x_mean: jnp.ndarray
    x_std: jnp.ndarray
    y_mean: jnp.ndarray
    y_std: jnp.ndarray

    @staticmethod
    def fit(dataset: Dataset) -> "Normalizer":
        x, y = dataset.arrays()
        joints = y.shape[1]
        group_rms = lambda a: np.sqrt(np.mean(a.var(0))) + STD_FLOOR
        x_std = np.concatenate([np.full(joints, group_rms(x[:, g * joints:(g + 1) * joints])) for g in range(3)])
        y_std = np.full(joints, group_rms(y))
        return Normalizer(
            jnp.asarray(x.mean(0), jnp.float32), jnp.asarray(x_std, jnp.float32),
            jnp.asarray(y.mean(0), jnp.float32), jnp.asarray(y_std, jnp.float32),
        )

    @property
    def num_joints(self) -> int:
        return int(self.y_mean.shape[0])

    def inputs(self, x):
        return (x - self.x_mean) / self.x_std

    def targets(self, y):
        return (y - self.y_mean) / self.y_std

    def torques(self, y_normalised):
        return y_normalised * self.y_std + self.y_mean


class Samples(NamedTuple):
    """Normalised samples: inputs x [..., 3J] and torques y [..., J]."""

    x: jnp.ndarray
    y: jnp.ndarray

    @property
    def state(self):
        """(q, qd) in normalised units, the input of state-dependent losses: x[..., :2J]."""
        joints = self.y.shape[-1]
        return self.x[..., : 2 * joints]


def normalised_samples(dataset: Dataset, normalizer: Normalizer) -> Samples:
    dataset.check_joints(normalizer.num_joints, "dataset")
    x, y = dataset.arrays()
    return Samples(normalizer.inputs(jnp.asarray(x, jnp.float32)), normalizer.targets(jnp.asarray(y, jnp.float32)))


def window_starts(dataset: Dataset, length: int) -> np.ndarray:
    """Start indices (into the stacked samples) of every window of ``length`` consecutive samples that
    lies inside one trajectory."""
    starts, offset = [], 0
    for traj in dataset:
        if len(traj) >= length:
            starts.append(offset + np.arange(len(traj) - length + 1))
        offset += len(traj)
    if not starts:
        raise DataError(f"no trajectory has the {length} consecutive samples a batch needs")
    return np.concatenate(starts)


def gather_windows(samples: Samples, starts, length: int) -> Samples:
    """Windows [n, length, ...] starting at ``starts`` (jit-friendly)."""
    index = jnp.asarray(starts)[:, None] + jnp.arange(length)[None, :]
    return Samples(samples.x[index], samples.y[index])


class Stream(NamedTuple):
    """Sequential batches of a dataset played in order: x [n, B, 3J], y [n, B, J], and for each batch
    the index of the trajectory (phase) it came from."""

    batches: Samples
    segment: np.ndarray
    segment_names: tuple[str, ...]


def sequential_stream(dataset: Dataset, normalizer: Normalizer, batch_size: int) -> Stream:
    """Cut every trajectory into consecutive batches of ``batch_size`` (a trailing remainder shorter
    than a batch is dropped) and concatenate them in order, so a model warm-starts from phase to phase."""
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    xs, ys, segment = [], [], []
    for i, traj in enumerate(dataset):
        if not traj.ordered:
            raise DataError(f"{traj.source or f'trajectory {i}'}: its rows have no time order (imported without time "
                            "stamps); it can meta-train a loss offline, but online adaptation plays a stream in "
                            "time order")
        n = len(traj) // batch_size
        if n == 0:
            continue
        part = normalised_samples(Dataset((traj,)), normalizer)
        xs.append(part.x[: n * batch_size].reshape(n, batch_size, -1))
        ys.append(part.y[: n * batch_size].reshape(n, batch_size, -1))
        segment += [i] * n
    if not xs:
        raise DataError(f"every trajectory is shorter than one batch of {batch_size}")
    names = tuple(traj.phase or f"traj{i}" for i, traj in enumerate(dataset))
    return Stream(Samples(jnp.concatenate(xs), jnp.concatenate(ys)), np.asarray(segment), names)
