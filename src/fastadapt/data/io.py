"""Read and write Datasets as .npz and .csv.

npz layout (the Schunk log's layout, extended): for trajectory number NNN the arrays ``trajNNN_t``,
``trajNNN_q``, ``trajNNN_qd``, ``trajNNN_tau`` and optionally ``trajNNN_qdd``; a string array ``meta``
holds JSON with per-trajectory robot, dt, payload and phase. When ``qdd`` is missing it is derived from
``qd`` by the smoothed finite difference of :mod:`fastadapt.data.derivatives`.

csv layout: one row per sample, columns ``trajectory, robot, phase, payload, dt, t, q1..qJ, qd1..qdJ,
qdd1..qddJ, tau1..tauJ``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from fastadapt.data.derivatives import smoothed_derivative
from fastadapt.data.trajectory import ARRAY_FIELDS, DataError, Dataset, Trajectory

_KEY = re.compile(r"^(traj\d+)_(t|q|qd|qdd|tau)$")
JOINT_FIELDS = ("q", "qd", "qdd", "tau")


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _check_new(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (CLI: --force) to replace it")


def _require_file(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    if not path.is_file():
        raise DataError(f"{path}: not a file")


def save_npz(dataset: Dataset, path, overwrite: bool = False) -> Path:
    path = Path(path)
    _check_new(path, overwrite)
    arrays = {}
    meta = []
    for i, traj in enumerate(dataset):
        for name in ARRAY_FIELDS:
            arrays[f"traj{i:03d}_{name}"] = getattr(traj, name)
        meta.append(dict(robot=traj.robot, dt=traj.dt, payload=traj.payload, phase=traj.phase))
    arrays["meta"] = np.array(json.dumps(meta))

    def write(tmp):
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    atomic_write(path, write)
    return path


def load_npz(path, robot: str | None = None, acceleration_window: int = 15) -> Dataset:
    """Load a Dataset from an npz file in the layout above; qdd is derived where missing."""
    path = Path(path)
    _require_file(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:  # zipfile / format errors
        raise DataError(f"{path}: not a readable .npz archive ({error})") from error
    with archive:
        groups: dict[str, dict[str, np.ndarray]] = {}
        for key in archive.files:
            match = _KEY.match(key)
            if match:
                groups.setdefault(match.group(1), {})[match.group(2)] = archive[key]
            elif key != "meta":
                raise DataError(f"{path}: unexpected key '{key}', expected trajNNN_<t|q|qd|qdd|tau> or meta")
        meta = json.loads(str(archive["meta"])) if "meta" in archive.files else None
    if not groups:
        raise DataError(f"{path}: no trajectories found (expected keys like traj000_q)")
    names = sorted(groups)
    if meta is not None and len(meta) != len(names):
        raise DataError(f"{path}: 'meta' describes {len(meta)} trajectories, found {len(names)}")
    trajectories = []
    for i, name in enumerate(names):
        fields = groups[name]
        source = f"{path}[{name}]"
        for required in ("t", "q", "qd", "tau"):
            if required not in fields:
                raise DataError(f"{source}: missing field '{required}' (key {name}_{required})")
        info = meta[i] if meta is not None else {}
        t = np.asarray(fields["t"], dtype=np.float64)
        dt = float(info.get("dt", 0.0)) or (float(np.median(np.diff(t))) if t.ndim == 1 and len(t) > 1 else 0.0)
        qdd = fields.get("qdd")
        if qdd is None:
            if not np.all(np.isfinite(fields["qd"])):
                raise DataError(f"{source}: field 'qd' holds NaN/inf; cannot derive accelerations")
            qdd = smoothed_derivative(fields["qd"], dt, window=acceleration_window)
        trajectories.append(
            Trajectory(
                t=t, q=fields["q"], qd=fields["qd"], qdd=qdd, tau=fields["tau"],
                robot=robot or info.get("robot", "unknown"), dt=dt,
                payload=float(info.get("payload", 0.0)), phase=info.get("phase", ""), source=source,
            )
        )
    return Dataset(tuple(trajectories))


def _columns(joints: int) -> list[str]:
    cols = ["trajectory", "robot", "phase", "payload", "dt", "t"]
    for name in JOINT_FIELDS:
        cols += [f"{name}{j + 1}" for j in range(joints)]
    return cols


def save_csv(dataset: Dataset, path, overwrite: bool = False) -> Path:
    path = Path(path)
    _check_new(path, overwrite)
    joints = dataset.num_joints

    def write(tmp):
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(_columns(joints))
            for i, traj in enumerate(dataset):
                block = np.concatenate([getattr(traj, n) for n in JOINT_FIELDS], axis=1)
                for k in range(len(traj)):
                    writer.writerow(
                        [i, traj.robot, traj.phase, repr(traj.payload), repr(traj.dt), repr(float(traj.t[k]))]
                        + [repr(float(v)) for v in block[k]]
                    )

    atomic_write(path, write)
    return path


def load_csv(path) -> Dataset:
    path = Path(path)
    _require_file(path)
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path}: empty file, expected a header row") from None
        rows = list(reader)
    joint_cols = [c for c in header if c.startswith("tau")]
    joints = len(joint_cols)
    expected = _columns(joints)
    if header != expected:
        missing = [c for c in expected if c not in header]
        raise DataError(
            f"{path}: header does not match the fastadapt csv layout"
            + (f"; missing columns {missing}" if missing else f"; expected {expected}")
        )
    if not rows:
        raise DataError(f"{path}: no data rows")
    by_traj: dict[str, list[list[str]]] = {}
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise DataError(f"{path}: line {line} has {len(row)} values, expected {len(header)}")
        by_traj.setdefault(row[0], []).append(row)
    trajectories = []
    for name, block in by_traj.items():
        source = f"{path}[trajectory {name}]"
        try:
            numbers = np.array([[float(v) for v in row[5:]] for row in block])
        except ValueError as error:
            raise DataError(f"{source}: non-numeric value ({error})") from error
        fields = {"t": numbers[:, 0]}
        for k, field in enumerate(JOINT_FIELDS):
            fields[field] = numbers[:, 1 + k * joints: 1 + (k + 1) * joints]
        first = block[0]
        trajectories.append(
            Trajectory(**fields, robot=first[1], phase=first[2], payload=float(first[3]), dt=float(first[4]), source=source)
        )
    return Dataset(tuple(trajectories))


def load(path, **kwargs) -> Dataset:
    """Load a Dataset by file extension (.npz or .csv)."""
    path = Path(path)
    if path.suffix == ".npz":
        return load_npz(path, **kwargs)
    if path.suffix == ".csv":
        return load_csv(path)
    raise DataError(f"{path}: unknown data format '{path.suffix}', expected .npz or .csv")


def save(dataset: Dataset, path, overwrite: bool = False) -> Path:
    path = Path(path)
    if path.suffix == ".npz":
        return save_npz(dataset, path, overwrite)
    if path.suffix == ".csv":
        return save_csv(dataset, path, overwrite)
    raise DataError(f"{path}: unknown data format '{path.suffix}', expected .npz or .csv")
