"""An online inverse-dynamics model for a control loop.

    adapter = Adapter.from_loss_file("runs/demo/losses/state-dependent/loss.npz")
    for each control tick:
        tau_ff = adapter.predict(q, qd, qdd_des)      # feed-forward torque (Nm)
        ... apply tau = tau_ff + PD, measure ...
        adapter.observe(q, qd, qdd, tau)             # buffers; every batch_size samples one update

``observe`` appends a sample to a buffer; when the buffer holds ``batch_size`` samples it takes one
optimizer step on the loss (learned or MSE) and empties the buffer:
theta <- theta + optimizer_update(grad_theta L(phi; f_theta(x_batch), y_batch, s_batch)).
The step is one jitted call on the whole state (params, optimizer state); inputs are normalised inside.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fastadapt.adapt.runner import loss_and_prediction, make_optimizer
from fastadapt.data.batches import Normalizer, Samples
from fastadapt.data.trajectory import DataError
from fastadapt.losses import make_loss


class Adapter:
    def __init__(self, model, normalizer: Normalizer, params, loss=None, loss_params=None,
                 optimizer: str = "sgd", learning_rate: float = 1e-3, batch_size: int = 5):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.normalizer = model, normalizer
        self.joints = normalizer.num_joints
        self.loss = loss or make_loss("mse", self.joints)
        self.loss_params = {} if loss_params is None else loss_params
        self.batch_size = batch_size
        self.params = params
        opt = make_optimizer(optimizer, learning_rate)
        self.opt_state = opt.init(params)
        self._x = np.zeros((batch_size, 3 * self.joints), np.float32)
        self._y = np.zeros((batch_size, self.joints), np.float32)
        self._count = 0
        self.updates = 0
        norm = normalizer
        grad_fn = jax.grad(functools.partial(loss_and_prediction, model, self.loss), argnums=1, has_aux=True)

        @jax.jit
        def step(params, opt_state, loss_params, x, y):
            batch = Samples(norm.inputs(x), norm.targets(y))
            grads, _ = grad_fn(loss_params, params, batch)
            updates, opt_state = opt.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        @jax.jit
        def predict(params, x):
            return norm.torques(model.apply(params, norm.inputs(x)))

        self._step, self._predict = step, predict

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
        return np.asarray(self._predict(self.params, jnp.asarray(x)))

    def observe(self, q, qd, qdd, tau) -> bool:
        """Record one measured sample; returns True when it completed a batch and the model updated."""
        k = self._count
        self._x[k, : self.joints] = self._vector("q", q)
        self._x[k, self.joints: 2 * self.joints] = self._vector("qd", qd)
        self._x[k, 2 * self.joints:] = self._vector("qdd", qdd)
        self._y[k] = self._vector("tau", tau)
        self._count += 1
        if self._count < self.batch_size:
            return False
        # copies: on CPU jax may alias a numpy buffer that the next observe() overwrites
        self.params, self.opt_state = self._step(
            self.params, self.opt_state, self.loss_params, self._x.copy(), self._y.copy()
        )
        self._count = 0
        self.updates += 1
        return True
