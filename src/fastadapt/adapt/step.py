"""The guarded online update that the Adapter (updating in the control loop) and its update process
(``background=True``) share: one jitted step on the flat parameter vector, one batch at a time.

    g      = grad_theta L(phi; f_theta(x_B), y_B, s_B)         (per-layer learned rates applied, if any)
    (u, s) = optimizer.update(g, s, theta);   theta' = theta + u
    keep theta' (and s) only if theta', s and f_theta'(x_B) are finite and |f_theta'(x_B)| <= limits.tau;
    otherwise keep theta (and the old s) and count the rejection

With a Bayesian head (:class:`~fastadapt.adapt.head.BayesianHead`) the last layer is instead the
posterior mean of a closed-form update on the batch, theta' = [body', K], K = Lambda^-1 Q, and the body
moves only with ``adapt_body`` (the step above with the last layer's gradient masked, before the head
update); the posterior (Lambda, Q) is kept or rejected with theta'.

The state (:class:`StepState`) is what one update replaces, swapped as one reference: the parameters as
one vector, the optimizer state, the rejections so far (counted inside the step, never a host sync) and
the parameters folded for the host forward pass (:meth:`HostForward.fold_flat`), computed by the step so
that the control thread only copies them. The step donates its state.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax

from fastadapt.adapt.head import BayesianHead, head_update, last_layer_mask
from fastadapt.adapt.host_forward import HostForward
from fastadapt.data.batches import Normalizer, Samples
from fastadapt.data.trajectory import DEFAULT_LIMITS, Limits
from fastadapt.losses.regression import scale_gradients
from fastadapt.optim.loops import loss_and_prediction, make_optimizer


class StepState(NamedTuple):
    """What an update replaces, swapped as one reference (a reader sees one update's state, whole)."""

    flat: jax.Array  # the model's parameters as one vector
    opt_state: object
    rejected: jax.Array  # updates rejected so far (int32, counted inside the step)
    host: jax.Array  # the parameters folded for the host forward pass, one vector (empty without one)
    head: object = ()  # with a Bayesian head: its posterior (a HeadPosterior), else ()


class GuardedUpdate:
    """The update of one model with one loss and optimizer: ``initial`` (its starting state), ``step(state,
    xy)`` (the jitted update on a host batch ``xy`` [B, 4J] of q, qd, qdd, tau; donates ``state``),
    ``predict(flat, x)`` (the jitted torque of the flat parameters for x [3J], the models without a host
    forward pass need it) and ``unravel`` (flat vector -> the model's pytree).

    ``optimizer``: 'sgd' or 'adam' at ``learning_rate`` (on the flat vector), or any optax
    GradientTransformation, which sees the parameters as the model's pytree (so that a learning-rate
    memory's groups are the layers). ``head``: a :class:`~fastadapt.adapt.head.BayesianHead` for the last
    layer, its prior mean the last layer of ``params``."""

    def __init__(self, model, normalizer: Normalizer, params, loss, loss_params, optimizer, learning_rate: float,
                 opt_state=None, limits: Limits = DEFAULT_LIMITS, head: BayesianHead | None = None):
        self.model, self.loss, self.limits = model, loss, limits
        flat_params, self.unravel = jax.flatten_util.ravel_pytree(params)
        self.flat_loss_params, unravel_loss = jax.flatten_util.ravel_pytree(loss_params)
        on_tree = not isinstance(optimizer, str)
        opt = optimizer if on_tree else make_optimizer(optimizer, learning_rate)
        if opt_state is None:
            opt_state = opt.init(self.unravel(flat_params) if on_tree else flat_params)
        self.host_normalizer = Normalizer(*(np.asarray(v, np.float32) for v in normalizer))
        self.host = HostForward(model) if HostForward.supports(model) else None
        self.start_host = (self.host.fold_flat(params, self.host_normalizer) if self.host is not None
                           else np.zeros(0, np.float32))  # the folded parameters of the starting model (numpy)
        prior = head.prior(model, params) if head is not None else ()  # numpy: constants of the step
        self.initial = StepState(flat_params, opt_state, jnp.zeros((), jnp.int32), jnp.asarray(self.start_host),
                                 jax.tree.map(jnp.asarray, prior))
        # with a head, the body's gradient step leaves the last layer (the head's) alone
        body_mask = None if head is None else jax.flatten_util.ravel_pytree(last_layer_mask(params))[0]
        step, self.predict = _build(model, normalizer, self.unravel, unravel_loss, loss, limits.tau, self.host, opt,
                                    on_tree, head, prior, body_mask)
        self._step = jax.jit(step, donate_argnums=(0,))

    def step(self, state: StepState, xy) -> StepState:
        """One guarded update of ``state`` (donated) on the batch ``xy``."""
        return self._step(state, self.flat_loss_params, xy)

    def compile(self, xy, x) -> None:
        """Compile the update (and, without a host forward pass, the prediction) ahead of time for these
        exact buffers, and run the update once on a copy of the initial state (its result dropped), so
        that no call in a control loop traces or compiles."""
        self._step = self._step.lower(self.initial, self.flat_loss_params, xy).compile()
        if self.host is None:
            self.predict = self.predict.lower(self.initial.flat, x).compile()
        copy = jax.tree.map(jnp.array, self.initial)
        np.array(self._step(copy, self.flat_loss_params, xy.copy()).host)


def _build(model, norm: Normalizer, unravel, unravel_loss, loss, tau_limit: float, host,
           opt: optax.GradientTransformation, on_tree: bool, head: BayesianHead | None = None, prior=(), body_mask=None):
    """The update and prediction as pure functions of the state and a host batch (not yet jitted: the
    prediction is returned jitted, the step is jitted by the caller with its state donated)."""
    joints = norm.num_joints

    def objective(flat, flat_loss, batch):
        return loss_and_prediction(model, loss, unravel_loss(flat_loss), unravel(flat), batch)[0]

    def gradient(flat, flat_loss, batch):  # on the flat vector, per-layer learned rates applied
        grads = jax.grad(objective)(flat, flat_loss, batch)
        if not getattr(loss, "layers", 0):
            return grads
        return jax.flatten_util.ravel_pytree(scale_gradients(loss, unravel_loss(flat_loss), unravel(grads)))[0]

    def all_finite(tree):
        leaves = [jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree) if jnp.issubdtype(a.dtype, jnp.inexact)]
        return functools.reduce(jnp.logical_and, leaves, jnp.bool_(True))

    def optimizer_step(flat, opt_state, flat_loss, batch):
        grads = gradient(flat, flat_loss, batch)
        if body_mask is not None:
            grads = grads * body_mask
        if on_tree:
            updates, new_state = opt.update(unravel(grads), opt_state, unravel(flat))
            return flat + jax.flatten_util.ravel_pytree(updates)[0], new_state
        updates, new_state = opt.update(grads, opt_state, flat)
        return flat + updates, new_state

    def step(state: StepState, flat_loss, xy) -> StepState:
        flat, opt_state = state.flat, state.opt_state
        batch = Samples(norm.inputs(xy[:, : 3 * joints]), norm.targets(xy[:, 3 * joints:]))
        if head is None or head.adapt_body:
            new_flat, new_state = optimizer_step(flat, opt_state, flat_loss, batch)
        else:
            new_flat, new_state = flat, opt_state
        new_head = state.head
        if head is not None:
            new_head, layers = head_update(model, unravel(new_flat), prior, state.head, batch.x, batch.y,
                                           head.forgetting)
            new_flat = jax.flatten_util.ravel_pytree(layers)[0]
        # reject an update that makes the model non-finite, or its prediction on this batch non-finite or
        # beyond the torque limit
        tau_new = norm.torques(model.apply(unravel(new_flat), batch.x))
        ok = (all_finite(new_flat) & all_finite(new_state) & all_finite(new_head)
              & jnp.all(jnp.abs(tau_new) <= tau_limit))
        keep = lambda new, old: jnp.where(ok, new, old)
        kept = keep(new_flat, flat)
        folded = state.host if host is None else host.fold_flat(unravel(kept), norm, jnp)
        return StepState(kept, jax.tree.map(keep, new_state, opt_state), state.rejected + (~ok).astype(jnp.int32),
                         folded, jax.tree.map(keep, new_head, state.head))

    def predict(flat, x):
        return norm.torques(model.apply(unravel(flat), norm.inputs(x)))

    return step, jax.jit(predict)
