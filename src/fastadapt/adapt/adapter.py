"""An online inverse-dynamics model for a control loop.

    adapter = Adapter.from_loss_file("runs/demo/losses/state-dependent/loss.npz")   # compiles + warms up
    for each control tick:
        tau_ff = adapter.predict(q, qd, qdd_des)      # feed-forward torque (Nm)
        ... apply tau = tau_ff + PD, measure ...
        adapter.observe(q, qd, qdd, tau)             # buffers; every batch_size samples one update

``observe`` appends a sample to a buffer; when the buffer holds ``batch_size`` samples it takes one
optimizer step on the loss (learned or MSE) and empties the buffer:
theta <- theta + optimizer_update(grad_theta L(phi; f_theta(x_batch), y_batch, s_batch)).

The hot path, and why (each choice measured in a 1 kHz loop paced by sleeping, on the 2-core CPU
machine; ``benchmarks/control_loop.py``):

* ``predict`` runs the forward pass with **numpy on the host** (``model.apply(..., xp=numpy)``), on a
  host copy of the parameters made once per update. The same forward pass as an XLA executable took
  p50 ~180 us when called once per millisecond (against ~25 us back to back): each call hands the work
  to XLA's thread pool, whose threads have gone to sleep in between. numpy: p50 25-40 us in the loop.
  Models without an ``xp`` argument fall back to the compiled XLA function.
* No ``jnp.asarray`` on the hot path: the preallocated float32 buffers go to the compiled update as
  they are. ``jnp.asarray`` of the 21 inputs before a call made the call ~10x slower (140 against 13 us).
* The update and (for the XLA fallback) the prediction are compiled **ahead of time** for these exact
  buffers (``jit(...).lower(...).compile()``) and run once at construction (``warmup=True``), so no call
  in the loop traces or compiles; ``construction_seconds`` says what that cost (0.2-0.6 s for the
  demo's network with SGD, ~3 s with a learning-rate memory of M = 200).
* Parameters travel as one flat vector (``jax.flatten_util.ravel_pytree``); the optimizer runs on it;
  the batch goes as one [B, 4J] array; in the loop the state is donated to the update.
* ``background=True`` runs the updates on a thread of their own: ``observe`` only queues the batch, and
  ``predict`` uses the newest parameters whose update has finished (the thread computes a state and its
  host parameters, then publishes both in one assignment, so a prediction never sees half an update).
  ``pending_updates`` is the staleness. In the loop (the default) the prediction after an update waits
  for it (~100 us for the demo's network).
* ``gc.freeze()`` after construction is left to the application (it is process-wide); the benchmark
  measures it.

Never a non-finite torque. An update that would make any parameter or optimizer state non-finite, or the
model's prediction on the batch it learned from non-finite or beyond the torque limit (``limits.tau``),
is rejected inside the jitted step: the last good parameters are kept, and a counter inside the step counts
it. ``rejected_updates`` reads that counter, and ``observe`` reads it every ``SETTLE_EVERY`` updates and
then says so with an :class:`UpdateRejectedWarning` (a host sync of one number, kept off most ticks).
Inputs must be finite and within physical :class:`~fastadapt.data.trajectory.Limits`, checked with one
vectorised comparison per sample. Should a prediction still be non-finite or beyond the torque limit,
``predict`` returns the prediction of the parameters the adapter started from, and counts it in
``fallback_predictions``.
"""

from __future__ import annotations

import functools
import inspect
import math
import queue
import threading
import time
import warnings
from typing import NamedTuple

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


class _State(NamedTuple):
    """What an update replaces, swapped as one reference (a reader sees one update's state, whole)."""

    flat: jax.Array  # the model's parameters as one vector
    opt_state: object
    rejected: jax.Array  # updates rejected so far (int32, counted inside the step)


class _UpdateWorker:
    """A thread that runs the updates of an :class:`Adapter` built with ``background=True``: ``submit``
    queues a batch and returns; the thread runs the step, waits for its result, and swaps the adapter's
    state in one assignment."""

    def __init__(self, adapter: "Adapter"):
        self._adapter = adapter
        self._queue: queue.Queue = queue.Queue()
        self.finished = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="fastadapt-update", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            batch = self._queue.get()
            try:
                if batch is None:
                    return
                if self.error is None:
                    self._adapter._apply(batch, wait=True)
            except BaseException as error:  # noqa: BLE001 - handed to the control thread
                self.error = error
            finally:
                if batch is not None:
                    self.finished += 1
                self._queue.task_done()

    def submit(self, batch: np.ndarray) -> None:
        if self.error is not None:
            raise RuntimeError(f"the background update failed: {self.error!r}") from self.error
        self._queue.put(batch)

    def wait(self) -> None:
        self._queue.join()
        if self.error is not None:
            raise RuntimeError(f"the background update failed: {self.error!r}") from self.error

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


class Adapter:
    SETTLE_EVERY = 64  # updates between reads of the rejection count

    def __init__(self, model, normalizer: Normalizer, params, loss=None, loss_params=None,
                 optimizer="sgd", learning_rate: float = 1e-3, batch_size: int = 5, opt_state=None,
                 limits: Limits = DEFAULT_LIMITS, warmup: bool = True, background: bool = False):
        """``optimizer``: 'sgd' or 'adam' at ``learning_rate`` (run on the flat parameter vector), or any
        optax GradientTransformation, e.g. a learning-rate memory (``fastadapt.optim.metagd``), which
        sees the parameters as the model's pytree so that its parameter groups are the layers;
        ``opt_state``: its starting state (e.g. a memory carried from an earlier task); ``limits``: the
        largest plausible |q|, |qd|, |qdd|, |tau| of the inputs; ``warmup``: compile ``predict`` and the
        update ahead of time and run each once, so that no call in a control loop compiles (False: they
        compile on first use); ``background``: run the updates on a thread of their own."""
        started = time.perf_counter()
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
        self.joints = J = normalizer.num_joints
        self.loss = loss or make_loss("mse", J)
        self.loss_params = {} if loss_params is None else loss_params
        self.batch_size = batch_size
        self.limits = limits
        flat_params, self._unravel = jax.flatten_util.ravel_pytree(params)
        flat_loss_params, unravel_loss = jax.flatten_util.ravel_pytree(self.loss_params)
        on_tree = not isinstance(optimizer, str)
        opt = optimizer if on_tree else make_optimizer(optimizer, learning_rate)
        if opt_state is None:
            opt_state = opt.init(self._unravel(flat_params) if on_tree else flat_params)
        self._state = _State(flat_params, opt_state, jnp.zeros((), jnp.int32))
        self._flat_loss_params = flat_loss_params
        self._fallback = jnp.array(flat_params)  # a copy: the step donates (and so invalidates) the state
        # predict on the host: numpy copies of the normaliser and of each published parameter vector
        self._host_apply = "xp" in inspect.signature(model.apply).parameters
        self._host_norm = Normalizer(*(np.asarray(v, np.float32) for v in normalizer))
        leaves, self._treedef = jax.tree_util.tree_flatten(params)
        sizes = [int(np.size(leaf)) for leaf in leaves]
        self._leaf_specs = [(int(o), n, np.shape(leaf)) for o, n, leaf in zip(np.cumsum([0] + sizes[:-1]), sizes, leaves)]
        self._host_fallback = self._host_params(self._fallback)
        self._view = (self._state, self._host_fallback)  # (device state, its host parameters or None)
        # preallocated host buffers, handed to the compiled functions as they are
        self._xy = np.zeros((batch_size, 4 * J), np.float32)
        self._x = np.zeros(3 * J, np.float32)
        # one check per sample: |value| <= limit is False for NaN and inf too
        self._row_limits = np.repeat(np.asarray([limits.q, limits.qd, limits.qdd, limits.tau], np.float32), J)
        self._count = 0
        self.updates = 0
        self._rejected, self._reported = 0, 0
        self.fallback_predictions = 0
        self._step, self._predict = self._build(model, normalizer, opt, on_tree, unravel_loss, donate=not background)
        if warmup:
            self._compile_and_warm_up()
        self._worker = _UpdateWorker(self) if background else None
        self.construction_seconds = time.perf_counter() - started

    def _build(self, model, norm: Normalizer, opt, on_tree: bool, unravel_loss, donate: bool):
        """The jitted update and prediction (pure functions of the state and a host batch)."""
        unravel, joints, tau_limit, loss = self._unravel, self.joints, self.limits.tau, self.loss

        def objective(flat, flat_loss, batch):
            return loss_and_prediction(model, loss, unravel_loss(flat_loss), unravel(flat), batch)[0]

        def all_finite(tree):
            leaves = [jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree) if jnp.issubdtype(a.dtype, jnp.inexact)]
            return functools.reduce(jnp.logical_and, leaves, jnp.bool_(True))

        def step(state: _State, flat_loss, xy) -> _State:
            flat, opt_state = state.flat, state.opt_state
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
            return _State(keep(new_flat, flat), jax.tree.map(keep, new_state, opt_state),
                          state.rejected + (~ok).astype(jnp.int32))

        def predict(flat, x):
            return norm.torques(model.apply(unravel(flat), norm.inputs(x)))

        return jax.jit(step, donate_argnums=(0,) if donate else ()), jax.jit(predict)

    def _compile_and_warm_up(self) -> None:
        """Replace the jitted functions by executables compiled for these exact buffers, and run each once
        (the update on a copy of the state, whose result is dropped)."""
        self._step = self._step.lower(self._state, self._flat_loss_params, self._xy).compile()
        if not self._host_apply:
            self._predict = self._predict.lower(self._state.flat, self._x).compile()
        copy = jax.tree.map(jnp.array, self._state)
        self._host_params(self._step(copy, self._flat_loss_params, self._xy.copy()).flat)
        self._forward(self._host_fallback, self._fallback, self._x)

    # --- state ----------------------------------------------------------------------------------------
    @property
    def _state(self) -> _State:
        return self._view[0]

    @_state.setter
    def _state(self, state: _State) -> None:
        self._view = (state, None)

    def _host_params(self, flat) -> object:
        """The parameters of ``flat`` as a pytree of numpy arrays: views into one host copy (a copy, since
        the device buffer is donated to the next update). Waits for ``flat`` to be computed."""
        host = np.array(flat)
        return jax.tree_util.tree_unflatten(self._treedef, [host[o:o + n].reshape(shape) for o, n, shape in self._leaf_specs])

    def wait(self) -> None:
        """Block until every update submitted so far has finished."""
        if self._worker is not None:
            self._worker.wait()
        jax.block_until_ready(self._state.flat)

    def close(self) -> None:
        """Stop the background update thread (after the updates already submitted)."""
        if self._worker is not None:
            self._worker.close()

    def __enter__(self) -> "Adapter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pending_updates(self) -> int:
        """Updates submitted but not yet applied: how stale ``predict``'s parameters are (0 unless
        ``background``)."""
        return 0 if self._worker is None else self.updates - self._worker.finished

    @property
    def rejected_updates(self) -> int:
        """How many updates were rejected because they would have made the model non-finite."""
        self._settle()
        return self._rejected

    def _settle(self) -> None:
        """Read the device-side count of rejected updates and warn if it grew (a host sync of one
        number, so ``observe`` does it only every ``SETTLE_EVERY`` updates)."""
        self._rejected = int(self._state.rejected)
        if self._rejected > self._reported:
            warnings.warn(
                f"online update rejected: it would have made the model non-finite ({self._rejected} of "
                f"{self.updates} rejected so far); the last good parameters are kept. The learning rate is likely "
                "too large.", UpdateRejectedWarning, stacklevel=3)
            self._reported = self._rejected

    @property
    def opt_state(self):
        """The optimizer's state (with a learning-rate memory: save it, or carry it to a new task)."""
        return self._state.opt_state

    @property
    def params(self):
        """The model's current parameters (a pytree like the one it was built with)."""
        return self._unravel(self._state.flat)

    @classmethod
    def from_loss_file(cls, path, key=None, params=None, **kwargs) -> "Adapter":
        """A fresh (or given) model adapted with the trained loss saved at ``path`` at its inner rate."""
        from fastadapt.meta.trainer import load_loss

        config, loss, loss_params, normalizer = load_loss(path)
        model = config.model(normalizer.num_joints)
        params = params if params is not None else model.init(key if key is not None else jax.random.PRNGKey(0))
        kwargs.setdefault("learning_rate", config.alpha)
        return cls(model, normalizer, params, loss, loss_params, **kwargs)

    # --- the control loop ------------------------------------------------------------------------------
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
        state, host = self._view
        if host is None and self._host_apply:  # the first prediction after an update in the loop
            host = self._host_params(state.flat)
            self._view = (state, host)
        tau = self._forward(host, state.flat, x)
        if np.abs(tau).max() <= self.limits.tau:  # False for NaN too
            return tau
        self.fallback_predictions += 1
        tau = self._forward(self._host_fallback, self._fallback, x)
        if not np.isfinite(tau).all():
            raise FloatingPointError(f"the model's prediction is non-finite even with its starting parameters "
                                     f"for q={x[:J]}, qd={x[J:2 * J]}")
        warnings.warn(f"the adapted model's prediction was non-finite or beyond {self.limits.tau:g} Nm; "
                      "returned the starting model's", UpdateRejectedWarning, stacklevel=2)
        return tau

    def _forward(self, host_params, flat, x: np.ndarray) -> np.ndarray:
        """tau = f_theta(x) in Nm: with numpy on the host when the model allows it, else the compiled
        XLA function (the numpy buffer goes to it as it is; np.asarray waits for the result)."""
        if self._host_apply:
            norm = self._host_norm
            return norm.torques(self.model.apply(host_params, norm.inputs(x), xp=np))
        return np.asarray(self._predict(flat, x))

    def observe(self, q, qd, qdd, tau) -> bool:
        """Record one measured sample; returns True when it completed a batch and an update was started
        (dispatched, or with ``background`` queued for the update thread)."""
        J, row = self.joints, self._xy[self._count]
        self._write(row, 0, "q", q)
        self._write(row, J, "qd", qd)
        self._write(row, 2 * J, "qdd", qdd)
        self._write(row, 3 * J, "tau", tau)
        self._check(row, self._OBSERVE_NAMES)
        self._count += 1
        if self._count < self.batch_size:
            return False
        # a copy: the step runs asynchronously, and the next observe() overwrites the buffer
        batch = self._xy.copy()
        self._count = 0
        self.updates += 1
        if self._worker is not None:
            self._worker.submit(batch)
        else:
            self._apply(batch, wait=False)
        if self.updates % self.SETTLE_EVERY == 0:
            self._settle()
        return True

    def _apply(self, batch: np.ndarray, wait: bool) -> None:
        """One update. In the loop (``wait`` False) it is dispatched and the next ``predict`` fetches its
        result; on the update thread (``wait`` True) the new state and its host parameters are computed
        first and then published together, in one assignment."""
        state = self._step(self._state, self._flat_loss_params, batch)
        if not wait:
            self._state = state
        elif self._host_apply:
            self._view = (state, self._host_params(state.flat))
        else:
            self._view = (jax.block_until_ready(state), None)
