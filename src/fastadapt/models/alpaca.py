"""ALPaCA (Harrison, Sharma & Pavone 2018): a network whose last layer is a Bayesian linear model,
updated in closed form, with the features, the prior and the noise meta-learned.

Features phi(x) = [h(x), 1] [D] (h the last hidden layer of an :class:`InverseDynamicsMLP`, D =
hidden[-1] + 1). The last layer K [D, J] has the matrix-normal prior K ~ MN(K0, Lambda0^-1, Sigma):
column j is N(K0_j, sigma_j^2 Lambda0^-1), and y = K^T phi(x) + eps, eps ~ N(0, Sigma), Sigma = diag(sigma^2).
After data (Phi [n, D], Y [n, J]) the posterior is MN(K_n, Lambda_n^-1, Sigma) with

    Lambda_n = Lambda0 + Phi^T Phi,   Q_n = Lambda0 K0 + Phi^T Y,   K_n = Lambda_n^-1 Q_n,

and the posterior predictive of a new point is y ~ N(K_n^T phi, s Sigma), s = 1 + phi^T Lambda_n^-1 phi.
The posterior is kept in its natural form (Lambda, Q): a batch adds Phi^T Phi and Phi^T Y, and the
predictive needs one Cholesky factor of Lambda per batch (D = 65: cheap).

Online, with a forgetting factor lambda in (0, 1] (beyond ALPaCA, as RLS does), the data forget and the
prior does not:

    Lambda_t = Lambda0 + sum_k lambda^(t-k) Phi_k^T Phi_k,   Q_t = Lambda0 K0 + sum_k lambda^(t-k) Phi_k^T Y_k,

i.e. Lambda_t = lambda Lambda_{t-1} + (1 - lambda) Lambda0 + Phi_t^T Phi_t (and Q alike): Lambda_t >= Lambda0
always, so the head never winds up at rest (RLS needs a trace bound for that). lambda = 1 is ALPaCA's
exact posterior; :meth:`ALPaCA.stream_scores` then runs it in covariance form instead, P = Lambda^-1 and
K, updated by the block Woodbury identity (S = I + Phi P Phi^T [B, B], G = P Phi^T S^-1, K <- K + G (Y -
Phi K), P <- P - G Phi P): one B x B solve per batch instead of a D x D Cholesky factor, half the time of
a meta-gradient (the same numbers to float rounding, tested).

Meta-learned (``init``): the network's layers (its last layer is the prior mean K0, so the prior
predictive mean is the network's output), a factor L of the prior precision Lambda0 = L L^T + eps I
(lower triangular, as ALPaCA parametrises it) and log sigma^2 per joint. The meta-objective
(:func:`fastadapt.meta.algorithm.posterior_epoch`) is the negative log posterior predictive of each
batch of a meta-train stream given the batches before it (:meth:`ALPaCA.stream_scores`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fastadapt.models.mlp import InverseDynamicsMLP

JITTER = 1e-6  # eps of Lambda0 = L L^T + eps I: positive definite whatever L is


class HeadPosterior(NamedTuple):
    """The head's posterior in natural form: precision Lambda [D, D] and Q = Lambda K [D, J]."""

    precision: jnp.ndarray
    moment: jnp.ndarray


def posterior_update(posterior: HeadPosterior, prior: HeadPosterior, phi, targets, forgetting=1.0) -> HeadPosterior:
    """Lambda <- lambda Lambda + (1 - lambda) Lambda0 + Phi^T Phi, Q <- lambda Q + (1 - lambda) Q0 + Phi^T Y
    (module docstring); phi [B, D], targets [B, J]."""
    keep = lambda now, base, data: forgetting * now + (1.0 - forgetting) * base + data
    return HeadPosterior(keep(posterior.precision, prior.precision, phi.T @ phi),
                         keep(posterior.moment, prior.moment, phi.T @ targets))


def posterior_predictive(posterior: HeadPosterior, phi):
    """The predictive mean K^T phi [B, J] and scale s = 1 + phi^T Lambda^-1 phi [B] (variance s sigma_j^2),
    K = Lambda^-1 Q, from one Cholesky factor of Lambda."""
    factor = jnp.linalg.cholesky(posterior.precision)
    weights = jax.scipy.linalg.cho_solve((factor, True), posterior.moment)
    whitened = jax.scipy.linalg.solve_triangular(factor, phi.T, lower=True)  # C^-1 phi^T [D, B]
    return phi @ weights, 1.0 + jnp.sum(jnp.square(whitened), axis=0)


def gaussian_nll(targets, mean, variance):
    """Mean over points and outputs of -log N(y; mean, variance)."""
    return 0.5 * jnp.mean(jnp.log(2 * math.pi * variance) + jnp.square(targets - mean) / variance)


@dataclasses.dataclass(frozen=True)
class ALPaCA:
    """The meta-learned Bayesian last layer on an inverse-dynamics network (module docstring). A learner of
    the one meta-trainer with ``update='posterior'`` (it adapts in closed form, ``closed_form``)."""

    model: InverseDynamicsMLP
    prior_precision: float = 1.0  # Lambda0 at initialisation: prior_precision * I
    noise: float = 0.1  # sigma_j^2 at initialisation (normalised torque units)

    name = "alpaca"
    learned = True
    closed_form = True  # adapts by posterior updates, not gradient steps on a loss

    @property
    def dim(self) -> int:
        return self.model.hidden[-1] + 1

    def init(self, key) -> dict:
        layers = self.model.init(key)
        return {"layers": layers, "prior_factor": math.sqrt(self.prior_precision) * jnp.eye(self.dim),
                "log_noise": jnp.full(self.model.num_joints, math.log(self.noise))}

    def features(self, params, x):
        """phi(x) = [h(x), 1] [..., D]."""
        h = self.model.features(params["layers"], x)
        return jnp.concatenate([h, jnp.ones(h.shape[:-1] + (1,), h.dtype)], -1)

    def prior(self, params) -> HeadPosterior:
        """Lambda0 = L L^T + eps I and Q0 = Lambda0 K0, K0 = the network's last layer [W; b]."""
        factor = jnp.tril(params["prior_factor"])
        precision = factor @ factor.T + JITTER * jnp.eye(self.dim, dtype=factor.dtype)
        last = params["layers"][-1]
        mean = jnp.concatenate([last["w"], last["b"][None]], 0)
        return HeadPosterior(precision, precision @ mean)

    def noise_variance(self, params):
        return jnp.exp(params["log_noise"])

    def update(self, params, prior: HeadPosterior, posterior: HeadPosterior, x, y, forgetting=1.0) -> HeadPosterior:
        """The posterior after the batch (x [B, in], y [B, J]); ``prior`` is ``self.prior(params)``."""
        return posterior_update(posterior, prior, self.features(params, x), y, forgetting)

    def network(self, params, posterior: HeadPosterior) -> list:
        """The network with its last layer set to the posterior mean K = Lambda^-1 Q: what it predicts."""
        weights = jnp.linalg.solve(posterior.precision, posterior.moment)
        return params["layers"][:-1] + [{"w": weights[:-1], "b": weights[-1]}]

    def stream_scores(self, params, x, y, forgetting=1.0):
        """Play batches x [n, B, in], y [n, B, J] from the prior: for each batch, before the update with it,
        (negative log posterior predictive [n], squared error of the predictive mean per joint [n, J]).
        ``forgetting`` (a number, not traced): 1 runs the covariance form (module docstring)."""
        if forgetting == 1:
            return self._exact_stream_scores(params, x, y)
        prior = self.prior(params)
        variance = self.noise_variance(params)

        def step(posterior, batch):
            xb, yb = batch
            phi = self.features(params, xb)
            mean, scale = posterior_predictive(posterior, phi)
            scores = (gaussian_nll(yb, mean, scale[:, None] * variance), jnp.mean(jnp.square(mean - yb), axis=0))
            return posterior_update(posterior, prior, phi, yb, forgetting), scores

        return jax.lax.scan(step, prior, (x, y))[1]


    def _exact_stream_scores(self, params, x, y):
        """:meth:`stream_scores` without forgetting, in covariance form (P, K)."""
        prior = self.prior(params)
        covariance = jnp.linalg.inv(prior.precision)
        variance = self.noise_variance(params)

        def step(carry, batch):
            covariance, weights = carry
            xb, yb = batch
            phi = self.features(params, xb)
            mean = phi @ weights
            p_phi = covariance @ phi.T  # [D, B]
            s = jnp.eye(phi.shape[0], dtype=phi.dtype) + phi @ p_phi
            gain = jnp.linalg.solve(s, p_phi.T).T  # G = P Phi^T S^-1 (S symmetric)
            scores = (gaussian_nll(yb, mean, jnp.diagonal(s)[:, None] * variance), jnp.mean(jnp.square(mean - yb), axis=0))
            return (covariance - gain @ p_phi.T, weights + gain @ (yb - mean)), scores

        return jax.lax.scan(step, (covariance, covariance @ prior.moment), (x, y))[1]
