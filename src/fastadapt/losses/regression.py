"""Losses for inverse-dynamics regression; all share one interface.

A loss has ``init(key) -> params`` and ``apply(params, pred, target, state) -> scalar`` with
``pred, target`` of shape [B, J] (normalised torques) and ``state`` = (q, qd) of shape [B, 2J]. With
``e_bj = pred_bj - target_bj``:

* ``mse``:              L = 1/(B J) sum_b sum_j e_bj^2                        (no parameters)
* ``mlp`` (ML3):        L = 1/B sum_b softplus(g_phi([pred_b, target_b]))    g: 2J -> 40 -> 40 -> 40 -> 1, ReLU
* ``structured`` (1):   L = 1/B sum_b sum_j phi_j e_bj^2,  phi_j = softplus(w_j) > 0
* ``state-dependent`` (2): L = 1/B sum_b sum_j phi_j(q_b, qd_b) e_bj^2,
                        phi(s) = softplus(h_psi(clip(s, -c, c))),  h: 2J -> 32 (ReLU) -> J

The structured and state-dependent losses start at phi = 1, i.e. at the summed-over-joints MSE
(J times ``mse``); the state-dependent network's last layer starts small so phi(s) ~ 1 everywhere.
The state is clipped to c = 3 normalised units before the network: a ReLU network extrapolates
linearly, and far outside the meta-train states an unclipped phi grows without bound and makes online
SGD diverge (measured on the pick-and-place stream). Inside the meta-train range the clip is inactive.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from fastadapt.models.mlp import apply_mlp, init_mlp

SOFTPLUS_INVERSE_OF_ONE = math.log(math.e - 1.0)


def squared_error(pred, target):
    return jnp.square(pred - target)


def mse(pred, target):
    """1/(B J) sum_b sum_j (pred_bj - target_bj)^2: the task loss, the score of every online step."""
    return jnp.mean(squared_error(pred, target))


@dataclasses.dataclass(frozen=True)
class MSELoss:
    num_joints: int
    name: str = "mse"
    learned: bool = False

    def init(self, key):
        return {}

    def apply(self, params, pred, target, state=None):
        return mse(pred, target)


@dataclasses.dataclass(frozen=True)
class MLPLoss:
    """ML3's loss network; with ``extra_inputs`` > 0 it also sees that many features of the sample
    (``state`` [B, extra_inputs], e.g. the input x of a regression): g([pred_b, target_b, state_b]).
    ``activation`` is g's; ``positive=False`` drops the softplus, L = 1/B sum_b g(.) (the authors' loss
    for the shaped sine is an ELU network with a linear output). ``weights`` and ``bias`` set g's
    initialisation (:func:`fastadapt.models.mlp.init_mlp`): ours is LeCun-normal with biases; the ML3
    authors' sine loss is 2 -> 50 -> 50 -> 1 without biases, Xavier-uniform (``weights='xavier'``,
    ``bias=False``)."""

    num_joints: int
    hidden: tuple[int, ...] = (40, 40, 40)
    name: str = "mlp"
    learned: bool = True
    extra_inputs: int = 0
    activation: str = "relu"
    positive: bool = True
    weights: str = "lecun"
    bias: bool = True

    def init(self, key):
        sizes = (2 * self.num_joints + self.extra_inputs, *self.hidden, 1)
        return {"net": init_mlp(key, sizes, init=self.weights, bias=self.bias)}

    def apply(self, params, pred, target, state=None):
        inputs = [pred, target] + ([state] if self.extra_inputs else [])
        logits = apply_mlp(params["net"], jnp.concatenate(inputs, axis=-1), self.activation)
        return jnp.mean(jax.nn.softplus(logits) if self.positive else logits)


@dataclasses.dataclass(frozen=True)
class StructuredLoss:
    num_joints: int
    name: str = "structured"
    learned: bool = True

    def init(self, key):
        return {"w": jnp.full((self.num_joints,), SOFTPLUS_INVERSE_OF_ONE)}

    def weights(self, params):
        return jax.nn.softplus(params["w"])

    def apply(self, params, pred, target, state=None):
        return jnp.mean(jnp.sum(self.weights(params) * squared_error(pred, target), axis=-1))


@dataclasses.dataclass(frozen=True)
class StateDependentLoss:
    num_joints: int
    hidden: int = 32
    state_clip: float = 3.0
    name: str = "state-dependent"
    learned: bool = True

    def init(self, key):
        net = init_mlp(key, (2 * self.num_joints, self.hidden, self.num_joints), last_scale=0.1)
        net[-1]["b"] = jnp.full((self.num_joints,), SOFTPLUS_INVERSE_OF_ONE)
        return {"net": net}

    def weights(self, params, state):
        """phi(q, qd) > 0, shape [B, J]."""
        state = jnp.clip(state, -self.state_clip, self.state_clip)
        return jax.nn.softplus(apply_mlp(params["net"], state, "relu"))

    def apply(self, params, pred, target, state):
        return jnp.mean(jnp.sum(self.weights(params, state) * squared_error(pred, target), axis=-1))


LOSSES = {"mse": MSELoss, "mlp": MLPLoss, "structured": StructuredLoss, "state-dependent": StateDependentLoss}
LEARNED_LOSSES = ("mlp", "structured", "state-dependent")


@dataclasses.dataclass(frozen=True)
class LearnedRateLoss:
    """A loss with a learned, log-parameterised step size r (one scalar, trained with phi):

        L_r(phi; pred, target, state) = exp(r) L(phi; pred, target, state),

    so SGD at rate alpha on L_r is SGD at alpha exp(r) on L: the inner rate is learned jointly with the
    loss, multiplicatively (r = 0 at init: the rate starts at alpha), and can move by orders of
    magnitude in a few meta-steps where a loss's own weights move additively. The parameters are the
    inner loss's with one more entry, ``log_rate``; with ``mse`` inside, this meta-learns SGD's rate.

    With ``layers`` > 0 each of the model's layers also gets a learned log rate r_l (``log_layer_rates``,
    0 at init), which no loss value can express: every step on this loss scales layer l's gradient by
    exp(r_l) (:func:`scale_gradients`), so SGD at alpha steps layer l at alpha exp(r + r_l). The model
    must be a list of ``layers`` layers (the inverse-dynamics MLP)."""

    inner: object
    layers: int = 0

    learned = True

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def num_joints(self) -> int:
        return self.inner.num_joints

    def init(self, key):
        params = {**self.inner.init(key), "log_rate": jnp.zeros(())}
        return {**params, "log_layer_rates": jnp.zeros((self.layers,))} if self.layers else params

    def rate_scale(self, params):
        return jnp.exp(params["log_rate"])

    def apply(self, params, pred, target, state=None):
        inner = {k: v for k, v in params.items() if k not in ("log_rate", "log_layer_rates")}
        return self.rate_scale(params) * self.inner.apply(inner, pred, target, state)


def scale_gradients(loss, loss_params, grads):
    """The gradient a step on ``loss`` takes: ``grads`` as they are, or, for a :class:`LearnedRateLoss`
    with per-layer rates, layer l's gradient times exp(r_l)."""
    layers = getattr(loss, "layers", 0)
    if not layers:
        return grads
    if not isinstance(grads, (list, tuple)) or len(grads) != layers:
        raise ValueError(f"per-layer learned rates need a model of {layers} layers (a list), got "
                         f"{type(grads).__name__} of {len(grads) if isinstance(grads, (list, tuple)) else 'no'} layers")
    scales = jnp.exp(loss_params["log_layer_rates"])
    return [jax.tree.map(lambda g, s=scales[l]: s * g, layer) for l, layer in enumerate(grads)]


def make_loss(name: str, num_joints: int, learned_rate: bool = False, layers: int = 0):
    """The loss called ``name``; with ``learned_rate`` (or ``layers`` > 0: per-layer rates as well),
    wrapped in :class:`LearnedRateLoss`."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss '{name}', expected one of {sorted(LOSSES)}")
    loss = LOSSES[name](num_joints)
    return LearnedRateLoss(loss, layers) if (learned_rate or layers) else loss
