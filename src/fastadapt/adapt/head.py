"""The Adapter's Bayesian head (``Adapter(..., head=BayesianHead(...))``): the last layer of an
:class:`~fastadapt.models.mlp.InverseDynamicsMLP` updated in closed form, with a forgetting factor, on the
features of the layers below it (issue 27's adapter).

The last layer K [D, J] on phi(x) = [h(x), 1] (D = hidden[-1] + 1, h the last hidden layer, all in the
normaliser's units) has the prior MN(K0, Lambda0^-1, Sigma); K0 is the starting network's last layer, so
the prior prediction is the network's own. Each batch (Phi [B, D], Y [B, J]) updates the posterior in
natural form, forgetting the data and never the prior (:func:`fastadapt.models.alpaca.posterior_update`):

    Lambda <- lambda Lambda + (1 - lambda) Lambda0 + Phi^T Phi,   Q <- lambda Q + (1 - lambda) Lambda0 K0 + Phi^T Y,
    K = Lambda^-1 Q   (one Cholesky factor of Lambda [D, D]: D = 65 for the demo's network)

and the network's last layer is set to K, so that the host forward pass, and with it the tick, is the
plain network's. Lambda >= Lambda0 always, so a robot at rest cannot wind the head up. The posterior
mean is the weighted ridge regression min_K sum_k lambda^(t-k) ||Y_k - Phi_k K||^2 + ||K - K0||^2_Lambda0,
ALPaCA's posterior mean with forgetting (tested against the closed form and against ALPaCA's float64
stream); the pipeline's RLS head anchor differs only in forgetting its prior too (lambda^t reg).

Where the prior comes from: an ALPaCA file (``fastadapt meta-train loss=alpaca update=posterior``) gives
meta-learned features, K0 and Lambda0 = L L^T + eps I (:meth:`Adapter.from_loss_file`); any other network
gives its own features and K0 with Lambda0 = ``prior_precision`` I, the pretrained model's head anchor.

``adapt_body``: the layers below also take the Adapter's optimizer step on its loss (the last layer's
gradient masked), before the head update on the new features: the learned loss adapting the body while
the head tracks fast changes. Measured, it does not help (``benchmarks/head_body_ablation.py``, the
Schunk stream): on a pretrained network's features online MSE 0.0884 with the body fixed, 0.0885 / 0.0909
/ 0.1321 at SGD rates 1e-4 / 1e-3 / 1e-2 on MSE; on ALPaCA's 0.0973 fixed, 0.0972 / 0.1119 / 0.1408,
because a body step moves the features under the posterior, whose precision then describes features that
are gone. So it is off by default (docs/RESULTS.md, "ALPaCA and the Adapter's Bayesian head").

Float32 throughout (the step's dtype): the precision is bounded below by Lambda0 and above by
B |phi|^2 / (1 - lambda), and the head's online errors stay within 1e-3 (relative) of the float64 ALPaCA
posterior's over a 30-batch stream (tested). A factor that fails (non-finite) makes the whole update a
rejected one: the last good parameters and posterior are kept.

The tick is the plain network's (the host forward pass on the folded parameters); the update costs one
65 x 65 Cholesky factor more. ``benchmarks/control_loop.py --only "mse, sgd" --only "bayesian head"``
measured them side by side (docs/RESULTS.md).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fastadapt.models.alpaca import HeadPosterior, posterior_update
from fastadapt.models.mlp import InverseDynamicsMLP


@dataclasses.dataclass(frozen=True)
class BayesianHead:
    """A closed-form Bayesian last layer with forgetting (module docstring). ``prior_precision``: Lambda0,
    a number (times the identity) or a [D, D] symmetric positive definite matrix (an ALPaCA file's)."""

    forgetting: float = 0.998
    prior_precision: object = 1.0
    adapt_body: bool = False

    def __post_init__(self):
        forgetting = float(self.forgetting) if isinstance(self.forgetting, (int, float, np.floating)) else float("nan")
        if isinstance(self.forgetting, bool) or not 0.0 < forgetting <= 1.0:
            raise ValueError(f"head forgetting must be a number in (0, 1], got {self.forgetting!r}")
        precision = np.asarray(self.prior_precision, np.float64)
        if precision.ndim == 0:
            if not (np.isfinite(precision) and precision > 0):
                raise ValueError(f"head prior_precision must be a finite number > 0 or a positive definite matrix, "
                                 f"got {self.prior_precision!r}")
        elif precision.ndim != 2 or precision.shape[0] != precision.shape[1] or not np.all(np.isfinite(precision)) \
                or not np.allclose(precision, precision.T) or np.linalg.eigvalsh(precision).min() <= 0:
            raise ValueError(f"head prior_precision must be a finite number > 0 or a symmetric positive definite "
                             f"[D, D] matrix, got shape {precision.shape}")

    def check_model(self, model) -> int:
        """The head's feature dimension D for ``model``; refuses a model without a last hidden layer."""
        if not isinstance(model, InverseDynamicsMLP):
            raise ValueError(f"a Bayesian head needs an InverseDynamicsMLP (a last hidden layer to sit on), "
                             f"not {type(model).__name__}")
        dim = model.hidden[-1] + 1
        shape = np.shape(self.prior_precision)
        if shape and shape != (dim, dim):
            raise ValueError(f"head prior_precision is {shape[0]}x{shape[1]}, the model's last layer needs {dim}x{dim}")
        return dim

    def prior(self, model, params) -> HeadPosterior:
        """Lambda0 and Q0 = Lambda0 K0, K0 the last layer [W; b] of ``params`` (float32 numpy)."""
        dim = self.check_model(model)
        precision = np.asarray(self.prior_precision, np.float32)
        precision = precision * np.eye(dim, dtype=np.float32) if precision.ndim == 0 else precision
        last = params[-1]
        mean = np.concatenate([np.asarray(last["w"], np.float32), np.asarray(last["b"], np.float32)[None]], 0)
        return HeadPosterior(precision, precision @ mean)


def features(model: InverseDynamicsMLP, layers, x):
    """phi(x) = [h(x), 1] [B, D] of the network ``layers`` (normalised inputs x [B, in])."""
    h = model.features(layers, x)
    return jnp.concatenate([h, jnp.ones(h.shape[:-1] + (1,), h.dtype)], -1)


def head_update(model: InverseDynamicsMLP, layers, prior: HeadPosterior, posterior: HeadPosterior, x, y,
                forgetting: float):
    """(the posterior after the batch x [B, in], y [B, J], the network with its last layer := K = Lambda^-1 Q)."""
    posterior = posterior_update(posterior, prior, features(model, layers, x), y, forgetting)
    factor = jnp.linalg.cholesky(posterior.precision)
    weights = jax.scipy.linalg.cho_solve((factor, True), posterior.moment)
    return posterior, list(layers[:-1]) + [{"w": weights[:-1], "b": weights[-1]}]


def last_layer_mask(params) -> list:
    """1 on every parameter but the last layer's (whose gradient the body step leaves out)."""
    return [jax.tree.map(jnp.ones_like, layer) for layer in params[:-1]] + [jax.tree.map(jnp.zeros_like, params[-1])]
