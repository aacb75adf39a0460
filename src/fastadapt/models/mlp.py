"""Multi-layer perceptrons as plain pytrees, and the inverse-dynamics model built from one.

Parameters are a list of layers ``{"w": [n_in, n_out], "b": [n_out]}``; ``apply`` is a pure function.
The control-loop Adapter evaluates these models on the host with numpy through
:mod:`fastadapt.adapt.host_forward` (normaliser folded in, per-joint networks stacked).
We use plain pytrees rather than Equinox or Flax: the models are three-line functions, plain dicts of
arrays vmap over seeds, serialise to .npz and differentiate twice (meta-gradients) with nothing in the
way, and the online update's dispatch cost stays minimal.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import jax
import jax.numpy as jnp

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "softplus": jax.nn.softplus, "elu": jax.nn.elu,
               "linear": lambda x: x}


INITS = ("lecun", "xavier", "torch")  # weight initialisations of init_mlp


def init_mlp(key, sizes: Sequence[int], last_scale: float = 1.0, init: str = "lecun", bias: bool = True) -> list[dict]:
    """Layers {"w" [n_in, n_out], "b" [n_out]}: weights LeCun-normal (std 1/sqrt(n_in)) or, with
    ``init='xavier'``, Xavier-uniform (U[-a, a], a = sqrt(6 / (n_in + n_out)), PyTorch's
    ``xavier_uniform_`` with gain 1); zero biases, or none with ``bias=False`` (then no "b" entry). With
    ``init='torch'``, PyTorch's ``nn.Linear`` default: weights and biases U[-1/sqrt(n_in), 1/sqrt(n_in)].
    The last layer's weights are multiplied by ``last_scale``."""
    if init not in INITS:
        raise ValueError(f"unknown initialisation '{init}', expected one of {', '.join(INITS)}")
    keys = jax.random.split(key, len(sizes) - 1)
    layers = []
    for i, (k, n_in, n_out) in enumerate(zip(keys, sizes[:-1], sizes[1:])):
        scale = last_scale if i == len(sizes) - 2 else 1.0
        b = jnp.zeros(n_out)
        if init == "lecun":
            w = scale / jnp.sqrt(n_in) * jax.random.normal(k, (n_in, n_out))
        elif init == "xavier":
            limit = math.sqrt(6.0 / (n_in + n_out))
            w = scale * jax.random.uniform(k, (n_in, n_out), minval=-limit, maxval=limit)
        else:
            w_key, b_key = jax.random.split(k)
            limit = 1.0 / math.sqrt(n_in)
            w = scale * jax.random.uniform(w_key, (n_in, n_out), minval=-limit, maxval=limit)
            b = jax.random.uniform(b_key, (n_out,), minval=-limit, maxval=limit)
        layers.append({"w": w, "b": b} if bias else {"w": w})
    return layers


def _affine(x, layer: dict):
    return x @ layer["w"] + layer["b"] if "b" in layer else x @ layer["w"]


def hidden_mlp(layers: list[dict], x, activation: str = "relu"):
    """The last hidden layer: h_0 = x, h_{i+1} = act(h_i W_i + b_i) through every layer but the last."""
    act = ACTIVATIONS[activation]
    for layer in layers[:-1]:
        x = act(_affine(x, layer))
    return x


def apply_mlp(layers: list[dict], x, activation: str = "relu"):
    """h_0 = x, h_{i+1} = act(h_i W_i + b_i) for hidden layers; the last layer is linear (a layer without
    "b" has no bias)."""
    return _affine(hidden_mlp(layers, x, activation), layers[-1])


def check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{activation}', expected one of {sorted(ACTIVATIONS)}")


@dataclasses.dataclass(frozen=True)
class InverseDynamicsMLP:
    """f_theta(q, qd, qdd) -> tau in normalised units: inputs [..., 3J], outputs [..., J]."""

    num_joints: int
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"

    def __post_init__(self):
        check_activation(self.activation)
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))

    @property
    def sizes(self) -> tuple[int, ...]:
        return (3 * self.num_joints, *self.hidden, self.num_joints)

    def init(self, key) -> list[dict]:
        return init_mlp(key, self.sizes)

    def apply(self, params, x):
        return apply_mlp(params, x, self.activation)

    def features(self, params, x):
        """The last hidden layer h(x) [..., hidden[-1]]: apply(params, x) = h(x) W_last + b_last."""
        return hidden_mlp(params, x, self.activation)


@dataclasses.dataclass(frozen=True)
class PerJointMLP:
    """One network per joint (the memory paper's inverse-dynamics model): tau_j = f_j(q, qd, qdd), each
    f_j: 3J -> hidden -> 1 with ReLU. Parameters are a list (one entry per joint) of layer lists, so a
    'layer' parameter group is one layer of one joint's network."""

    num_joints: int
    hidden: tuple[int, ...] = (100, 50, 10)
    activation: str = "relu"

    def __post_init__(self):
        check_activation(self.activation)
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))

    @property
    def sizes(self) -> tuple[int, ...]:
        return (3 * self.num_joints, *self.hidden, 1)

    def init(self, key) -> list[list[dict]]:
        return [init_mlp(k, self.sizes) for k in jax.random.split(key, self.num_joints)]

    def apply(self, params, x):
        return jnp.concatenate([apply_mlp(net, x, self.activation) for net in params], axis=-1)
