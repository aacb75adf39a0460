"""The binary classification task loss, in the meta-loss interface (``init``, ``apply``; no parameters).

With logits z = f_theta(x) [B, 1] and labels y in {0, 1} [B, 1]:

    L = 1/B sum_b [softplus(z_b) - y_b z_b] = -1/B sum_b [y_b log s(z_b) + (1 - y_b) log(1 - s(z_b))],

s the logistic sigmoid: the binary cross-entropy, written in the stable form.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


def binary_cross_entropy(logits, labels):
    return jnp.mean(jax.nn.softplus(logits) - labels * logits)


@dataclasses.dataclass(frozen=True)
class BinaryCrossEntropyLoss:
    name: str = "cross-entropy"
    learned: bool = False

    def init(self, key):
        return {}

    def apply(self, params, pred, target, extra=None):
        return binary_cross_entropy(pred, target)
