"""Trajectory and Dataset: validated containers of robot joint data.

A trajectory holds T samples of a J-joint robot:

    t    [T]     time in seconds, strictly increasing
    q    [T, J]  joint positions (rad)
    qd   [T, J]  joint velocities (rad/s)
    qdd  [T, J]  joint accelerations (rad/s^2); qdd[t] is the acceleration the torque tau[t] produced
    tau  [T, J]  joint torques (Nm)

plus metadata: the robot's name, the nominal step ``dt``, the payload carried (kg), a phase label
("sine-0.03", "reach", ...) and whether the samples are in time order (``ordered``: False for a dataset
imported without time stamps, such as SARCOS's shuffled rows; its ``t`` is then the row index times
``dt``, fit for offline meta-training, refused as a stream). An inverse-dynamics sample is
(x, y) = ((q, qd, qdd), tau).

Validation rejects what no robot produces: NaN/inf, wrong shapes, time going backwards, a ``dt`` that
disagrees with the time stamps, and magnitudes beyond :class:`Limits` (a torque of 1e30 Nm is a unit or
logging error, and meta-training on it would fit a normaliser to it silently).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import numpy as np

from fastadapt.errors import DataError  # noqa: F401  (raised here, defined with the others)

ARRAY_FIELDS = ("t", "q", "qd", "qdd", "tau")
DT_TOLERANCE = 0.01  # a stated dt may differ from the time stamps' median step by 1% at most
IRREGULAR = 0.05  # a time step more than 5% off the median makes a log irregular
STILL_RANGE = 1e-3  # rad: a joint whose q moves less than this over a dataset barely moves


def irregular_steps(t: np.ndarray) -> tuple[int, int, float]:
    """(steps more than ``IRREGULAR`` off the median step, steps, the median step) of stamps ``t``."""
    steps = np.diff(np.asarray(t, dtype=np.float64))
    median = float(np.median(steps))
    return int(np.sum(np.abs(steps - median) > IRREGULAR * median)), len(steps), median


def check_regular(t: np.ndarray, where: str = "") -> None:
    """Refuse irregular time stamps, with the count and the fix (a file's loader calls this)."""
    bad, total, median = irregular_steps(t)
    if bad:
        raise DataError(
            f"{where}{bad} of {total} time steps are more than {IRREGULAR:.0%} off the median step "
            f"({median * 1e3:.4g} ms): accelerations derived at one step, and batches of consecutive samples, "
            "would be off; resample it onto a regular grid with `fastadapt data import FILE OUT.npz` "
            "(optionally --rate HZ)")


@dataclasses.dataclass(frozen=True)
class Limits:
    """The largest magnitude each quantity may have; beyond it a value is taken for a unit or logging
    error, not a measurement. Defaults are generous for any arm: q 1000 rad (160 turns of a continuous
    joint, or 1000 m for a prismatic one), qd 1000 rad/s (almost 10,000 rpm), qdd 1e5 rad/s^2
    (accelerations derived from noisy velocities included), tau 1e5 Nm (100 times a large industrial
    arm's base joint). Override per quantity: ``Limits(tau=2e5)``, CLI ``--limit tau=2e5``."""

    q: float = 1e3
    qd: float = 1e3
    qdd: float = 1e5
    tau: float = 1e5

    UNITS = {"q": "rad", "qd": "rad/s", "qdd": "rad/s^2", "tau": "Nm"}

    def __post_init__(self):
        for name in self.UNITS:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise DataError(f"limit '{name}' must be a finite number > 0, got {value!r}")

    @classmethod
    def parse(cls, items) -> "Limits":
        """From ``["tau=2e5", "qd=50"]`` (the CLI's ``--limit`` values)."""
        values = {}
        for item in items or ():
            name, _, text = item.partition("=")
            name = name.strip()
            if name not in cls.UNITS or not text:
                raise DataError(f"--limit '{item}': expected QUANTITY=VALUE with QUANTITY one of {', '.join(cls.UNITS)}")
            try:
                values[name] = float(text)
            except ValueError:
                raise DataError(f"--limit '{item}': '{text}' is not a number") from None
        return cls(**values)

    def check(self, name: str, values: np.ndarray, where: str = "") -> None:
        """Raise a DataError naming the sample and joint of the first value beyond the limit."""
        limit = getattr(self, name)
        beyond = np.abs(values) > limit
        if beyond.any():
            index = tuple(int(i) for i in np.argwhere(beyond)[0])
            joint = f", joint {index[1] + 1}" if len(index) > 1 else ""
            raise DataError(
                f"{where}field '{name}' = {float(values[index]):.4g} {self.UNITS[name]} at sample {index[0]}{joint} "
                f"is beyond the physical limit {limit:g} {self.UNITS[name]} ({int(beyond.sum())} value(s) beyond it); "
                f"fix the data's units, or raise the limit (Limits({name}=...), CLI --limit {name}=...)"
            )


DEFAULT_LIMITS = Limits()


def check_dt(dt, t: np.ndarray, where: str = "") -> float:
    """The sampling step: ``dt`` as stated (finite, > 0, within 1% of the median time step), or the median
    time step when ``dt`` is None."""
    median = float(np.median(np.diff(t)))
    if dt is None:
        return median
    try:
        dt = float(dt)
    except (TypeError, ValueError):
        raise DataError(f"{where}dt must be a number of seconds, got {dt!r}") from None
    if not np.isfinite(dt) or dt <= 0:
        raise DataError(f"{where}dt must be a finite number of seconds > 0, got {dt}")
    if abs(dt - median) > DT_TOLERANCE * median:
        raise DataError(
            f"{where}dt = {dt:g} s disagrees with the time stamps, whose median step is {median:g} s "
            f"({dt / median:.3g}x); fix dt or leave it out (it is then taken from the time stamps)"
        )
    return dt


def _where(source: str | None) -> str:
    return f"{source}: " if source else ""


@dataclasses.dataclass(frozen=True)
class Trajectory:
    t: np.ndarray
    q: np.ndarray
    qd: np.ndarray
    qdd: np.ndarray
    tau: np.ndarray
    robot: str = "unknown"
    dt: float | None = None  # None: the median step of ``t``
    payload: float = 0.0
    phase: str = ""
    ordered: bool = True  # False: rows without time order (t is the row index x dt); never a stream
    source: str | None = dataclasses.field(default=None, compare=False)
    limits: Limits = dataclasses.field(default=DEFAULT_LIMITS, compare=False, repr=False)

    def __post_init__(self):
        where = _where(self.source)
        for name in ARRAY_FIELDS:
            value = getattr(self, name)
            if value is None:
                raise DataError(f"{where}missing field '{name}'")
            arr = np.asarray(value, dtype=np.float64)
            object.__setattr__(self, name, arr)
        if self.t.ndim != 1:
            raise DataError(f"{where}field 't' must have shape [T], got {self.t.shape}")
        length = self.t.shape[0]
        if length < 2:
            raise DataError(f"{where}field 't' must hold at least 2 samples, got {length}")
        if self.q.ndim != 2:
            raise DataError(f"{where}field 'q' must have shape [T, J], got {self.q.shape}")
        joints = self.q.shape[1]
        for name in ARRAY_FIELDS[1:]:
            arr = getattr(self, name)
            if arr.shape != (length, joints):
                raise DataError(
                    f"{where}field '{name}' must have shape [T, J] = {(length, joints)} "
                    f"(T from 't', J from 'q'), got {arr.shape}"
                )
        for name in ARRAY_FIELDS:
            arr = getattr(self, name)
            bad = ~np.isfinite(arr)
            if bad.any():
                row = int(np.argwhere(bad)[0][0])
                raise DataError(
                    f"{where}field '{name}' holds {int(bad.sum())} NaN/inf value(s), first at sample {row}"
                )
        steps = np.diff(self.t)
        if (steps <= 0).any():
            row = int(np.argmax(steps <= 0))
            raise DataError(
                f"{where}field 't' must be strictly increasing; t[{row + 1}]={self.t[row + 1]} "
                f"<= t[{row}]={self.t[row]}"
            )
        for name in ARRAY_FIELDS[1:]:
            self.limits.check(name, getattr(self, name), where)
        object.__setattr__(self, "dt", check_dt(self.dt, self.t, where))
        try:
            payload = float(self.payload)
        except (TypeError, ValueError):
            payload = float("nan")
        if not np.isfinite(payload) or payload < 0:
            raise DataError(f"{where}payload must be a finite mass >= 0 kg, got {self.payload!r}")
        object.__setattr__(self, "payload", payload)

    @property
    def num_joints(self) -> int:
        return self.q.shape[1]

    def __len__(self) -> int:
        return self.t.shape[0]

    def inputs(self) -> np.ndarray:
        """Model inputs x = [q, qd, qdd], shape [T, 3J]."""
        return np.concatenate([self.q, self.qd, self.qdd], axis=1)

    def slice(self, start: int, stop: int) -> "Trajectory":
        return dataclasses.replace(
            self, **{name: getattr(self, name)[start:stop] for name in ARRAY_FIELDS}
        )


@dataclasses.dataclass(frozen=True)
class Dataset:
    """An ordered collection of trajectories of one robot (same joint count)."""

    trajectories: tuple[Trajectory, ...]

    def __post_init__(self):
        trajs = tuple(self.trajectories)
        object.__setattr__(self, "trajectories", trajs)
        if not trajs:
            raise DataError("a Dataset needs at least one trajectory")
        joints = trajs[0].num_joints
        for i, traj in enumerate(trajs):
            if traj.num_joints != joints:
                raise DataError(
                    f"{_where(traj.source)}trajectory {i} has {traj.num_joints} joints, "
                    f"trajectory 0 has {joints}: all trajectories of a Dataset must match"
                )

    @property
    def num_joints(self) -> int:
        return self.trajectories[0].num_joints

    @property
    def robot(self) -> str:
        return self.trajectories[0].robot

    def __len__(self) -> int:
        return len(self.trajectories)

    def __iter__(self):
        return iter(self.trajectories)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Dataset(self.trajectories[index])
        return self.trajectories[index]

    @property
    def num_samples(self) -> int:
        return sum(len(traj) for traj in self.trajectories)

    def take(self, indices: Iterable[int]) -> "Dataset":
        return Dataset(tuple(self.trajectories[i] for i in indices))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All samples stacked: inputs [N, 3J] and torques [N, J]."""
        x = np.concatenate([traj.inputs() for traj in self.trajectories])
        y = np.concatenate([traj.tau for traj in self.trajectories])
        return x, y

    @property
    def ordered(self) -> bool:
        """Every trajectory is in time order (a stream can be played from it)."""
        return all(traj.ordered for traj in self.trajectories)

    def joint_ranges(self) -> np.ndarray:
        """max - min of each joint's q over all samples [J] (rad)."""
        q = np.concatenate([traj.q for traj in self.trajectories])
        return q.max(0) - q.min(0)

    def still_joints(self, threshold: float = STILL_RANGE) -> list[tuple[int, float]]:
        """(joint index, range of q) of each joint that moves less than ``threshold`` rad."""
        return [(j, float(r)) for j, r in enumerate(self.joint_ranges()) if r < threshold]

    def check_joints(self, expected: int, what: str) -> None:
        if self.num_joints != expected:
            raise DataError(
                f"{what} has {self.num_joints} joints but the model/loss expects {expected}"
            )


def concatenate(datasets: Sequence[Dataset]) -> Dataset:
    return Dataset(tuple(traj for ds in datasets for traj in ds))
