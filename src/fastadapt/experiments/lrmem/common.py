"""Pieces the memory paper's inverse-dynamics experiments share: data in raw torque units, the per-joint
networks, the summed per-joint MSE, and GD / MetaGD as optax transforms."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

from fastadapt.data.batches import Normalizer
from fastadapt.data.io import load, save
from fastadapt.losses import make_loss
from fastadapt.optim import MemoryConfig, adam_with_memory, metagd

# the paper's Table I and Fig. 4/5 show the joint with large, payload-dependent torques: on the iiwa
# that is A2 (index 1, the shoulder); A1 (index 0) turns about the vertical axis and carries almost none
REPORT_JOINT = 1


def raw_torque_normalizer(dataset) -> Normalizer:
    """Inputs standardised with ``dataset``'s statistics; torques left in Nm (the paper's units)."""
    fitted = Normalizer.fit(dataset)
    joints = fitted.num_joints
    return Normalizer(fitted.x_mean, fitted.x_std, jnp.zeros(joints), jnp.ones(joints))


def summed_mse(joints: int):
    """L = sum_j mean_b (f_j - tau_j)^2: each joint's network trained on its own MSE (the structured
    loss with unit weights, which is exactly this)."""
    loss = make_loss("structured", joints)
    return loss, loss.init(None)


METHODS = ("GD", "MetaGD", "MetaGDMemAdam", "Adam", "Adam+memory")
MEMORY_METHODS = ("MetaGD", "MetaGDMemAdam", "Adam+memory")  # the ones whose state holds a memory


def optimizer(method: str, eta: float, memory: MemoryConfig, grad_clip: float) -> optax.GradientTransformation:
    """GD (clipped gradient, fixed rate), MetaGD, MetaGDMemAdam, Adam, or Adam with memory."""
    clip = optax.clip(grad_clip)
    if method == "GD":
        return optax.chain(clip, optax.sgd(eta))
    if method == "MetaGD":
        return metagd(memory, eta_init=eta, clip=grad_clip)
    if method == "MetaGDMemAdam":
        return metagd(memory, eta_init=eta, clip=grad_clip, memory_optimizer="adam")
    if method == "Adam":
        return optax.chain(clip, optax.adam(eta))
    if method == "Adam+memory":
        return optax.chain(clip, adam_with_memory(memory, eta_init=eta))
    raise ValueError(f"unknown method '{method}', expected one of {', '.join(METHODS)}")


def cached(path, make):
    """Load a dataset from ``path``, or make it with ``make()`` and save it there first."""
    if not path.exists():
        save(make(), path, overwrite=True)
    return load(path)


def first_window_mean(scores: np.ndarray, batches: int) -> float:
    return float(np.mean(scores[..., :batches]))
