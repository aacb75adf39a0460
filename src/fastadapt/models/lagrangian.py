"""An inverse-dynamics model with the structure of the equations of motion (after Lutter et al. 2019,
Deep Lagrangian Networks), for ML3's physics prior (section 4.2.2):

    u_theta(q, qd, qdd) = M_theta(q) qdd + F_theta(q, qd),
    M_theta(q) = S (L(q) L(q)^T + eps I) S,   F_theta(q, qd) = sigma_u * h_F([sin q, cos q, qd / sigma_qd]),

L(q) lower triangular from a network h_L([sin q, cos q]) with a softplus (> 0) diagonal, so M_theta is
symmetric positive definite for every q and every theta (Cholesky parameterisation). The diagonal is
softplus(h + log(e - 1)) and h_L's last layer starts small, so at init L is near I and M_theta near diag(D):
random off-diagonal couplings would put the 7-DoF iiwa's light wrist joints (D_7 / D_1 ~ 1e-3) dozens of
torque standard deviations off, and SGD diverges from there. S = diag(sqrt(D))
with D_j the mean of M_jj over the training data, and sigma_u, sigma_qd the torque and velocity scales:
they put the networks' outputs at order one. F stands for gravity, Coriolis, centrifugal and friction
forces together (DeLaN derives the Coriolis term from dM/dq; this model learns it freely).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fastadapt.models.mlp import apply_mlp, init_mlp


UNIT_SOFTPLUS = float(np.log(np.e - 1.0))  # softplus(UNIT_SOFTPLUS) = 1


@dataclasses.dataclass(frozen=True)
class LagrangianModel:
    num_joints: int
    inertia_scale: tuple[float, ...]  # D_j
    torque_scale: tuple[float, ...]  # sigma_u
    velocity_scale: tuple[float, ...]  # sigma_qd
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    eps: float = 1e-3

    @property
    def triangle(self) -> int:
        return self.num_joints * (self.num_joints + 1) // 2

    def init(self, key):
        k1, k2 = jax.random.split(key)
        j = self.num_joints
        return {"inertia": init_mlp(k1, (2 * j, *self.hidden, self.triangle), last_scale=0.1),
                "bias": init_mlp(k2, (3 * j, *self.hidden, j), last_scale=0.1)}

    def inertia(self, theta, q):
        """M_theta(q) [..., J, J], symmetric positive definite."""
        j = self.num_joints
        raw = apply_mlp(theta["inertia"], jnp.concatenate([jnp.sin(q), jnp.cos(q)], -1), self.activation)
        rows, cols = np.tril_indices(j)
        lower = jnp.zeros(q.shape[:-1] + (j, j)).at[..., rows, cols].set(raw)
        diagonal = jax.nn.softplus(jnp.diagonal(lower, axis1=-2, axis2=-1) + UNIT_SOFTPLUS)
        lower = lower.at[..., np.arange(j), np.arange(j)].set(diagonal)
        root = jnp.sqrt(jnp.asarray(self.inertia_scale, q.dtype))
        inner = lower @ jnp.swapaxes(lower, -1, -2) + self.eps * jnp.eye(j)
        return root[:, None] * inner * root[None, :]

    def bias(self, theta, q, qd):
        """F_theta(q, qd) [..., J]."""
        features = jnp.concatenate([jnp.sin(q), jnp.cos(q), qd / jnp.asarray(self.velocity_scale)], -1)
        return jnp.asarray(self.torque_scale) * apply_mlp(theta["bias"], features, self.activation)

    def apply(self, theta, q, qd, qdd):
        """u_theta = M_theta(q) qdd + F_theta(q, qd)."""
        return jnp.einsum("...ij,...j->...i", self.inertia(theta, q), qdd) + self.bias(theta, q, qd)
