"""ALPaCA, the meta-learned Bayesian last layer (fastadapt.models.alpaca): its posterior against Gaussian
conditioning in closed form, forgetting against a hand-computed case, the meta-gradient through the
posterior against finite differences, and meta-training on the one trainer."""

import dataclasses
import math
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import enable_x64

from fastadapt.meta.algorithm import posterior_objective
from fastadapt.models.alpaca import ALPaCA, HeadPosterior, gaussian_nll, posterior_predictive, posterior_update
from fastadapt.models.mlp import InverseDynamicsMLP
from fastadapt.tasks.inverse_dynamics import InverseDynamicsConfig, inverse_dynamics_trainer, load_loss

from test_meta import _check_against_central_differences, _smooth_dataset


def _prior(rng, dim, outputs):
    a = rng.normal(size=(dim, dim))
    precision = a @ a.T + 0.5 * np.eye(dim)
    mean = rng.normal(size=(dim, outputs))
    return precision, mean


def test_posterior_and_predictive_match_gaussian_conditioning():
    """Sequential natural-form updates against conditioning the joint Gaussian of (y, y*) on y, per output:
    w_j ~ N(k0_j, s_j^2 Lambda0^-1), y = Phi w_j + eps, eps ~ N(0, s_j^2 I)."""
    rng = np.random.default_rng(0)
    dim, outputs, noise = 4, 2, np.array([0.3, 2.0])
    precision0, mean0 = _prior(rng, dim, outputs)
    batches = [rng.normal(size=(3, dim)) for _ in range(3)]
    targets = [rng.normal(size=(3, outputs)) for _ in range(3)]
    query = rng.normal(size=(2, dim))
    with enable_x64():
        prior = HeadPosterior(jnp.asarray(precision0), jnp.asarray(precision0 @ mean0))
        posterior = prior
        for phi, y in zip(batches, targets):
            posterior = posterior_update(posterior, prior, jnp.asarray(phi), jnp.asarray(y))
        mean, scale = posterior_predictive(posterior, jnp.asarray(query))
        mean, scale = np.asarray(mean), np.asarray(scale)
    phi, y = np.concatenate(batches), np.concatenate(targets)
    cov0 = np.linalg.inv(precision0)
    both = np.concatenate([phi, query])
    joint = both @ cov0 @ both.T + np.eye(len(both))  # Cov([y; y*]) / s_j^2
    n = len(phi)
    gain = joint[n:, :n] @ np.linalg.inv(joint[:n, :n])
    for j in range(outputs):
        expected_mean = query @ mean0[:, j] + gain @ (y[:, j] - phi @ mean0[:, j])
        expected_cov = noise[j] * (joint[n:, n:] - gain @ joint[:n, n:])
        np.testing.assert_allclose(mean[:, j], expected_mean, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(noise[j] * scale, np.diag(expected_cov), rtol=1e-10)
    # the posterior of the weights themselves: Lambda_n^-1 against the Schur complement
    weights_cov = cov0 - cov0 @ phi.T @ np.linalg.inv(phi @ cov0 @ phi.T + np.eye(n)) @ phi @ cov0
    np.testing.assert_allclose(np.linalg.inv(np.asarray(posterior.precision)), weights_cov, rtol=1e-9, atol=1e-12)


def test_forgetting_weighs_old_batches_and_keeps_the_prior():
    """Two batches with lambda: Lambda_2 = Lambda0 + lambda Phi1^T Phi1 + Phi2^T Phi2, Q likewise."""
    rng = np.random.default_rng(1)
    precision0, mean0 = _prior(rng, 3, 2)
    (p1, p2), (y1, y2) = rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 4, 2))
    forgetting = 0.9
    with enable_x64():
        prior = HeadPosterior(jnp.asarray(precision0), jnp.asarray(precision0 @ mean0))
        posterior = posterior_update(prior, prior, jnp.asarray(p1), jnp.asarray(y1), forgetting)
        posterior = posterior_update(posterior, prior, jnp.asarray(p2), jnp.asarray(y2), forgetting)
        # at rest (no data) the posterior returns to the prior, never past it
        rest = posterior
        for _ in range(400):
            rest = posterior_update(rest, prior, jnp.zeros((1, 3)), jnp.zeros((1, 2)), forgetting)
    np.testing.assert_allclose(posterior.precision, precision0 + 0.9 * p1.T @ p1 + p2.T @ p2, rtol=1e-12)
    np.testing.assert_allclose(posterior.moment, precision0 @ mean0 + 0.9 * p1.T @ y1 + p2.T @ y2, rtol=1e-12)
    np.testing.assert_allclose(rest.precision, precision0, rtol=1e-12)


def test_gaussian_nll_is_the_normal_log_density():
    y, mean, var = np.array([[0.3, -1.0]]), np.array([[0.1, 0.5]]), np.array([[0.2, 3.0]])
    expected = -np.mean(-0.5 * np.log(2 * math.pi * var) - (y - mean) ** 2 / (2 * var))
    assert float(gaussian_nll(y, mean, var)) == pytest.approx(expected, rel=1e-6)


def _learner():
    return ALPaCA(InverseDynamicsMLP(2, hidden=(5,), activation="tanh"))


def test_the_prior_predicts_with_the_network_and_the_first_batch_is_scored_before_its_update():
    learner = _learner()
    params = learner.init(jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 4, 6))
    y = jax.random.normal(jax.random.PRNGKey(2), (3, 4, 2))
    with enable_x64():
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        x, y = jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64)
        nll, squared = learner.stream_scores(params, x, y)
        prior = learner.prior(params)
        # the prior mean is the network's last layer: its predictive mean is the network's output
        np.testing.assert_allclose(learner.model.apply(learner.network(params, prior), x[0]),
                                   learner.model.apply(params["layers"], x[0]), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(squared[0], np.mean((learner.model.apply(params["layers"], x[0]) - y[0]) ** 2, 0),
                                   rtol=1e-9)
        # batch 2 is scored by the posterior after batches 0 and 1
        posterior = learner.update(params, prior, learner.update(params, prior, prior, x[0], y[0]), x[1], y[1])
        mean, scale = posterior_predictive(posterior, learner.features(params, x[2]))
        expected = gaussian_nll(y[2], mean, scale[:, None] * jnp.exp(params["log_noise"]))
        assert float(nll[2]) == pytest.approx(float(expected), rel=1e-10)
        np.testing.assert_allclose(learner.model.apply(learner.network(params, posterior), x[2]), mean, rtol=1e-8)


def test_the_covariance_form_without_forgetting_is_the_natural_form():
    learner = _learner()
    keys = jax.random.split(jax.random.PRNGKey(5), 3)
    with enable_x64():
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), learner.init(keys[0]))
        x, y = jax.random.normal(keys[1], (6, 4, 6), jnp.float64), jax.random.normal(keys[2], (6, 4, 2), jnp.float64)
        exact = learner.stream_scores(params, x, y, 1.0)
        natural = learner.stream_scores(params, x, y, 1.0 - 1e-13)  # the natural form's code path
        for a, b in zip(exact, natural):
            np.testing.assert_allclose(a, b, rtol=1e-9)


def test_meta_gradient_through_the_posterior_matches_finite_differences():
    learner = _learner()
    task = SimpleNamespace(examples=lambda stream: stream)
    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    with enable_x64():
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), learner.init(keys[0]))
        params["prior_factor"] = params["prior_factor"] + 0.2 * jax.random.normal(keys[1], params["prior_factor"].shape,
                                                                                 jnp.float64)
        stream = (jax.random.normal(keys[2], (4, 3, 6), jnp.float64), jax.random.normal(keys[3], (4, 3, 2), jnp.float64))
        for forgetting in (1.0, 0.8):
            _check_against_central_differences(lambda p: posterior_objective(task, learner, p, stream, forgetting),
                                               params, seed=4)


CONFIG = InverseDynamicsConfig(loss="alpaca", update="posterior", meta_optimizer="adam", eta=3e-3, iters_max=6,
                               epochs=4, eval_every=2, eval_steps=20, eval_seeds=2, batches_per_epoch=10,
                               hidden=(16,), seeds=2)


def test_alpaca_meta_trains_on_the_one_trainer_and_its_file_loads(tmp_path):
    train, test = _smooth_dataset(3, 0), _smooth_dataset(2, 1)
    trainer = inverse_dynamics_trainer(CONFIG, train, test)
    assert trainer.num_batches == 10
    assert inverse_dynamics_trainer(dataclasses.replace(CONFIG, batches_per_epoch=0), train, test).num_batches == \
        train.num_samples // 30
    result = trainer.run(tmp_path, progress=False)
    losses = np.asarray(result.history["task_loss"]).mean(1)
    assert losses[-1] < losses[0]  # the negative log predictive falls
    chosen = result.history["eval"][-1]["meta-train"]["mean"]
    assert max(chosen) < result.history["baseline"]["meta-train"]["mean"]  # the posterior beats SGD on MSE online
    config, learner, params, _ = load_loss(tmp_path / "loss.npz")
    assert isinstance(learner, ALPaCA) and config.update == "posterior"
    np.testing.assert_allclose(params["prior_factor"], result.loss_params["prior_factor"])


def test_alpaca_and_update_posterior_go_together():
    message = "loss=alpaca meta-trains with update=posterior, and update=posterior meta-trains loss=alpaca only"
    with pytest.raises(ValueError, match=message + "; got loss=alpaca, update=step"):
        InverseDynamicsConfig(loss="alpaca")
    with pytest.raises(ValueError, match=message + "; got loss=structured, update=posterior"):
        InverseDynamicsConfig(loss="structured", update="posterior")
    with pytest.raises(ValueError, match="loss=alpaca adapts in closed form from its own meta-learned network"):
        InverseDynamicsConfig(loss="alpaca", update="posterior", start="pretrained")
    with pytest.raises(ValueError, match="update=posterior meta-trains on streams of 200 batches x 5 samples = 1000 "
                                         "consecutive samples, but the longest meta-train trajectory has 600"):
        inverse_dynamics_trainer(dataclasses.replace(CONFIG, iters_max=200), _smooth_dataset(2, 0), _smooth_dataset(1, 1))
