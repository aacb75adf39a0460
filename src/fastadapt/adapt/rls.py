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

with P symmetrised after each update, which keeps it positive definite in float64 over long streams
(``benchmarks/rls_long_stream.py``: 100k updates on the Schunk logs, W within 4e-12 of the direct
solution A^-1 c).

Forgetting winds P up where the data do not excite: a robot at rest feeds the same phi for thousands of
batches, every other direction of P grows by 1/lambda per batch (e^100 after 100k batches at 0.999), and
the first batch of the next motion takes a huge step. ``max_trace`` bounds it: a batch forgets (lambda)
only while trace(P) <= max_trace, else it updates with lambda = 1, so trace(P) <= max_trace / lambda
always. Each batch is still an exact weighted least-squares step, with lambda_k in {lambda, 1}. The
online runner uses max_trace = trace(P_0) = D / reg: never more uncertain than the prior.

:func:`rls_online_scores` plays a stream of batches through it, the way every online method here is
scored (the MSE on batch k before the update with it), optionally on top of a fixed base model's
predictions (residual learning: the targets are y - f(x), the prediction f(x) + phi W).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np


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


def rls_update(state: RLSState, phi, targets, forgetting: float = 1.0, max_trace=jnp.inf) -> RLSState:
    """One exact block update with the batch (phi [B, D], targets [B, out]) and forgetting factor
    lambda in (0, 1]; lambda = 1 for this batch if trace(P) > ``max_trace`` (module docstring)."""
    p, w = state.inverse, state.weights
    phi, targets = phi.astype(p.dtype), targets.astype(p.dtype)
    forgetting = jnp.where(jnp.trace(p) > max_trace, 1.0, forgetting).astype(p.dtype)
    p_phi = p @ phi.T  # [D, B]
    s = forgetting * jnp.eye(phi.shape[0], dtype=p.dtype) + phi @ p_phi
    gain = jnp.linalg.solve(s, p_phi.T).T  # K = P Phi^T S^-1 (S symmetric)
    w = w + gain @ (targets - phi @ w)
    p = (p - gain @ p_phi.T) / forgetting
    return RLSState(w, 0.5 * (p + p.T))


def rls_predict(state: RLSState, phi):
    """Phi W."""
    return phi.astype(state.weights.dtype) @ state.weights


@dataclasses.dataclass(frozen=True)
class RLSConfig:
    """One setting of the RLS anchor (chosen on meta-train data, see :mod:`fastadapt.adapt.online`)."""

    features: int = 200  # random Fourier features D (0: linear RLS on [x, 1]); the compute budget
    # defaults: what `fastadapt run sim` chose on its meta-train data (run schunk chose length scale 8)
    length_scale: float = 4.0  # RBF length scale in normalised input units
    forgetting: float = 0.998  # lambda: a batch k steps old weighs lambda^k
    reg: float = 0.1  # prior precision of W (ridge), noise variance / prior variance

    def __post_init__(self):
        if isinstance(self.features, bool) or not isinstance(self.features, int) or self.features < 0:
            raise ValueError(f"RLS features must be an integer >= 0, got {self.features!r}")
        if not (isinstance(self.forgetting, (int, float)) and 0 < self.forgetting <= 1):
            raise ValueError(f"RLS forgetting must lie in (0, 1], got {self.forgetting!r}")
        for name in ("length_scale", "reg"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"RLS {name} must be a finite number > 0, got {value!r}")

    @property
    def label(self) -> str:
        if self.features == 0:
            return f"linear rls (forgetting {self.forgetting:g}, reg {self.reg:g})"
        return (f"rls, {self.features} random features (length scale {self.length_scale:g}, "
                f"forgetting {self.forgetting:g}, reg {self.reg:g})")


def seed_features(config: RLSConfig, in_dim: int, seeds: int, seed: int):
    """One feature draw per model seed: omega [seeds, in, D] (already divided by the length scale) and
    phase [seeds, D]."""
    draws = [fourier_features(key, in_dim, config.features, config.length_scale)
             for key in jax.random.split(jax.random.PRNGKey(seed), seeds)]
    return (jnp.stack([d.omega / d.length_scale for d in draws]), jnp.stack([d.phase for d in draws]))


@dataclasses.dataclass(frozen=True)
class LastLayerFeatures:
    """phi(x) = [h(x), 1], the last hidden layer h of a network (``model.features``): RLS on it is a
    Bayesian last layer with forgetting, and on top of the network's own prediction (``base``) its
    prior mean is the network's last layer."""

    model: object
    params: object

    @property
    def dim(self) -> int:
        return self.model.hidden[-1] + 1

    def __call__(self, x):
        params = jax.tree_util.tree_map(lambda leaf: leaf.astype(x.dtype), self.params)
        h = self.model.features(params, x)
        return jnp.concatenate([h, jnp.ones(h.shape[:-1] + (1,), x.dtype)], -1)


jax.tree_util.register_dataclass(LastLayerFeatures, data_fields=["params"], meta_fields=["model"])


def _stream_scores(features, forgetting, reg, x, y, base):
    """Squared errors per output [n, out] (mean over each batch) of RLS on ``features`` (a callable
    pytree: random Fourier features or a network's last layer) on batches x [n, B, in], y [n, B, out],
    base predictions [n, B, out]."""
    dim = features.dim
    state = rls_init(dim, y.shape[-1], 1.0, x.dtype)
    state = RLSState(state.weights, state.inverse / reg)

    def step(state, batch):
        xb, yb, fb = batch
        phi = features(xb)
        score = jnp.mean(jnp.square(fb + rls_predict(state, phi) - yb), axis=0)
        return rls_update(state, phi, yb - fb, forgetting, dim / reg), score

    return jax.lax.scan(step, state, (x, y, base))[1]


_seed_scores = jax.jit(jax.vmap(_stream_scores, in_axes=(0, None, None, None, None, 0)))


def rls_online_scores(config: RLSConfig, batches, seeds: int, seed: int = 0, base=None, per_joint: bool = False,
                      features=None):
    """Online MSE of RLS before each update on a stream (batches.x [n, B, in], batches.y [n, B, out]),
    one random feature draw per seed, in float64: [seeds, n] (``per_joint``: [seeds, n, out]). ``base``
    [seeds, n, B, out]: a fixed model's predictions, RLS then learns the residual y - base. ``features``:
    other features with a leading seed axis (a :class:`LastLayerFeatures`), instead of the random ones."""
    from jax import enable_x64

    with enable_x64():
        if features is None:
            omega, phase = seed_features(config, batches.x.shape[-1], seeds, seed)
            features = FourierFeatures(omega.astype(jnp.float64), phase.astype(jnp.float64))
        x = jnp.asarray(batches.x, jnp.float64)
        y = jnp.asarray(batches.y, jnp.float64)
        base = jnp.zeros((seeds,) + y.shape, jnp.float64) if base is None else jnp.asarray(base, jnp.float64)
        scores = _seed_scores(features, jnp.float64(config.forgetting), jnp.float64(config.reg), x, y, base)
        scores = np.asarray(scores)
        return scores if per_joint else scores.mean(-1)
