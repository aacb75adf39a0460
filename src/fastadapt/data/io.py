"""Read and write Datasets as .npz and .csv.

npz layout (the Schunk log's layout, extended): for trajectory number NNN the arrays ``trajNNN_t``,
``trajNNN_q``, ``trajNNN_qd``, ``trajNNN_tau`` and optionally ``trajNNN_qdd``; a string array ``meta``
holds JSON with per-trajectory robot, dt, payload, phase and (only when false) ``ordered``. When ``qdd``
is missing it is derived from ``qd`` by the smoothed finite difference of
:mod:`fastadapt.data.derivatives`.

csv layout: one row per sample, columns ``trajectory, robot, phase, payload, dt, t, q1..qJ, qd1..qdJ,
qdd1..qddJ, tau1..tauJ``, and a last column ``ordered`` (1/0) in files with rows in no time order.

Time stamps must be regular (every step within 5% of the median): an irregular file is refused with
the count, and ``fastadapt data import`` resamples it (:mod:`fastadapt.data.arrays`).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np

from fastadapt.data.derivatives import smoothed_derivative
from fastadapt.files import atomic_write, atomic_write_text  # noqa: F401  (re-exported: the writers of data files)
from fastadapt.data.trajectory import (
    ARRAY_FIELDS, DEFAULT_LIMITS, DataError, Dataset, Limits, Trajectory, check_dt, check_regular,
)

_KEY = re.compile(r"^(traj\d+)_(t|q|qd|qdd|tau)$")
JOINT_FIELDS = ("q", "qd", "qdd", "tau")


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
        meta.append(dict(robot=traj.robot, dt=traj.dt, payload=traj.payload, phase=traj.phase,
                         **({} if traj.ordered else {"ordered": False})))
    arrays["meta"] = np.array(json.dumps(meta))

    def write(tmp):
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    atomic_write(path, write)
    return path


def _read_meta(path: Path, archive, count: int) -> list[dict]:
    """The per-trajectory metadata list stored as JSON in the array ``meta`` (empty dicts if absent)."""
    if "meta" not in archive.files:
        return [{} for _ in range(count)]
    try:
        meta = json.loads(str(archive["meta"]))
    except (json.JSONDecodeError, ValueError) as error:
        raise DataError(f"{path}: array 'meta' is not valid JSON ({error})") from None
    if not isinstance(meta, list) or not all(isinstance(m, dict) for m in meta):
        raise DataError(f"{path}: array 'meta' must be a JSON list with one object per trajectory")
    if len(meta) != count:
        raise DataError(f"{path}: 'meta' describes {len(meta)} trajectories, found {count}")
    return meta


def load_npz(path, robot: str | None = None, acceleration_window: int = 15, limits: Limits = DEFAULT_LIMITS) -> Dataset:
    """Load a Dataset from an npz file in the layout above; qdd is derived where missing."""
    path = Path(path)
    _require_file(path)
    try:
        archive = np.load(path, allow_pickle=False)
        if not hasattr(archive, "files"):
            raise ValueError("it holds a single array, not an archive of named arrays")
    except Exception as error:  # zipfile / format errors
        raise DataError(f"{path}: not a readable .npz archive ({error})") from None
    with archive:
        groups: dict[str, dict[str, np.ndarray]] = {}
        try:
            for key in archive.files:
                match = _KEY.match(key)
                if match:
                    groups.setdefault(match.group(1), {})[match.group(2)] = archive[key]
                elif key != "meta":
                    raise DataError(f"{path}: unexpected key '{key}', expected trajNNN_<t|q|qd|qdd|tau> or meta")
            meta = _read_meta(path, archive, len(groups))
        except DataError:
            raise
        except Exception as error:  # a damaged member: bad CRC, truncated data, pickled objects
            raise DataError(f"{path}: damaged .npz archive ({error})") from None
    if not groups:
        raise DataError(f"{path}: no trajectories found (expected keys like traj000_q)")
    trajectories = []
    for info, name in zip(meta, sorted(groups)):
        fields = groups[name]
        source = f"{path}[{name}]"
        for required in ("t", "q", "qd", "tau"):
            if required not in fields:
                raise DataError(f"{source}: missing field '{required}' (key {name}_{required})")
        for key, value in fields.items():
            if value.dtype.kind not in "fiu":
                raise DataError(f"{source}: field '{key}' holds {value.dtype} values, expected numbers")
        t = np.asarray(fields["t"], dtype=np.float64)
        qdd = fields.get("qdd")
        dt = info.get("dt")
        ordered = info.get("ordered", True)
        if not isinstance(ordered, bool):
            raise DataError(f"{source}: 'ordered' in 'meta' must be true or false, got {ordered!r}")
        if qdd is None and not ordered:
            raise DataError(f"{source}: no field 'qdd', and its rows have no time order to derive it from")
        if qdd is None:
            # validate t, dt and qd before deriving accelerations from them
            Trajectory(t=t, q=fields["q"], qd=fields["qd"], qdd=np.zeros_like(fields["qd"], dtype=np.float64),
                       tau=fields["tau"], dt=dt, source=source, limits=limits)
            qdd = smoothed_derivative(fields["qd"], check_dt(dt, t, f"{source}: "), window=acceleration_window)
        trajectories.append(
            Trajectory(
                t=t, q=fields["q"], qd=fields["qd"], qdd=qdd, tau=fields["tau"],
                robot=robot or str(info.get("robot", "unknown")), dt=dt,
                payload=info.get("payload", 0.0), phase=str(info.get("phase", "")), ordered=ordered, source=source,
                limits=limits,
            )
        )
    return _regular(Dataset(tuple(trajectories)))


def _regular(dataset: Dataset) -> Dataset:
    """The loaded ``dataset``, once every trajectory in time order has regular stamps (else refused)."""
    for traj in dataset:
        if traj.ordered:
            check_regular(traj.t, f"{traj.source}: ")
    return dataset


def _columns(joints: int, ordered_column: bool = False) -> list[str]:
    cols = ["trajectory", "robot", "phase", "payload", "dt", "t"]
    for name in JOINT_FIELDS:
        cols += [f"{name}{j + 1}" for j in range(joints)]
    return cols + (["ordered"] if ordered_column else [])


def save_csv(dataset: Dataset, path, overwrite: bool = False) -> Path:
    path = Path(path)
    _check_new(path, overwrite)
    joints = dataset.num_joints

    def write(tmp):
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(_columns(joints, not dataset.ordered))
            for i, traj in enumerate(dataset):
                block = np.concatenate([getattr(traj, n) for n in JOINT_FIELDS], axis=1)
                last = [] if dataset.ordered else [int(traj.ordered)]
                for k in range(len(traj)):
                    writer.writerow(
                        [i, traj.robot, traj.phase, repr(traj.payload), repr(traj.dt), repr(float(traj.t[k]))]
                        + [repr(float(v)) for v in block[k]] + last
                    )

    atomic_write(path, write)
    return path


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{what}: '{text}' is not a number") from None


def load_csv(path, limits: Limits = DEFAULT_LIMITS) -> Dataset:
    path = Path(path)
    _require_file(path)
    try:
        # utf-8-sig: a byte-order mark (what spreadsheet programs write) is read as no character
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            try:
                header = next(reader)
            except StopIteration:
                raise DataError(f"{path}: empty file, expected a header row") from None
            rows = list(reader)
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not a UTF-8 text file ({error.reason} at byte {error.start})") from None
    except csv.Error as error:
        raise DataError(f"{path}: malformed csv ({error})") from None
    header = [c.strip() for c in header]
    joint_cols = [c for c in header if c.startswith("tau")]
    joints = len(joint_cols)
    with_order = bool(header) and header[-1] == "ordered"
    expected = _columns(joints, with_order)
    if header != expected:
        missing = [c for c in expected if c not in header]
        raise DataError(
            f"{path}: header does not match the fastadapt csv layout"
            + (f"; missing columns {missing}" if missing else f"; expected {expected}")
        )
    if not rows:
        raise DataError(f"{path}: no data rows")
    by_traj: dict[str, list[tuple[int, list[str]]]] = {}
    for line, row in enumerate(rows, start=2):
        if not row:
            continue  # a blank line (e.g. at the end)
        if len(row) != len(header):
            raise DataError(f"{path}: line {line} has {len(row)} values, expected {len(header)}")
        by_traj.setdefault(row[0], []).append((line, row))
    trajectories = []
    for name, block in by_traj.items():
        source = f"{path}[trajectory {name}]"
        first_line, first = block[0]
        for line, row in block:
            for column, label in ((1, "robot"), (2, "phase"), (3, "payload"), (4, "dt")) + (
                    ((len(header) - 1, "ordered"),) if with_order else ()):
                if row[column] != first[column]:
                    raise DataError(f"{path}: line {line}: column '{label}' is '{row[column]}' but line {first_line} "
                                    f"of trajectory {name} says '{first[column]}'; it must be the same on every row")
        end = len(header) - with_order
        numbers = np.array([[_number(v, f"{path}: line {line}, column '{header[5 + k]}'")
                             for k, v in enumerate(row[5:end])] for line, row in block])
        ordered = not with_order or first[-1].strip() != "0"
        if with_order and first[-1].strip() not in ("0", "1"):
            raise DataError(f"{path}: line {first_line}, column 'ordered' must be 1 or 0, got '{first[-1]}'")

        fields = {"t": numbers[:, 0]}
        for k, field in enumerate(JOINT_FIELDS):
            fields[field] = numbers[:, 1 + k * joints: 1 + (k + 1) * joints]
        trajectories.append(Trajectory(
            **fields, robot=first[1], phase=first[2], payload=_number(first[3], f"{path}: line {first_line}, column 'payload'"),
            dt=_number(first[4], f"{path}: line {first_line}, column 'dt'"), ordered=ordered, source=source,
            limits=limits,
        ))
    return _regular(Dataset(tuple(trajectories)))


def load(path, limits: Limits = DEFAULT_LIMITS, **kwargs) -> Dataset:
    """Load a Dataset by file extension (.npz or .csv), checked against ``limits``."""
    path = Path(path)
    if path.suffix == ".npz":
        return load_npz(path, limits=limits, **kwargs)
    if path.suffix == ".csv":
        return load_csv(path, limits=limits)
    raise DataError(f"{path}: unknown data format '{path.suffix}', expected .npz or .csv")


def save(dataset: Dataset, path, overwrite: bool = False) -> Path:
    path = Path(path)
    if path.suffix == ".npz":
        return save_npz(dataset, path, overwrite)
    if path.suffix == ".csv":
        return save_csv(dataset, path, overwrite)
    raise DataError(f"{path}: unknown data format '{path.suffix}', expected .npz or .csv")
