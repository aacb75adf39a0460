"""From a log's raw time stamps to pieces on a regular time grid: what every importer of a user's log
does (ROS bags, :mod:`fastadapt.data.rosbag`; array files, :mod:`fastadapt.data.arrays`).

Given stamps t [N] and per-sample arrays (q, qd, tau, ... each [N, J]):

* samples are put in stamp order (a stamp that goes back by more than the gap threshold, a clock
  reset, is refused) and repeated stamps are dropped, the first sample kept;
* gaps longer than ``gap`` seconds (default: ``GAP_STEPS`` median steps) split the log into pieces;
  pieces shorter than ``MIN_SAMPLES`` are dropped;
* a log whose steps are irregular (any step more than ``IRREGULAR`` off the median, gaps left out) or
  for which a ``rate`` is given is resampled by linear interpolation onto t_0 + k / rate (default rate:
  the median one). A regular log is kept as it is. Finite differences of irregular stamps would
  otherwise be off (qdd derived from qd at the median step), and a stream's batches of 5 samples would
  span different times.

Every step taken is appended to ``notes`` as one line, for the importer to print.
"""

from __future__ import annotations

import numpy as np

from fastadapt.data.trajectory import IRREGULAR, DataError

GAP_STEPS = 10  # default gap threshold, in median steps
MIN_SAMPLES = 5  # a piece between gaps shorter than this is dropped
MAX_SAMPLES = 10_000_000  # resampling may make at most this many samples (10^7 x J x 5 float64 arrays)


def check_rate_and_gap(rate, gap) -> None:
    """--rate (Hz) and --gap (s), when given, are finite and > 0."""
    if rate is not None and not (np.isfinite(rate) and rate > 0):
        raise DataError(f"--rate must be a positive number of Hz, got {rate}")
    if gap is not None and not (np.isfinite(gap) and gap > 0):
        raise DataError(f"--gap must be a positive number of seconds, got {gap}")


def interpolate(grid: np.ndarray, t: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` [T, J] at stamps ``t``, linearly interpolated at ``grid``."""
    return np.stack([np.interp(grid, t, values[:, j]) for j in range(values.shape[1])], axis=1)


def in_time_order(source, t: np.ndarray, fields: dict, gap, notes: list, stamps: str = "time stamps",
                  unit: str = "sample") -> tuple[np.ndarray, dict]:
    """Samples in stamp order, without repeated stamps; a clock that jumps back is refused."""
    steps = np.diff(t)
    back = np.flatnonzero(steps < 0)
    if len(back):
        positive = steps[steps > 0]
        median = float(np.median(positive)) if len(positive) else 0.0
        threshold = gap if gap is not None else GAP_STEPS * median
        worst = back[np.argmin(steps[back])]
        if -steps[worst] > threshold:
            raise DataError(
                f"{source}: {stamps} go backwards by {-steps[worst]:.4g} s at {unit} {worst + 1} "
                f"(t={t[worst]:.6f} -> {t[worst + 1]:.6f} s), more than the gap threshold {threshold:.4g} s: a "
                "clock reset or two recordings in one log; cut it at that point (or give --gap)")
        notes.append(f"{len(back)} {unit}(s) recorded out of stamp order were put back in order")
    order = np.argsort(t, kind="stable")
    t = t[order]
    keep = np.concatenate([[True], np.diff(t) > 0])
    if not keep.all():
        notes.append(f"dropped {int((~keep).sum())} {unit}(s) with a repeated stamp")
    pick = order[keep]
    return t[keep], {name: values[pick] for name, values in fields.items()}


def regular_pieces(source, t: np.ndarray, fields: dict, rate: float | None, gap: float | None, notes: list,
                   what: str = "the log") -> tuple[list[tuple[np.ndarray, dict]], float | None]:
    """Ordered stamps ``t`` [N] and ``fields`` ({name: [N, J]}) as pieces on a regular grid (module
    docstring): ([(t, fields)], dt of the grid when resampled, else None)."""
    check_rate_and_gap(rate, gap)
    steps = np.diff(t)
    median = float(np.median(steps))
    gap = gap if gap is not None else GAP_STEPS * median
    cuts = np.flatnonzero(steps > gap) + 1
    pieces = np.split(np.arange(len(t)), cuts)
    if len(cuts):
        notes.append(f"split at {len(cuts)} gap(s) longer than {gap:.4g} s into {len(pieces)} pieces")
    kept = [p for p in pieces if len(p) >= MIN_SAMPLES]
    if len(kept) < len(pieces):
        notes.append(f"dropped {len(pieces) - len(kept)} piece(s) shorter than {MIN_SAMPLES} samples")
    if not kept:
        raise DataError(f"{source}: no stretch of {MIN_SAMPLES} or more samples in {what} without a gap longer "
                        f"than {gap:.4g} s")
    inner = np.concatenate([np.diff(t[p]) for p in kept])
    median = float(np.median(inner))  # the sampling step, gaps left out
    irregular = np.abs(inner - median) > IRREGULAR * median
    target = 1.0 / rate if rate else median
    resample = rate is not None or irregular.any()
    if resample:
        why = f"as asked (--rate {rate:g})" if rate else (
            f"{int(irregular.sum())} of {len(inner)} steps are more than {IRREGULAR:.0%} off the median "
            f"(steps {inner.min() * 1e3:.3g} to {inner.max() * 1e3:.3g} ms)")
        notes.append(f"resampled to {1 / target:.4g} Hz (dt {target * 1e3:.4g} ms, "
                     f"{'the median rate' if not rate else 'given'}) by linear interpolation: {why}")
        count = sum(np.floor((t[p[-1]] - t[p[0]]) / target) + 1 for p in kept)
        if count > MAX_SAMPLES:
            raise DataError(f"{source}: resampling {t[-1] - t[0]:.4g} s of {what} at {1 / target:.4g} Hz would make "
                            f"{count:.3g} samples, more than {MAX_SAMPLES:.0e}; give a lower --rate (the log is "
                            f"recorded at about {1 / median:.4g} Hz)")
    else:
        notes.append(f"regular at {1 / median:.4g} Hz (every step within {IRREGULAR:.0%} of {median * 1e3:.4g} ms); "
                     "not resampled")
    out = []
    for piece in kept:
        tp, fp = t[piece], {name: values[piece] for name, values in fields.items()}
        if resample:
            grid = tp[0] + target * np.arange(int(np.floor((tp[-1] - tp[0]) / target + 1e-9)) + 1)
            if len(grid) < MIN_SAMPLES:
                continue
            fp = {name: interpolate(grid, tp, values) for name, values in fp.items()}
            tp = grid
        out.append((tp, fp))
    if not out:
        raise DataError(f"{source}: no piece of {what} holds {MIN_SAMPLES} samples at {1 / target:.4g} Hz")
    return out, (target if resample else None)
