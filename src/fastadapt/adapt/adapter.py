"""An online inverse-dynamics model for a control loop.

    adapter = Adapter.from_loss_file("runs/demo/losses/state-dependent/loss.npz")
    for each control tick:
        tau_ff = adapter.predict(q, qd, qdd_des)      # feed-forward torque (Nm)
        ... apply tau = tau_ff + PD, measure ...
        adapter.observe(q, qd, qdd, tau)             # buffers; every batch_size samples one update

``observe`` appends a sample to a buffer; when the buffer holds ``batch_size`` samples it takes one
optimizer step on the loss (learned or MSE) and empties the buffer:
theta <- theta + optimizer_update(grad_theta L(phi; f_theta(x_batch), y_batch, s_batch)).
The step is one jitted call; inputs are normalised inside. To keep the per-call dispatch cost low
(at 1 kHz it dominates the arithmetic), the network's parameters and the loss's parameters each travel as
one flat vector (``jax.flatten_util.ravel_pytree``), the optimizer runs on the flat parameter vector,
the batch goes as one [B, 4J] array, and the parameter and optimizer-state buffers are donated.
"""

from __future__ import annotations

import functools

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from fastadapt.adapt.runner import loss_and_prediction, make_optimizer
from fastadapt.data.batches import Normalizer, Samples
from fastadapt.data.trajectory import DataError
from fastadapt.losses import make_loss


class Adapter:
    def __init__(self, model, normalizer: Normalizer, params, loss=None, loss_params=None,
                 optimizer="sgd", learning_rate: float = 1e-3, batch_size: int = 5, opt_state=None):
        """``optimizer``: 'sgd' or 'adam' at ``learning_rate`` (run on the flat parameter vector), or any
        optax GradientTransformation, e.g. a learning-rate memory (``fastadapt.optim.metagd``), which
        sees the parameters as the model's pytree so that its parameter groups are the layers;
        ``opt_state``: its starting state (e.g. a memory carried from an earlier task)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
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
        self._xy = np.zeros((batch_size, 4 * self.joints), np.float32)
        self._count = 0
        self.updates = 0
        norm, unravel, joints = normalizer, self._unravel, self.joints

        def objective(flat, flat_loss, batch):
            return loss_and_prediction(model, self.loss, unravel_loss(flat_loss), unravel(flat), batch)[0]

        @functools.partial(jax.jit, donate_argnums=(0, 1))
        def step(flat, opt_state, flat_loss, xy):
            batch = Samples(norm.inputs(xy[:, : 3 * joints]), norm.targets(xy[:, 3 * joints:]))
            grads = jax.grad(objective)(flat, flat_loss, batch)
            if on_tree:
                updates, opt_state = opt.update(unravel(grads), opt_state, unravel(flat))
                return flat + jax.flatten_util.ravel_pytree(updates)[0], opt_state
            updates, opt_state = opt.update(grads, opt_state, flat)
            return flat + updates, opt_state

        @jax.jit
        def predict(flat, x):
            return norm.torques(model.apply(unravel(flat), norm.inputs(x)))

        self._step, self._predict = step, predict

    def wait(self) -> None:
        """Block until the last update has finished (``observe`` returns as soon as it is dispatched)."""
        jax.block_until_ready(self._flat)

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

    def _vector(self, name, value) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float32).reshape(-1)
        if arr.shape[0] != self.joints:
            raise DataError(f"{name} has {arr.shape[0]} joints, the adapter's model has {self.joints}")
        if not np.all(np.isfinite(arr)):
            raise DataError(f"{name} holds NaN/inf: {arr}")
        return arr

    def predict(self, q, qd, qdd_des) -> np.ndarray:
        """Feed-forward torque (Nm) for the current state and desired acceleration."""
        x = np.concatenate([self._vector("q", q), self._vector("qd", qd), self._vector("qdd_des", qdd_des)])
        return np.asarray(self._predict(self._flat, jnp.asarray(x)))

    def observe(self, q, qd, qdd, tau) -> bool:
        """Record one measured sample; returns True when it completed a batch and the model updated."""
        k, J = self._count, self.joints
        self._xy[k, :J] = self._vector("q", q)
        self._xy[k, J: 2 * J] = self._vector("qd", qd)
        self._xy[k, 2 * J: 3 * J] = self._vector("qdd", qdd)
        self._xy[k, 3 * J:] = self._vector("tau", tau)
        self._count += 1
        if self._count < self.batch_size:
            return False
        # a copy: on CPU jax may alias a numpy buffer that the next observe() overwrites
        self._flat, self._opt_state = self._step(self._flat, self._opt_state, self._flat_loss_params, self._xy.copy())
        self._count = 0
        self.updates += 1
        return True
