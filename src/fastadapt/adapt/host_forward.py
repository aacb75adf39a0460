"""The forward pass of an MLP inverse-dynamics model in numpy, as lean as a control loop needs it.

``Adapter.predict`` computes tau = y_std * f_theta((x - x_mean) / x_std) + y_mean once per tick. Called
once per millisecond, every numpy call costs a few microseconds (the caches are cold after the loop
sleeps), so this module does the same maths in as few calls as it can, into preallocated buffers:

* The normaliser is folded into the first and the last layer (:meth:`HostForward.fold`):

      ((x - m) / s) W_1 + b_1 = x (W_1 / s[:, None]) + (b_1 - (m / s) W_1)
      y_std * (h W_L + b_L) + y_mean = h (W_L * y_std) + (b_L * y_std + y_mean)

  which removes four array operations per call; the result differs from the unfolded one by float32
  rounding only.
* Networks that share their input are stacked: the memory paper's model (one network per joint) has one
  first layer [3J, J h_1] and then batched products [J, 1, h_i] x [J, h_i, h_{i+1}]: 3 calls per layer
  instead of 3 per layer and joint. A single network is the stack of one.

Measured in a loop paced at 1 kHz on the 2-core machine (demo network 21 -> 64 -> 64 -> 7):
``model.apply(..., xp=numpy)`` with the normaliser around it p50 ~45-55 us, this p50 ~35 us.

``fold`` runs inside the jitted update (``fold_flat(..., xp=jax.numpy)``), so the update returns the
published parameters ready for the host in one vector; ``__call__`` runs on every tick.
"""

from __future__ import annotations

import numpy as np

from fastadapt.data.batches import Normalizer
from fastadapt.models.mlp import InverseDynamicsMLP, PerJointMLP

_IN_PLACE_ACTIVATIONS = {
    "tanh": lambda h: np.tanh(h, out=h),
    "relu": lambda h: np.maximum(h, 0, out=h),
    "softplus": lambda h: np.logaddexp(0, h, out=h),
}


class HostForward:
    """tau(x) in Nm for one model structure; the (folded) parameters are passed per call, so one instance
    serves every published version of them."""

    def __init__(self, model):
        if not self.supports(model):
            raise TypeError(f"no host forward pass for {type(model).__name__}")
        self.model = model
        self.stacked = model.num_joints if isinstance(model, PerJointMLP) else 1
        sizes = model.sizes
        n = self.stacked
        self._first = np.empty(n * sizes[1], np.float32)
        self._hidden = [np.empty((n, 1, size), np.float32) for size in sizes[2:]]
        self._activate = _IN_PLACE_ACTIVATIONS[model.activation]

    @staticmethod
    def supports(model) -> bool:
        return type(model) in (InverseDynamicsMLP, PerJointMLP) and model.activation in _IN_PLACE_ACTIVATIONS

    def fold(self, params, normalizer: Normalizer, xp=np) -> list:
        """The parameters as arrays [W_1, b_1, W_2, b_2, ...] with the normaliser folded in (see the module
        docstring); first layer [3J, n h_1] and [n h_1], later ones [n, h_i, h_{i+1}] and [n, 1, h_{i+1}]
        for n stacked networks. ``xp``: numpy (float64 arithmetic, float32 result) or jax.numpy (float32,
        inside the jitted update, which so returns the published parameters ready for the host)."""
        dtype = np.float64 if xp is np else np.float32
        x_mean, x_std, y_mean, y_std = (xp.asarray(v, dtype) for v in normalizer)
        nets = params if self.stacked > 1 else [params]
        if self.stacked > 1:  # network j's output is joint j's torque
            out_scale, out_shift = y_std[:, None], y_mean[:, None]
        else:
            out_scale, out_shift = y_std[None, :], y_mean[None, :]
        arrays = []
        for i in range(len(nets[0])):
            w = xp.stack([xp.asarray(net[i]["w"], dtype) for net in nets])  # [n, in, out]
            b = xp.stack([xp.asarray(net[i]["b"], dtype) for net in nets])  # [n, out]
            if i == len(nets[0]) - 1:
                w, b = w * out_scale[:, None, :], b * out_scale + out_shift
            if i == 0:
                b = b - xp.einsum("i,nio->no", x_mean / x_std, w)
                w = w / x_std[None, :, None]
                w, b = xp.concatenate(list(w), axis=1), b.reshape(-1)  # [in, n h_1], [n h_1]
            else:
                b = b[:, None, :]
            arrays += [w.astype(np.float32), b.astype(np.float32)]
        return arrays

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """The shapes of the arrays :meth:`fold` returns."""
        n, sizes = self.stacked, self.model.sizes
        shapes = [(sizes[0], n * sizes[1]), (n * sizes[1],)]
        for h_in, h_out in zip(sizes[1:-1], sizes[2:]):
            shapes += [(n, h_in, h_out), (n, 1, h_out)]
        return shapes

    def fold_flat(self, params, normalizer: Normalizer, xp=np):
        """:meth:`fold`'s arrays concatenated into one float32 vector (one transfer to the host)."""
        return xp.concatenate([a.reshape(-1) for a in self.fold(params, normalizer, xp)])

    def views(self, flat: np.ndarray) -> list[np.ndarray]:
        """:meth:`fold`'s arrays as views into ``flat`` (from :meth:`fold_flat`)."""
        arrays, offset = [], 0
        for shape in self.shapes:
            size = int(np.prod(shape))
            arrays.append(flat[offset: offset + size].reshape(shape))
            offset += size
        return arrays

    def __call__(self, arrays: list[np.ndarray], x: np.ndarray) -> np.ndarray:
        """tau for one input row x [3J] (float32); a new float64 array [J] (the float32 results, exactly;
        float64 so that the caller's tau . tau cannot overflow)."""
        h = self._first
        np.dot(x, arrays[0], out=h)
        np.add(h, arrays[1], out=h)
        self._activate(h)
        h = h.reshape(self.stacked, 1, -1)
        last = len(self._hidden) - 1
        for i, out in enumerate(self._hidden):
            np.matmul(h, arrays[2 * i + 2], out=out)
            np.add(out, arrays[2 * i + 3], out=out)
            if i < last:
                self._activate(out)
            h = out
        return h.reshape(-1).astype(np.float64)
