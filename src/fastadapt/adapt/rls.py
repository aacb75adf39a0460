"""Recursive least squares with a forgetting factor, on random Fourier features: the classical online
learner a roboticist would reach for (incremental sparse-spectrum GP regression, Gijsberts & Metta
2013), the first anchor of issue 27. Pure functions on an explicit state.

Features (Rahimi & Recht): phi(x) = sqrt(2 / D) cos(x Omega / l + b), Omega ~ N(0, 1) [in, D],
b ~ U(0, 2 pi) [D], so that phi(x) . phi(x') approximates the RBF kernel exp(-||x - x'||^2 / (2 l^2)).
``features=0`` gives linear RLS on [x, 1].

RLS minimises, after n batches (Phi_k [B, D], Y_k [B, out]),

    J(W) = sum_k lambda^(n - k) ||Y_k - Phi_k W||^2 + lambda^n reg ||W||^2,

whose minimiser is W_n = A_n^-1 c_n with A_n = sum_k lambda^(n-k) Phi_k^T Phi_k + lambda^n reg I and
c_n = sum_k lambda^(n-k) Phi_k^T Y_k. The state holds W and P = A^-1, updated per batch exactly (the
block form of the Sherman-Morrison-Woodbury identity):

    S = lambda I_B + Phi P Phi^T,   K = P Phi^T S^-1,   W <- W + K (Y - Phi W),   P <- (P - K Phi P) / lambda,

with P symmetrised after each update, which keeps it positive definite in float64 over long streams.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class FourierFeatures:
    """phi(x) = sqrt(2 / D) cos(x Omega / length_scale + b) (module docstring); no features: [x, 1]."""

    omega: jnp.ndarray  # [in, D]
    phase: jnp.ndarray  # [D]
    length_scale: float = 1.0

    @property
    def dim(self) -> int:
        return self.omega.shape[1] if self.omega.shape[1] else self.omega.shape[0] + 1

    def __call__(self, x):
        if self.omega.shape[1] == 0:
            return jnp.concatenate([x, jnp.ones(x.shape[:-1] + (1,), x.dtype)], -1)
        scale = jnp.sqrt(2.0 / self.omega.shape[1])
        return scale * jnp.cos(x @ self.omega.astype(x.dtype) / self.length_scale + self.phase.astype(x.dtype))


jax.tree_util.register_dataclass(FourierFeatures, data_fields=["omega", "phase"], meta_fields=["length_scale"])


def fourier_features(key, in_dim: int, features: int, length_scale: float) -> FourierFeatures:
    """Random Fourier features of an RBF kernel of ``length_scale`` (``features=0``: linear)."""
    if features < 0:
        raise ValueError(f"features must be >= 0, got {features}")
    if not length_scale > 0:
        raise ValueError(f"length_scale must be positive, got {length_scale}")
    omega_key, phase_key = jax.random.split(key)
    omega = jax.random.normal(omega_key, (in_dim, features))
    phase = jax.random.uniform(phase_key, (features,), minval=0.0, maxval=2 * jnp.pi)
    return FourierFeatures(omega, phase, float(length_scale))


@dataclasses.dataclass(frozen=True)
class RLSState:
    weights: jnp.ndarray  # W [D, out]
    inverse: jnp.ndarray  # P = A^-1 [D, D]


jax.tree_util.register_dataclass(RLSState, data_fields=["weights", "inverse"], meta_fields=[])


def rls_init(dim: int, outputs: int, reg: float, dtype=jnp.float64) -> RLSState:
    """W = 0, P = I / reg: the minimiser of reg ||W||^2 before any data."""
    if not reg > 0:
        raise ValueError(f"reg must be positive, got {reg}")
    return RLSState(jnp.zeros((dim, outputs), dtype), jnp.eye(dim, dtype=dtype) / reg)


def rls_update(state: RLSState, phi, targets, forgetting: float = 1.0) -> RLSState:
    """One exact block update with the batch (phi [B, D], targets [B, out]) and forgetting factor
    lambda in (0, 1] (module docstring)."""
    p, w = state.inverse, state.weights
    phi, targets = phi.astype(p.dtype), targets.astype(p.dtype)
    p_phi = p @ phi.T  # [D, B]
    s = forgetting * jnp.eye(phi.shape[0], dtype=p.dtype) + phi @ p_phi
    gain = jnp.linalg.solve(s, p_phi.T).T  # K = P Phi^T S^-1 (S symmetric)
    w = w + gain @ (targets - phi @ w)
    p = (p - gain @ p_phi.T) / forgetting
    return RLSState(w, 0.5 * (p + p.T))


def rls_predict(state: RLSState, phi):
    """Phi W."""
    return phi.astype(state.weights.dtype) @ state.weights
