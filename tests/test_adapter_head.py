"""The Adapter's Bayesian head (fastadapt.adapt.head): its last layer against the weighted ridge solution
in closed form, against ALPaCA's float64 posterior online, from an ALPaCA file, in the background, with
the body adapting, and refused where it cannot sit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import enable_x64

from fastadapt.adapt.adapter import Adapter
from fastadapt.adapt.head import BayesianHead
from fastadapt.data.batches import Normalizer
from fastadapt.models.alpaca import ALPaCA
from fastadapt.models.mlp import InverseDynamicsMLP, PerJointMLP
from fastadapt.tasks.inverse_dynamics import InverseDynamicsConfig, save_loss

J = 3
BATCH = 5


@pytest.fixture
def parts():
    model = InverseDynamicsMLP(J, hidden=(8,))
    norm = Normalizer(jnp.full(3 * J, 0.1), jnp.full(3 * J, 2.0), jnp.full(J, -1.0), jnp.full(J, 3.0))
    return model, norm, model.init(jax.random.PRNGKey(0))


def _stream(batches, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batches * BATCH, 3 * J)).astype(np.float32)
    tau = (np.sin(x[:, :J]) * 4 + x[:, J:2 * J] + rng.normal(scale=0.1, size=(batches * BATCH, J))).astype(np.float32)
    return x, tau


def _feed(adapter, x, tau):
    for row, target in zip(x, tau):
        adapter.observe(row[:J], row[J:2 * J], row[2 * J:], target)


def _features(model, norm, params, x):
    h = np.asarray(model.features(params, norm.inputs(jnp.asarray(x))), np.float64)
    return np.concatenate([h, np.ones((len(h), 1))], 1)


def _last_layer(params):
    return np.concatenate([np.asarray(params[-1]["w"]), np.asarray(params[-1]["b"])[None]], 0)


def test_the_head_is_the_weighted_ridge_solution(parts):
    """After t batches, K = (Lambda0 + sum_k lambda^(t-k) Phi_k^T Phi_k)^-1 (Lambda0 K0 + sum_k lambda^(t-k)
    Phi_k^T Y_k) in float64, the body untouched; the prediction is the network with that last layer."""
    model, norm, params = parts
    forgetting, reg, batches = 0.9, 2.0, 12
    adapter = Adapter(model, norm, params, head=BayesianHead(forgetting, reg), batch_size=BATCH)
    x, tau = _stream(batches)
    _feed(adapter, x, tau)
    phi = _features(model, norm, params, x).reshape(batches, BATCH, -1)
    y = np.asarray(norm.targets(jnp.asarray(tau)), np.float64).reshape(batches, BATCH, J)
    prior = reg * np.eye(phi.shape[-1])
    weights = forgetting ** np.arange(batches)[::-1]
    precision = prior + np.einsum("k,kbd,kbe->de", weights, phi, phi)
    moment = prior @ _last_layer(params) + np.einsum("k,kbd,kbj->dj", weights, phi, y)
    expected = np.linalg.solve(precision, moment)
    np.testing.assert_allclose(_last_layer(adapter.params), expected, rtol=2e-4, atol=2e-5)
    for a, b in zip(jax.tree.leaves(adapter.params[:-1]), jax.tree.leaves(params[:-1])):
        np.testing.assert_array_equal(a, b)
    assert adapter.rejected_updates == 0
    layers = adapter.params
    np.testing.assert_allclose(adapter.predict(x[0, :J], x[0, J:2 * J], x[0, 2 * J:]),
                               norm.torques(model.apply(layers, norm.inputs(jnp.asarray(x[0])))), rtol=1e-5, atol=1e-5)


def test_the_head_predicts_what_alpacas_float64_posterior_does_and_loads_from_its_file(parts, tmp_path):
    """An ALPaCA learner's parameters (a non-diagonal prior precision) saved as a loss file: the Adapter from
    that file scores each batch before its update as ALPaCA's posterior mean does in float64."""
    model, norm, _ = parts
    learner = ALPaCA(model)
    params = learner.init(jax.random.PRNGKey(1))
    params["prior_factor"] = params["prior_factor"] + 0.3 * jax.random.normal(jax.random.PRNGKey(2),
                                                                             params["prior_factor"].shape)
    config = InverseDynamicsConfig(loss="alpaca", update="posterior", hidden=(8,))
    path = save_loss(tmp_path / "loss.npz", config, params, norm, robot="test")
    forgetting, batches = 0.95, 30
    adapter = Adapter.from_loss_file(path, forgetting=forgetting, batch_size=BATCH)
    assert adapter.head.forgetting == forgetting and adapter.head.prior_precision.shape == (9, 9)
    x, tau = _stream(batches, seed=3)
    errors = []
    for k in range(batches):
        rows = slice(k * BATCH, (k + 1) * BATCH)
        predicted = np.stack([adapter.predict(r[:J], r[J:2 * J], r[2 * J:]) for r in x[rows]])
        errors.append(np.mean(np.square((predicted - tau[rows]) / np.asarray(norm.y_std)), axis=0))
        _feed(adapter, x[rows], tau[rows])
    with enable_x64():
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        xs = jnp.asarray(norm.inputs(jnp.asarray(x)), jnp.float64).reshape(batches, BATCH, -1)
        ys = jnp.asarray(norm.targets(jnp.asarray(tau)), jnp.float64).reshape(batches, BATCH, J)
        expected = np.asarray(learner.stream_scores(p64, xs, ys, forgetting)[1])
    np.testing.assert_allclose(np.asarray(errors), expected, rtol=1e-3, atol=1e-5)
    with pytest.raises(ValueError, match="is an ALPaCA file: it makes its own head"):
        Adapter.from_loss_file(path, head=BayesianHead())


def test_the_head_in_the_background_gives_the_same_numbers(parts):
    model, norm, params = parts
    x, tau = _stream(8, seed=4)
    head = BayesianHead(0.99, 1.0)
    inline = Adapter(model, norm, params, head=head, batch_size=BATCH)
    _feed(inline, x, tau)
    with Adapter(model, norm, params, head=head, batch_size=BATCH, background=True) as background:
        _feed(background, x, tau)
        background.wait(timeout=30)
        for a, b in zip(jax.tree.leaves(background.params), jax.tree.leaves(inline.params)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        row = x[0]
        np.testing.assert_allclose(background.predict(row[:J], row[J:2 * J], row[2 * J:]),
                                   inline.predict(row[:J], row[J:2 * J], row[2 * J:]), rtol=1e-5, atol=1e-5)


def test_with_adapt_body_the_body_steps_and_the_head_solves_on_its_new_features(parts):
    """One batch: the body takes the SGD step on MSE with the last layer's gradient masked, then the head
    is the ridge solution on the stepped body's features."""
    model, norm, params = parts
    adapter = Adapter(model, norm, params, optimizer="sgd", learning_rate=0.1, batch_size=BATCH,
                      head=BayesianHead(1.0, 1.0, adapt_body=True))
    x, tau = _stream(1, seed=5)
    _feed(adapter, x, tau)
    xs, ys = norm.inputs(jnp.asarray(x)), norm.targets(jnp.asarray(tau))
    grads = jax.grad(lambda p: jnp.mean(jnp.square(model.apply(p, xs) - ys)))(params)
    body = [jax.tree.map(lambda w, g: w - 0.1 * g, layer, grad) for layer, grad in zip(params[:-1], grads[:-1])]
    for a, b in zip(jax.tree.leaves(adapter.params[:-1]), jax.tree.leaves(body)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    phi = _features(model, norm, body + [params[-1]], x)
    y = np.asarray(ys, np.float64)
    expected = np.linalg.solve(np.eye(phi.shape[1]) + phi.T @ phi, _last_layer(params) + phi.T @ y)
    np.testing.assert_allclose(_last_layer(adapter.params), expected, rtol=2e-4, atol=2e-5)


def test_a_head_is_refused_where_it_cannot_sit(parts):
    model, norm, params = parts
    with pytest.raises(ValueError, match="a Bayesian head needs an InverseDynamicsMLP"):
        per_joint = PerJointMLP(J, hidden=(4,))
        Adapter(per_joint, norm, per_joint.init(jax.random.PRNGKey(0)), head=BayesianHead())
    with pytest.raises(ValueError, match=r"head forgetting must be a number in \(0, 1\], got 1.5"):
        BayesianHead(1.5)
    with pytest.raises(ValueError, match="head prior_precision must be a finite number > 0"):
        BayesianHead(prior_precision=0.0)
    with pytest.raises(ValueError, match="head prior_precision is 4x4, the model's last layer needs 9x9"):
        Adapter(model, norm, params, head=BayesianHead(prior_precision=np.eye(4)))
    with pytest.raises(ValueError, match="head must be a BayesianHead, got 0.99"):
        Adapter(model, norm, params, head=0.99)
