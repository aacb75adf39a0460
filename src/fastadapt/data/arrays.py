"""Robot logs a user already has as arrays: a .csv with named columns, a MATLAB .mat or an .npz with
named arrays, imported with the same validation as a ROS bag (``fastadapt data import FILE OUT.npz``).

Names (case-insensitive):

* csv columns ``q1..qJ``, ``qd1..qdJ``, ``tau1..tauJ`` and optionally ``qdd1..qddJ`` (also written
  ``q_1``, ``q.1``, ``q[1]``; indices from 0 or 1, consecutive), optionally a time column ``t``
  (or ``time``) and a ``trajectory`` column that groups rows into trajectories (a csv in fastadapt's
  own layout imports too: its ``robot, phase, payload, dt`` columns are read as well);
* .mat and .npz variables ``q``, ``qd``, ``tau`` [T, J], optionally ``qdd`` [T, J] and ``t`` [T]; or an
  .npz in fastadapt's layout (``trajNNN_q`` ...), each trajectory imported on its own.

With time stamps, every trajectory goes through :mod:`fastadapt.data.regular` (stamp order, repeated
stamps, gaps, and resampling onto a regular grid when the stamps are irregular or ``rate`` is given),
and a missing ``qdd`` is derived from ``qd`` on the regular grid. Without time stamps (a dataset such as
SARCOS: shuffled rows), ``qd`` and ``qdd`` must be given; the trajectory is marked ``ordered=False``:
fit for offline meta-training, refused as a stream.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np

from fastadapt.data.derivatives import smoothed_derivative
from fastadapt.data.regular import check_rate_and_gap, in_time_order, regular_pieces
from fastadapt.data.trajectory import DEFAULT_LIMITS, DataError, Dataset, Limits, Trajectory

ARRAY_SUFFIXES = (".csv", ".mat", ".npz")
_JOINT_COLUMN = re.compile(r"^(q|qd|qdd|tau)[_.\[ ]?(\d+)\]?$", re.IGNORECASE)
_TIME_NAMES = ("t", "time")
_LAYOUT_COLUMNS = ("robot", "phase", "payload", "dt")  # fastadapt's own csv layout: read, not required
_NPZ_LAYOUT = re.compile(r"^(traj\d+)_(t|q|qd|qdd|tau)$")


def import_arrays(path, rate: float | None = None, gap: float | None = None, robot: str | None = None,
                  limits: Limits = DEFAULT_LIMITS) -> tuple[Dataset, list[str]]:
    """The trajectories of an array file (module docstring) and a list of what was done to them; the robot's
    name is ``robot`` if given, else the file's (fastadapt's layouts), else 'robot'."""
    check_rate_and_gap(rate, gap)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    readers = {".csv": _read_csv, ".mat": _read_mat, ".npz": _read_npz}
    if path.suffix not in readers:
        raise DataError(f"{path}: unknown array format '{path.suffix}', expected one of {', '.join(ARRAY_SUFFIXES)}")
    groups, notes = readers[path.suffix](path)
    trajectories = []
    for name, (fields, info) in groups.items():
        source = f"{path}[{name}]" if len(groups) > 1 else str(path)
        made = _trajectories(source, fields, info, rate, gap, robot, limits, notes)
        trajectories += made
    notes.append(f"{len(trajectories)} trajectories, {sum(len(t) for t in trajectories)} samples, "
                 f"{trajectories[0].num_joints} joints")
    return Dataset(tuple(trajectories)), notes


def _trajectories(source, fields: dict, info: dict, rate, gap, robot, limits, notes) -> list[Trajectory]:
    """One group's arrays as trajectories: regularised in time, or marked unordered without time."""
    for required in ("q", "qd", "tau"):
        if required not in fields:
            raise DataError(f"{source}: no '{required}' found (found: {', '.join(sorted(fields)) or 'nothing'}); "
                            "name the columns q1..qJ, qd1..qdJ, tau1..tauJ (qdd1..qddJ and t optional)")
    joint_fields = {k: np.asarray(v, dtype=np.float64) for k, v in fields.items() if k != "t"}
    for key, values in joint_fields.items():
        if values.ndim == 1:
            joint_fields[key] = values = values[:, None]
        if values.ndim != 2 or values.shape != joint_fields["q"].shape:
            raise DataError(f"{source}: '{key}' has shape {values.shape}, 'q' has {joint_fields['q'].shape}; "
                            "each must be [T, J] with the same T and J")
    meta = dict(robot=str(robot or info.get("robot") or "robot"), payload=info.get("payload", 0.0), limits=limits)
    if "t" not in fields:
        if "qdd" not in joint_fields:
            raise DataError(f"{source}: without time stamps, 'qdd' must be given (it cannot be derived from rows "
                            "in no time order)")
        length = len(joint_fields["q"])
        notes.append(f"{source}: no time column: {length} rows kept in no time order (ordered=False): fit for "
                     "offline meta-training; a stream from them is refused")
        return [Trajectory(t=np.arange(length, dtype=np.float64), dt=1.0, ordered=False, phase=str(info.get("phase", "")),
                           source=source, **joint_fields, **meta)]
    t = np.asarray(fields["t"], dtype=np.float64).reshape(-1)
    if len(t) != len(joint_fields["q"]):
        raise DataError(f"{source}: 't' holds {len(t)} stamps, 'q' {len(joint_fields['q'])} rows")
    if not np.all(np.isfinite(t)):
        raise DataError(f"{source}: 't' holds {int((~np.isfinite(t)).sum())} NaN/inf stamp(s)")
    own = []
    t, joint_fields = in_time_order(source, t, joint_fields, gap, own)
    if len(t) < 2:
        raise DataError(f"{source}: every row has one time stamp; there is no time axis")
    pieces, resampled_dt = regular_pieces(source, t, joint_fields, rate, gap, own, "the log")
    notes += [f"{source}: {note}" for note in own]
    if "qdd" not in joint_fields:
        notes.append(f"{source}: no qdd: derived from qd on the regular grid (smoothed derivative)")
    made = []
    for number, (tp, fp) in enumerate(pieces):
        dt = resampled_dt or float(np.median(np.diff(tp)))
        qdd = fp["qdd"] if "qdd" in fp else smoothed_derivative(fp["qd"], dt)
        phase = str(info.get("phase", "")) + (f"-{number}" if len(pieces) > 1 else "")
        made.append(Trajectory(t=tp - t[0], q=fp["q"], qd=fp["qd"], qdd=qdd, tau=fp["tau"], dt=resampled_dt,
                               phase=phase, source=source, **meta))
    return made


def _read_csv(path: Path):
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not a UTF-8 text file ({error.reason} at byte {error.start})") from None
    except csv.Error as error:
        raise DataError(f"{path}: malformed csv ({error})") from None
    rows = [row for row in rows if row]
    if len(rows) < 2:
        raise DataError(f"{path}: expected a header row and data rows")
    header = [c.strip() for c in rows[0]]
    columns, joints, unknown = {}, {}, []
    for index, name in enumerate(header):
        match = _JOINT_COLUMN.match(name)
        lower = name.lower()
        if match:
            joints.setdefault(match.group(1).lower(), {})[int(match.group(2))] = index
        elif lower in _TIME_NAMES or lower in ("trajectory",) + _LAYOUT_COLUMNS:
            columns["t" if lower in _TIME_NAMES else lower] = index
        else:
            unknown.append(name)
    if unknown:
        raise DataError(f"{path}: unknown column(s) {unknown}; expected q1..qJ, qd1..qdJ, qdd1..qddJ, tau1..tauJ, "
                        "t and trajectory")
    order = {}
    for field, by_index in joints.items():
        indices = sorted(by_index)
        if indices != list(range(indices[0], indices[0] + len(indices))) or indices[0] not in (0, 1):
            raise DataError(f"{path}: the {field} columns are numbered {indices}; number them 1..J (or 0..J-1)")
        order[field] = [by_index[i] for i in indices]
    body = rows[1:]
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(f"{path}: line {line} has {len(row)} values, expected {len(header)}")
    text = np.array(body, dtype=object)
    labels = text[:, columns["trajectory"]] if "trajectory" in columns else np.array(["0"] * len(body), dtype=object)
    groups = {}
    for label in dict.fromkeys(labels):
        rows_of = text[labels == label]
        numeric = {field: _numbers(path, rows_of[:, idx], [header[i] for i in idx]) for field, idx in order.items()}
        if "t" in columns:
            numeric["t"] = _numbers(path, rows_of[:, [columns["t"]]], [header[columns["t"]]])[:, 0]
        info = {key: rows_of[0, columns[key]] for key in _LAYOUT_COLUMNS if key in columns}
        if "payload" in info:
            info["payload"] = _numbers(path, np.array([[info["payload"]]], dtype=object), ["payload"])[0, 0]
        groups[f"trajectory {label}"] = (numeric, info)
    return groups, [f"read {len(body)} rows of {len(header)} columns from {path}"]


def _numbers(path, cells: np.ndarray, names: list[str]) -> np.ndarray:
    try:
        return cells.astype(np.float64)
    except ValueError:
        for column, name in enumerate(names):
            for row, value in enumerate(cells[:, column]):
                try:
                    float(value)
                except ValueError:
                    raise DataError(f"{path}: column '{name}', row {row + 1}: '{value}' is not a number") from None
        raise


def _read_mat(path: Path):
    import scipy.io

    try:
        variables = scipy.io.loadmat(path)
    except NotImplementedError:
        raise DataError(f"{path}: a MATLAB v7.3 (HDF5) file; save it with -v7 or export a .csv") from None
    except Exception as error:  # scipy raises ValueError, TypeError, MatReadError on damaged files
        raise DataError(f"{path}: not a readable .mat file ({error})") from None
    return _named_arrays(path, {k: v for k, v in variables.items() if not k.startswith("__")})


def _read_npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as error:
        raise DataError(f"{path}: not a readable .npz archive ({error})") from None
    if any(_NPZ_LAYOUT.match(key) for key in arrays):
        meta = json.loads(str(arrays.pop("meta"))) if "meta" in arrays else None
        names = sorted({_NPZ_LAYOUT.match(k).group(1) for k in arrays if _NPZ_LAYOUT.match(k)})
        groups = {}
        for number, name in enumerate(names):
            fields = {m.group(2): arrays[k] for k in arrays if (m := _NPZ_LAYOUT.match(k)) and m.group(1) == name}
            info = meta[number] if isinstance(meta, list) and number < len(meta) else {}
            groups[name] = (fields, {k: info[k] for k in ("robot", "phase", "payload") if k in info})
        return groups, [f"read {len(names)} trajectories in fastadapt's layout from {path}"]
    return _named_arrays(path, arrays)


def _named_arrays(path: Path, variables: dict):
    fields, ignored = {}, []
    for key, value in variables.items():
        name = "t" if key.lower() in _TIME_NAMES else key.lower()
        if name in ("t", "q", "qd", "qdd", "tau"):
            value = np.asarray(value)
            if value.dtype.kind not in "fiu":
                raise DataError(f"{path}: '{key}' holds {value.dtype} values, expected numbers")
            fields[name] = value.reshape(-1) if name == "t" else value
        else:
            ignored.append(key)
    notes = [f"read {', '.join(sorted(fields)) or 'no known variable'} from {path}"]
    if ignored:
        notes.append(f"ignored variable(s) {', '.join(sorted(ignored))} (known: q, qd, qdd, tau, t)")
    return {"arrays": (fields, {})}, notes
