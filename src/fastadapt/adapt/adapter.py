"""An online inverse-dynamics model for a control loop.

    adapter = Adapter.from_loss_file("runs/demo/losses/state-dependent/loss.npz")
    for each control tick:
        tau_ff = adapter.predict(q, qd, qdd_des)      # feed-forward torque (Nm)
        ... apply tau = tau_ff + PD, measure ...
        adapter.observe(q, qd, qdd, tau)             # buffers; every batch_size samples one update

``observe`` appends a sample to a buffer; when the buffer holds ``batch_size`` samples it takes one
optimizer step on the loss (learned or MSE) and empties the buffer:
theta <- theta + optimizer_update(grad_theta L(phi; f_theta(x_batch), y_batch, s_batch)).
The step is one jitted call; inputs are normalised inside.

Never a non-finite torque. An update that would make any parameter or optimizer state non-finite, or the
model's prediction on the batch it learned from non-finite or beyond the torque limit (``limits.tau``),
is rejected inside the jitted step: the last good parameters are kept, and a counter inside the step counts
it. ``rejected_updates`` reads that counter, and ``observe`` reads it every ``SETTLE_EVERY`` updates and
then says so with an :class:`UpdateRejectedWarning` (a host sync of one number, kept off most ticks).
Inputs must be finite and within physical :class:`~fastadapt.data.trajectory.Limits`, checked with one
vectorised comparison per sample. Should a prediction still be non-finite or beyond the torque limit,
``predict`` returns the prediction of the parameters the adapter started from, and counts it in
``fallback_predictions``. To keep the per-call dispatch cost low
(at 1 kHz it dominates the arithmetic), the network's parameters and the loss's parameters each travel as
one flat vector (``jax.flatten_util.ravel_pytree``), the optimizer runs on the flat parameter vector,
the batch goes as one [B, 4J] array, and the parameter and optimizer-state buffers are donated.
"""

from __future__ import annotations

import functools
import math
import warnings

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from fastadapt.adapt.runner import loss_and_prediction, make_optimizer
from fastadapt.data.batches import Normalizer, Samples
from fastadapt.data.trajectory import DEFAULT_LIMITS, DataError, Limits
from fastadapt.losses import make_loss


class UpdateRejectedWarning(RuntimeWarning):
    """An online update would have made the model non-finite; the adapter kept its last good parameters."""


class Adapter:
    def __init__(self, model, normalizer: Normalizer, params, loss=None, loss_params=None,
                 optimizer="sgd", learning_rate: float = 1e-3, batch_size: int = 5, opt_state=None,
                 limits: Limits = DEFAULT_LIMITS):
        """``optimizer``: 'sgd' or 'adam' at ``learning_rate`` (run on the flat parameter vector), or any
        optax GradientTransformation, e.g. a learning-rate memory (``fastadapt.optim.metagd``), which
        sees the parameters as the model's pytree so that its parameter groups are the layers;
        ``opt_state``: its starting state (e.g. a memory carried from an earlier task); ``limits``: the
        largest plausible |q|, |qd|, |qdd|, |tau| of the inputs."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if isinstance(optimizer, str):
            try:
                rate = float(learning_rate)
            except (TypeError, ValueError):
                rate = float("nan")
            if not math.isfinite(rate) or rate <= 0:
                raise ValueError(f"learning_rate must be a finite number > 0, got {learning_rate!r}")
        for name, tree in (("params", params), ("loss_params", loss_params or {})):
            if not all(np.all(np.isfinite(np.asarray(leaf))) for leaf in jax.tree.leaves(tree)):
                raise ValueError(f"{name} hold NaN/inf")
        self.model, self.normalizer = model, normalizer
        self.joints = normalizer.num_joints
        self.loss = loss or make_loss("mse", self.joints)
        self.loss_params = {} if loss_params is None else loss_params
        self.batch_size = batch_size
        flat_params, self._unravel = jax.flatten_util.ravel_pytree(params)
        flat_loss_params, unravel_loss = jax.flatten_util.ravel_pytree(self.loss_params)
        on_tree = not isinstance(optimizer, str)
        opt = optimizer if on_tree else make_optimizer(optimizer, learning_rate)
        self._flat = flat_params
        if opt_state is not None:
            self._opt_state = opt_state
        else:
            self._opt_state = opt.init(self._unravel(flat_params) if on_tree else flat_params)
        self._flat_loss_params = flat_loss_params
        self._fallback = jnp.array(flat_params)  # a copy: the step donates (and so invalidates) self._flat
        self._xy = np.zeros((batch_size, 4 * self.joints), np.float32)
        self._x = np.zeros(3 * self.joints, np.float32)
        self._count = 0
        self.updates = 0
        self.limits = limits
        J = self.joints
        # one check per sample: |value| <= limit is False for NaN and inf too
        self._row_limits = np.repeat(np.asarray([limits.q, limits.qd, limits.qdd, limits.tau], np.float32), J)
        self._rejected_on_device = jnp.zeros((), jnp.int32)  # counted inside the step, read now and then
        self._rejected, self._reported = 0, 0
        self.fallback_predictions = 0
        norm, unravel, joints, tau_limit = normalizer, self._unravel, self.joints, limits.tau

        def objective(flat, flat_loss, batch):
            return loss_and_prediction(model, self.loss, unravel_loss(flat_loss), unravel(flat), batch)[0]

        def all_finite(tree):
            leaves = [jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree) if jnp.issubdtype(a.dtype, jnp.inexact)]
            return functools.reduce(jnp.logical_and, leaves, jnp.bool_(True))

        @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
        def step(flat, opt_state, rejected, flat_loss, xy):
            batch = Samples(norm.inputs(xy[:, : 3 * joints]), norm.targets(xy[:, 3 * joints:]))
            grads = jax.grad(objective)(flat, flat_loss, batch)
            if on_tree:
                updates, new_state = opt.update(unravel(grads), opt_state, unravel(flat))
                new_flat = flat + jax.flatten_util.ravel_pytree(updates)[0]
            else:
                updates, new_state = opt.update(grads, opt_state, flat)
                new_flat = flat + updates
            # reject an update that makes the model non-finite, or its prediction on this batch non-finite or
            # beyond the torque limit
            tau_new = norm.torques(model.apply(unravel(new_flat), batch.x))
            ok = all_finite(new_flat) & all_finite(new_state) & jnp.all(jnp.abs(tau_new) <= tau_limit)
            keep = lambda new, old: jnp.where(ok, new, old)
            return keep(new_flat, flat), jax.tree.map(keep, new_state, opt_state), rejected + (~ok).astype(jnp.int32)

        @jax.jit
        def predict(flat, x):
            return norm.torques(model.apply(unravel(flat), norm.inputs(x)))

        self._step, self._predict = step, predict

    def wait(self) -> None:
        """Block until the last update has finished (``observe`` returns as soon as it is dispatched)."""
        jax.block_until_ready(self._flat)

    @property
    def rejected_updates(self) -> int:
        """How many updates were rejected because they would have made the model non-finite."""
        self._settle()
        return self._rejected

    def _settle(self) -> None:
        """Read the device-side count of rejected updates and warn if it grew (a host sync of one
        number, so ``observe`` does it only every ``SETTLE_EVERY`` updates)."""
        self._rejected = int(self._rejected_on_device)
        if self._rejected > self._reported:
            warnings.warn(
                f"online update rejected: it would have made the model non-finite ({self._rejected} of "
                f"{self.updates} rejected so far); the last good parameters are kept. The learning rate is likely "
                "too large.", UpdateRejectedWarning, stacklevel=3)
            self._reported = self._rejected

    @property
    def opt_state(self):
        """The optimizer's state (with a learning-rate memory: save it, or carry it to a new task)."""
        return self._opt_state

    @property
    def params(self):
        """The model's current parameters (a pytree like the one it was built with)."""
        return self._unravel(self._flat)

    @classmethod
    def from_loss_file(cls, path, key=None, params=None, **kwargs) -> "Adapter":
        """A fresh (or given) model adapted with the trained loss saved at ``path`` at its inner rate."""
        from fastadapt.meta.trainer import load_loss

        config, loss, loss_params, normalizer = load_loss(path)
        model = config.model(normalizer.num_joints)
        params = params if params is not None else model.init(key if key is not None else jax.random.PRNGKey(0))
        kwargs.setdefault("learning_rate", config.alpha)
        return cls(model, normalizer, params, loss, loss_params, **kwargs)

    def _write(self, row: np.ndarray, offset: int, name: str, value) -> None:
        """Copy ``value`` (J numbers) into ``row`` at ``offset``; the fast path does no other checks."""
        try:
            count = len(value)
            if count == self.joints:
                row[offset: offset + self.joints] = value
                return
        except (TypeError, ValueError):
            raise DataError(f"{name} must be {self.joints} numbers, got {value!r}") from None
        raise DataError(f"{name} has {count} joints, the adapter's model has {self.joints}")

    def _check(self, row: np.ndarray, names) -> None:
        """Every value finite and within its physical limit (one vectorised test; details on failure)."""
        limits = self._row_limits[: row.shape[0]]
        if (np.abs(row) <= limits).all():
            return
        J = self.joints
        for k, (name, quantity) in enumerate(names):
            part = row[k * J: (k + 1) * J]
            if not np.isfinite(part).all():
                raise DataError(f"{name} holds NaN/inf: {part}")
            limit = getattr(self.limits, quantity)
            if np.abs(part).max() > limit:
                raise DataError(f"{name} = {part} is beyond the physical limit {limit:g} {Limits.UNITS[quantity]}")

    _PREDICT_NAMES = (("q", "q"), ("qd", "qd"), ("qdd_des", "qdd"))
    _OBSERVE_NAMES = (("q", "q"), ("qd", "qd"), ("qdd", "qdd"), ("tau", "tau"))

    def predict(self, q, qd, qdd_des) -> np.ndarray:
        """Feed-forward torque (Nm) for the current state and desired acceleration; always finite."""
        J, x = self.joints, self._x
        self._write(x, 0, "q", q)
        self._write(x, J, "qd", qd)
        self._write(x, 2 * J, "qdd_des", qdd_des)
        self._check(x, self._PREDICT_NAMES)
        x = jnp.asarray(x)
        tau = np.asarray(self._predict(self._flat, x))
        if np.abs(tau).max() <= self.limits.tau:  # False for NaN too
            return tau
        self.fallback_predictions += 1
        tau = np.asarray(self._predict(self._fallback, x))
        if not np.isfinite(tau).all():
            raise FloatingPointError(f"the model's prediction is non-finite even with its starting parameters "
                                     f"for q={self._x[:J]}, qd={self._x[J:2 * J]}")
        warnings.warn(f"the adapted model's prediction was non-finite or beyond {self.limits.tau:g} Nm; "
                      "returned the starting model's", UpdateRejectedWarning, stacklevel=2)
        return tau

    SETTLE_EVERY = 64  # updates between reads of the rejection count

    def observe(self, q, qd, qdd, tau) -> bool:
        """Record one measured sample; returns True when it completed a batch and the model updated."""
        J, row = self.joints, self._xy[self._count]
        self._write(row, 0, "q", q)
        self._write(row, J, "qd", qd)
        self._write(row, 2 * J, "qdd", qdd)
        self._write(row, 3 * J, "tau", tau)
        self._check(row, self._OBSERVE_NAMES)
        self._count += 1
        if self._count < self.batch_size:
            return False
        # a copy: on CPU jax may alias a numpy buffer that the next observe() overwrites
        self._flat, self._opt_state, self._rejected_on_device = self._step(
            self._flat, self._opt_state, self._rejected_on_device, self._flat_loss_params, self._xy.copy())
        self._count = 0
        self.updates += 1
        if self.updates % self.SETTLE_EVERY == 0:
            self._settle()
        return True
