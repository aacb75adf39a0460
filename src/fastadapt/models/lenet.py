"""A LeNet-style convolutional classifier (LeCun et al., 1998) for ML3's binary digit tasks.

    conv k x k (C1 channels, SAME) -> ReLU -> 2x2 max-pool -> conv k x k (C2) -> ReLU -> 2x2 max-pool
    -> dense D1 (ReLU) -> dense D2 (ReLU) -> dense ``outputs`` (logits)

LeNet-5's sizes are C1 = 6, C2 = 16, D1 = 120, D2 = 84 with 5x5 kernels on 28x28 images (MNIST); on
scikit-learn's 8x8 digits the kernels are 3x3 (8 -> 4 -> 2 pixels after the pools). ReLU and max-pooling
replace LeNet's sigmoids and subsampling, as in today's "LeNet" of the ML3 authors' code. He-normal
weights, zero biases. Images are [N, H, W, 1]; parameters a dict of layers {"w", "b"}.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class LeNet:
    image_size: int = 8
    kernel: int = 3
    channels: tuple[int, int] = (6, 16)
    dense: tuple[int, int] = (120, 84)
    outputs: int = 1

    @property
    def flat_size(self) -> int:
        return (self.image_size // 4) ** 2 * self.channels[1]

    def init(self, key):
        keys = jax.random.split(key, 5)
        normal = lambda k, shape, fan_in: jax.random.normal(k, shape) * jnp.sqrt(2.0 / fan_in)
        k, (c1, c2), (d1, d2) = self.kernel, self.channels, self.dense
        return {
            "conv1": {"w": normal(keys[0], (k, k, 1, c1), k * k), "b": jnp.zeros(c1)},
            "conv2": {"w": normal(keys[1], (k, k, c1, c2), k * k * c1), "b": jnp.zeros(c2)},
            "dense1": {"w": normal(keys[2], (self.flat_size, d1), self.flat_size), "b": jnp.zeros(d1)},
            "dense2": {"w": normal(keys[3], (d1, d2), d1), "b": jnp.zeros(d2)},
            "out": {"w": normal(keys[4], (d2, self.outputs), d2) * 0.5, "b": jnp.zeros(self.outputs)},
        }

    def apply(self, params, images):
        h = images
        for name in ("conv1", "conv2"):
            h = jax.lax.conv_general_dilated(h, params[name]["w"], (1, 1), "SAME",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
            h = jax.nn.relu(h + params[name]["b"])
            h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        h = h.reshape(h.shape[0], -1)
        for name in ("dense1", "dense2"):
            h = jax.nn.relu(h @ params[name]["w"] + params[name]["b"])
        return h @ params["out"]["w"] + params["out"]["b"]
