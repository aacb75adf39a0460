"""Accelerations from measured velocities by a smoothed finite difference.

Real robot logs (e.g. the Schunk data) carry q, qd and tau but no accelerations, and differencing a
noisy velocity amplifies the noise by 1/dt. We use a Savitzky-Golay differentiator: around each sample
a polynomial of degree ``polyorder`` is fitted by least squares to the ``window`` velocities centred on
it, and qdd is the analytic derivative of that polynomial at the centre,

    qdd[t] = (1/dt) * sum_k c_k qd[t + k],   k = -(w-1)/2 .. (w-1)/2,

with fixed weights c_k (for polyorder 2 these are the central-difference weights
c_k = 3k / (m(m+1)(2m+1)), m = (w-1)/2). The filter is exact for polynomial velocities up to
``polyorder`` and attenuates noise above roughly (polyorder+1)/(w dt) Hz. At the ends the polynomial
fitted to the first/last window is evaluated (``mode='interp'``), so no samples are lost.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import savgol_filter

from fastadapt.data.trajectory import DataError

DEFAULT_WINDOW = 15
DEFAULT_POLYORDER = 2


def smoothed_derivative(
    values: np.ndarray, dt: float, window: int = DEFAULT_WINDOW, polyorder: int = DEFAULT_POLYORDER
) -> np.ndarray:
    """d(values)/dt along axis 0 by a Savitzky-Golay filter (see module docstring)."""
    values = np.asarray(values, dtype=np.float64)
    if dt <= 0 or not np.isfinite(dt):
        raise DataError(f"dt must be a positive time step, got {dt}")
    if window % 2 == 0 or window <= polyorder:
        raise DataError(f"window must be odd and larger than polyorder={polyorder}, got {window}")
    length = values.shape[0]
    if length < window:
        window = length if length % 2 == 1 else length - 1
        if window <= polyorder:
            raise DataError(
                f"a trajectory of {length} samples is too short for a derivative of order {polyorder}"
            )
    return savgol_filter(values, window, polyorder, deriv=1, delta=dt, axis=0, mode="interp")
