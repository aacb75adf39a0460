"""The memory paper's digit classifier: conv (ReLU) -> 2x2 max-pool -> dense (ReLU) -> dense logits.

Images [N, H, W, 1]; parameters {"conv": {"w": [3, 3, 1, C], "b": [C]}, "dense": {...}, "out": {...}}, so
each layer is one parameter group of a learning-rate memory. The paper's dropout is left out (the
tasks are trained full-batch and deterministically here).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class DigitNet:
    image_size: int = 8
    channels: int = 8
    hidden: int = 32
    classes: int = 2

    def init(self, key):
        k1, k2, k3 = jax.random.split(key, 3)
        pooled = (self.image_size // 2) ** 2 * self.channels
        normal = lambda k, shape, fan_in: jax.random.normal(k, shape) * jnp.sqrt(2.0 / fan_in)
        return {
            "conv": {"w": normal(k1, (3, 3, 1, self.channels), 9), "b": jnp.zeros(self.channels)},
            "dense": {"w": normal(k2, (pooled, self.hidden), pooled), "b": jnp.zeros(self.hidden)},
            "out": {"w": normal(k3, (self.hidden, self.classes), self.hidden) * 0.1, "b": jnp.zeros(self.classes)},
        }

    def apply(self, params, images):
        h = jax.lax.conv_general_dilated(images, params["conv"]["w"], (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        h = jax.nn.relu(h + params["conv"]["b"])
        h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        h = jax.nn.relu(h.reshape(h.shape[0], -1) @ params["dense"]["w"] + params["dense"]["b"])
        return h @ params["out"]["w"] + params["out"]["b"]


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy."""
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1))
