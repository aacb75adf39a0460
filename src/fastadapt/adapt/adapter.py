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
machine; ``benchmarks/control_loop.py``). After the loop sleeps, every numpy call costs several
microseconds (cold caches), so the tick is a count of numpy calls: ~20 today.

* ``predict`` runs the forward pass with **numpy on the host** (:class:`HostForward`): the normaliser
  folded into the first and last layers, per-joint networks stacked into one first layer and batched
  products, preallocated buffers. The same forward pass as an XLA executable took p50 ~140-180 us when
  called once per millisecond (each call wakes XLA's thread pool); ``model.apply(..., xp=numpy)`` with the
  normaliser around it ~45-55 us; this ~20-35 us (the memory paper's per-joint network: 100 -> 27 us).
  Models without a host forward pass use the compiled XLA function.
* Inputs are checked in three numpy calls: one ``concatenate`` into the preallocated row, one product
  s = x / limit, one dot: s . s <= 1 implies every |x_i| <= limit_i and is False for NaN. Only when it
  fails are the values tested one by one (for the exact error). Four slice writes and an
  abs/compare/all took ~20 us in the loop, this ~10-15 us. The torque check is one dot likewise.
* No ``jnp.asarray`` on the hot path: the preallocated float32 buffers go to the compiled update as
  they are. ``jnp.asarray`` of the 21 inputs before a call made the call ~10x slower (140 against 13 us).
* The update (and, without a host forward pass, the prediction) is compiled **ahead of time** for these
  exact buffers (``jit(...).lower(...).compile()``) and run once at construction (``warmup=True``), so no
  call in the loop traces or compiles; ``construction_seconds`` says what that cost (0.2-0.6 s for the
  demo's network with SGD, ~1 s with a learning-rate memory of M = 200, ~4 s for the memory paper's
  per-joint network with M = 200).
* Parameters travel as one flat vector (``jax.flatten_util.ravel_pytree``); the optimizer runs on it;
  the batch goes as one [B, 4J] array; the state is donated to the update.
* ``background=True`` runs the updates in **a process of their own**
  (:mod:`fastadapt.adapt.update_process`): ``observe`` writes into shared memory and hands a batch over
  with one counter store, no system call and no lock; ``predict`` uses the newest published parameters
  (a triple buffer with sequence counters, so it never sees half an update). ``pending_updates`` is the
  staleness. A thread, measured first, shared the interpreter lock with the control thread: tick p99
  167-202 us, against 106-140 us with the process in the same runs, pinned or not (``update_cpus``
  pins it). Construction then also starts the process (~2 s more: Python, JAX, compilation). In the
  loop (the default) the prediction after an update waits for it (~150 us for the demo's network).
  With ``background``, nothing on the control thread ever waits for the update process: a process that
  falls a ring of 64 batches behind has the oldest dropped (``dropped_batches``); one that died is an
  :class:`UpdateProcessError` on the next ``predict`` or ``observe`` (one ``waitpid``, ~0.3 us, per call);
  ``healthy`` tells a controller beforehand. After ``close()`` both raise :class:`AdapterClosedError`.
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

import math
import os
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from fastadapt.adapt.head import BayesianHead
from fastadapt.adapt.step import GuardedUpdate, StepState
from fastadapt.adapt.update_process import BatchesDroppedWarning, UpdateProcess, UpdateProcessError  # noqa: F401
from fastadapt.data.batches import Normalizer
from fastadapt.data.trajectory import DEFAULT_LIMITS, DataError, Limits
from fastadapt.losses import make_loss


class UpdateRejectedWarning(RuntimeWarning):
    """An online update would have made the model non-finite; the adapter kept its last good parameters."""


class AdapterClosedError(RuntimeError):
    """``predict`` or ``observe`` on an Adapter after ``close()``."""


class Adapter:
    SETTLE_EVERY = 64  # updates between reads of the rejection count
    STALL_SECONDS = 0.5  # with ``background``: an update process silent this long is not healthy

    def __init__(self, model, normalizer: Normalizer, params, loss=None, loss_params=None,
                 optimizer="sgd", learning_rate: float = 1e-3, batch_size: int = 5, opt_state=None,
                 limits: Limits = DEFAULT_LIMITS, warmup: bool = True, background: bool = False,
                 update_cpus=None, head: BayesianHead | None = None):
        """``optimizer``: 'sgd' or 'adam' at ``learning_rate`` (run on the flat parameter vector), or any
        optax GradientTransformation, e.g. a learning-rate memory (``fastadapt.optim.metagd``), which
        sees the parameters as the model's pytree so that its parameter groups are the layers;
        ``opt_state``: its starting state (e.g. a memory carried from an earlier task); ``limits``: the
        largest plausible |q|, |qd|, |qdd|, |tau| of the inputs; ``warmup``: compile ``predict`` and the
        update ahead of time and run each once, so that no call in a control loop compiles (False: they
        compile on first use); ``background``: run the updates in a process of their own (the model must have
        a host forward pass: InverseDynamicsMLP or PerJointMLP); ``update_cpus``: with ``background``, the
        CPUs that process may run on (e.g. all but the control thread's); ``head``: a
        :class:`~fastadapt.adapt.head.BayesianHead`, the last layer updated in closed form with forgetting
        (an InverseDynamicsMLP only; the optimizer then moves the layers below only with ``adapt_body``)."""
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
        if head is not None and not isinstance(head, BayesianHead):
            raise ValueError(f"head must be a BayesianHead, got {head!r}")
        if head is not None:
            head.check_model(model)
        self.head = head
        update = GuardedUpdate(model, normalizer, params, self.loss, self.loss_params, optimizer, learning_rate,
                               opt_state, limits, head)
        self._update, self._unravel = update, update.unravel
        self._host_norm, self._host = update.host_normalizer, update.host
        self._state = update.initial
        self._fallback = jnp.array(update.initial.flat)  # a copy: the step donates (and so invalidates) the state
        self._host_fallback = self._host.views(update.start_host) if self._host is not None else None
        self._view = (self._state, self._host_fallback)  # (device state, its folded host parameters or None)
        # preallocated host buffers, handed to the compiled functions as they are
        self._xy = np.zeros((batch_size, 4 * J), np.float32)
        self._x = np.zeros(3 * J, np.float32)
        # float64: s . s of float32 inputs cannot overflow (so no floating-point warning for huge inputs)
        self._x_scaled, self._row_scaled = np.zeros(3 * J), np.zeros(4 * J)
        self._inverse_limits = 1.0 / np.repeat(np.asarray([limits.q, limits.qd, limits.qdd, limits.tau], np.float64), J)
        self._square_tau_limit = np.float32(limits.tau) ** 2
        self._count = 0
        self.updates = 0
        self._rejected, self._reported = 0, 0
        self.fallback_predictions = 0
        self._process = None
        self._closed = False
        if update_cpus is not None:
            update_cpus = set(update_cpus)
            if not background:
                raise ValueError("update_cpus needs background=True (it pins the update process)")
            if not update_cpus or not update_cpus <= os.sched_getaffinity(0):
                raise ValueError(f"update_cpus must be a non-empty subset of this process's CPUs "
                                 f"{sorted(os.sched_getaffinity(0))}, got {sorted(update_cpus)}")
        if background:
            if self._host is None:
                raise ValueError(f"background=True needs a model with a host forward pass (InverseDynamicsMLP or "
                                 f"PerJointMLP), not {type(model).__name__}")
            arguments = dict(model=model, normalizer=self._host_norm, params=jax.tree.map(np.asarray, params),
                             loss=self.loss, loss_params=jax.tree.map(np.asarray, self.loss_params),
                             optimizer=optimizer, learning_rate=learning_rate, batch_size=batch_size,
                             opt_state=jax.tree.map(np.asarray, update.initial.opt_state), limits=limits, head=head)
            self._process = UpdateProcess(arguments, self._host_fallback, batch_size, 4 * J, update_cpus)
            self._xy = self._process.buffer()
            self._forward(self._host_fallback, self._fallback, self._x)
        elif warmup:
            self._compile_and_warm_up()
        self.construction_seconds = time.perf_counter() - started

    def _compile_and_warm_up(self) -> None:
        """Compile the update (and the prediction, without a host forward pass) for these exact buffers and
        run each once (the update on a copy of the state, whose result is dropped)."""
        self._update.compile(self._xy, self._x)
        self._forward(self._host_fallback, self._fallback, self._x)

    # --- state ----------------------------------------------------------------------------------------
    @property
    def _state(self) -> StepState:
        return self._view[0]

    @_state.setter
    def _state(self, state: StepState) -> None:
        self._view = (state, None)

    def wait(self, timeout: float | None = None) -> None:
        """Block until every update handed over so far has finished (with ``background``: TimeoutError after
        ``timeout`` seconds, UpdateProcessError if the update process is gone)."""
        if self._process is not None:
            self._process.wait(timeout)
        jax.block_until_ready(self._state.flat)

    def close(self) -> None:
        """Stop the update process (after the updates already handed over); ``predict`` and ``observe``
        raise :class:`AdapterClosedError` from then on."""
        self._closed = True
        if self._process is not None:
            self._process.close()

    @property
    def healthy(self) -> bool:
        """Whether the adapter is open and its updates go on: with ``background``, the update process is
        alive, has not failed, has gone round its loop within ``STALL_SECONDS`` and drops no batches. A
        controller that finds it False can fall back (e.g. to a fixed model) before ``observe`` raises."""
        if self._closed:
            return False
        if self._process is None:
            return True
        return self._process.alive and self._process.silent_seconds < self.STALL_SECONDS and not self.dropped_batches

    @property
    def dropped_batches(self) -> int:
        """Batches dropped, oldest first, because the update process fell a whole ring (64 batches) behind
        (0 unless ``background``): ``observe`` never waits for it."""
        return 0 if self._process is None else self._process.dropped

    def __enter__(self) -> "Adapter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pending_updates(self) -> int:
        """Updates handed over but not yet applied: how stale ``predict``'s parameters are (0 unless
        ``background``)."""
        return 0 if self._process is None else self._process.batches - self._process.done

    @property
    def rejected_updates(self) -> int:
        """How many updates were rejected because they would have made the model non-finite."""
        self._settle()
        return self._rejected

    def _settle(self) -> None:
        """Read the device-side count of rejected updates and warn if it grew (a host sync of one
        number, so ``observe`` does it only every ``SETTLE_EVERY`` updates)."""
        self._rejected = int(self._state.rejected) if self._process is None else self._process.rejected
        if self._rejected > self._reported:
            warnings.warn(
                f"online update rejected: it would have made the model non-finite ({self._rejected} of "
                f"{self.updates} rejected so far); the last good parameters are kept. The learning rate is likely "
                "too large.", UpdateRejectedWarning, stacklevel=3)
            self._reported = self._rejected

    @property
    def opt_state(self):
        """The optimizer's state (with a learning-rate memory: save it, or carry it to a new task)."""
        return self._state.opt_state if self._process is None else self._process.state()[1]

    @property
    def params(self):
        """The model's current parameters (a pytree like the one it was built with); with ``background``,
        after every update handed over so far."""
        flat = self._state.flat if self._process is None else jnp.asarray(self._process.state()[0])
        return self._unravel(flat)

    @classmethod
    def from_loss_file(cls, path, key=None, params=None, forgetting: float = 0.998, **kwargs) -> "Adapter":
        """A fresh (or given) model adapted with the trained loss saved at ``path`` at its inner rate. An
        ALPaCA file (``loss=alpaca``) instead gives the meta-learned network and a Bayesian head with its
        meta-learned prior precision, forgetting at ``forgetting`` (``params`` then replace the network:
        its last layer is the prior mean)."""
        from fastadapt.tasks.inverse_dynamics import load_loss

        config, loss, loss_params, normalizer = load_loss(path)
        if getattr(loss, "closed_form", False):
            if "head" in kwargs:
                raise ValueError(f"{path} is an ALPaCA file: it makes its own head (set forgetting=, not head=)")
            prior = loss.prior(jax.tree.map(jnp.asarray, loss_params))
            kwargs["head"] = BayesianHead(forgetting, np.asarray(prior.precision))
            params = params if params is not None else loss_params["layers"]
            return cls(loss.model, normalizer, params, **kwargs)
        model = config.model(normalizer.num_joints)
        params = params if params is not None else model.init(key if key is not None else jax.random.PRNGKey(0))
        kwargs.setdefault("learning_rate", config.alpha)
        return cls(model, normalizer, params, loss, loss_params, **kwargs)

    # --- the control loop ------------------------------------------------------------------------------
    def _fill(self, row: np.ndarray, names, values, scaled: np.ndarray) -> None:
        """row <- the J numbers of each of ``values``, each finite and within its physical limit.

        Fast path, three numpy calls: one concatenate into the row, one product s = x / limit, one dot:
        s . s <= 1 implies |x_i| <= limit_i for every i, and is False for NaN (s in float64, where s . s
        of float32 inputs cannot overflow). Only when that fails (or a value is not J numbers)
        are the values tested one by one, for the exact error."""
        J = self.joints
        try:
            if all(len(value) == J for value in values):
                np.concatenate(values, out=row)
                np.multiply(row, self._inverse_limits[: row.shape[0]], out=scaled)
                if np.dot(scaled, scaled) <= 1.0:
                    return
        except (TypeError, ValueError):
            pass
        for k, ((name, quantity), value) in enumerate(zip(names, values)):
            try:
                array = np.asarray(value)
            except (TypeError, ValueError):
                raise DataError(f"{name} must be {J} real numbers, got {value!r}") from None
            if array.dtype.kind not in "biuf":
                kind = "text" if array.dtype.kind in "US" else ("complex numbers" if array.dtype.kind == "c" else
                                                                 f"{array.dtype} values")
                raise DataError(f"{name} must be {J} real numbers, got {kind}: {value!r}")
            if array.ndim != 1:
                raise DataError(f"{name} must be a vector of {J} numbers, got shape {array.shape}")
            if len(array) != J:
                raise DataError(f"{name} has {len(array)} joints, the adapter's model has {J}")
            row[k * J: (k + 1) * J] = array
            part = row[k * J: (k + 1) * J]
            if not np.isfinite(part).all():
                raise DataError(f"{name} holds NaN/inf: {part}")
            limit = getattr(self.limits, quantity)
            if np.abs(part).max() > limit:
                raise DataError(f"{name} = {part} is beyond the physical limit {limit:g} {Limits.UNITS[quantity]}")

    _PREDICT_NAMES = (("q", "q"), ("qd", "qd"), ("qdd_des", "qdd"))
    _OBSERVE_NAMES = (("q", "q"), ("qd", "qd"), ("qdd", "qdd"), ("tau", "tau"))

    def predict(self, q, qd, qdd_des) -> np.ndarray:
        """Feed-forward torque (Nm) for the current state and desired acceleration; always finite. Raises
        :class:`UpdateProcessError` once the update process is gone (never a stale model without a word)
        and :class:`AdapterClosedError` after ``close()``."""
        if self._closed:
            raise AdapterClosedError("predict() on a closed Adapter")
        if self._process is not None:
            self._process.check()
        x = self._x
        self._fill(x, self._PREDICT_NAMES, (q, qd, qdd_des), self._x_scaled)
        state, host = self._view
        if self._process is not None:
            while True:  # again only if the update process rewrote the slot during the prediction
                host, ticket = self._process.latest()
                tau = self._forward(host, None, x)
                if self._process.intact(ticket):
                    break
        else:
            if host is None and self._host is not None:  # the first prediction after an update in the loop
                host = self._host.views(np.array(state.host))
                self._view = (state, host)
            tau = self._forward(host, state.flat, x)
        # |tau|^2 <= limit^2 implies every |tau_j| <= limit, and is False for NaN; the exact test otherwise
        if np.dot(tau, tau) <= self._square_tau_limit or np.abs(tau).max() <= self.limits.tau:
            return tau
        self.fallback_predictions += 1
        tau = self._forward(self._host_fallback, self._fallback, x)
        if not np.isfinite(tau).all():
            J = self.joints
            raise FloatingPointError(f"the model's prediction is non-finite even with its starting parameters "
                                     f"for q={x[:J]}, qd={x[J:2 * J]}")
        warnings.warn(f"the adapted model's prediction was non-finite or beyond {self.limits.tau:g} Nm; "
                      "returned the starting model's", UpdateRejectedWarning, stacklevel=2)
        return tau

    def _forward(self, host, flat, x: np.ndarray) -> np.ndarray:
        """tau = f_theta(x) in Nm: the host forward pass on the folded parameters ``host`` when the model
        has one, else the compiled XLA function on ``flat`` (the numpy buffer goes to it as it is;
        np.asarray waits for the result)."""
        if self._host is not None:
            return self._host(host, x)
        return np.asarray(self._update.predict(flat, x))

    def observe(self, q, qd, qdd, tau) -> bool:
        """Record one measured sample; returns True when it completed a batch and an update was started
        (dispatched, or with ``background`` handed to the update process). Never waits: with ``background``,
        when the update process is a whole ring of batches behind, the oldest batches are dropped
        (``dropped_batches``, and one :class:`BatchesDroppedWarning`). Raises :class:`UpdateProcessError` on
        the first call after the update process died, :class:`AdapterClosedError` after ``close()``."""
        if self._closed:
            raise AdapterClosedError("observe() on a closed Adapter")
        if self._process is not None:
            self._process.check()
        self._fill(self._xy[self._count], self._OBSERVE_NAMES, (q, qd, qdd, tau), self._row_scaled)
        self._count += 1
        if self._count < self.batch_size:
            return False
        self._count = 0
        self.updates += 1
        if self._process is not None:
            self._process.submit()
            self._xy = self._process.buffer()
        else:  # a copy: the step runs asynchronously, and the next observe() overwrites the buffer
            self._state = self._update.step(self._state, self._xy.copy())
        if self.updates % self.SETTLE_EVERY == 0:
            self._settle()
        return True
