"""Recursive least squares on random Fourier features (fastadapt.adapt.rls) against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import enable_x64

from fastadapt.adapt.rls import fourier_features, rls_init, rls_predict, rls_update


def weighted_least_squares(phis, targets, reg, forgetting):
    """argmin sum_k lambda^(n-k) ||Y_k - Phi_k W||^2 + lambda^n reg ||W||^2, solved directly."""
    n = len(phis)
    a = forgetting ** n * reg * np.eye(phis[0].shape[1])
    c = np.zeros((phis[0].shape[1], targets[0].shape[1]))
    for k, (phi, y) in enumerate(zip(phis, targets), 1):
        a += forgetting ** (n - k) * phi.T @ phi
        c += forgetting ** (n - k) * phi.T @ y
    return np.linalg.solve(a, c), np.linalg.inv(a)


@pytest.mark.parametrize("forgetting", [1.0, 0.95])
def test_block_rls_matches_the_batch_weighted_least_squares_solution(forgetting):
    with enable_x64():
        rng = np.random.default_rng(0)
        features = fourier_features(jax.random.PRNGKey(0), 3, 20, 0.7)
        xs = [rng.normal(size=(5, 3)) for _ in range(30)]
        ys = [np.stack([np.sin(x[:, 0]) + x[:, 1] ** 2, np.cos(x[:, 2])], 1) for x in xs]
        phis = [np.asarray(features(jnp.asarray(x))) for x in xs]
        state = rls_init(features.dim, 2, reg=0.1)
        for phi, y in zip(phis, ys):
            state = rls_update(state, jnp.asarray(phi), jnp.asarray(y), forgetting)
        w, p = weighted_least_squares(phis, ys, 0.1, forgetting)
        np.testing.assert_allclose(np.asarray(state.weights), w, atol=1e-8, rtol=0)
        np.testing.assert_allclose(np.asarray(state.inverse), p, atol=1e-8 * np.abs(p).max(), rtol=0)
        np.testing.assert_allclose(np.asarray(rls_predict(state, jnp.asarray(phis[0]))), phis[0] @ w, atol=1e-8)


def test_forgetting_by_hand_on_one_scalar_feature():
    """D = 1, phi = 1, reg = 1, lambda = 0.5, targets 2 then 4: A_1 = 0.5 + 1, W_1 = 2 / 1.5;
    A_2 = 0.25 + 0.5 + 1 = 1.75, c_2 = 0.5 * 2 + 4 = 5, W_2 = 5 / 1.75."""
    with enable_x64():
        state = rls_init(1, 1, reg=1.0)
        one = jnp.ones((1, 1))
        state = rls_update(state, one, jnp.asarray([[2.0]]), 0.5)
        assert float(state.weights[0, 0]) == pytest.approx(2 / 1.5, abs=1e-12)
        assert float(state.inverse[0, 0]) == pytest.approx(1 / 1.5, abs=1e-12)
        state = rls_update(state, one, jnp.asarray([[4.0]]), 0.5)
        assert float(state.weights[0, 0]) == pytest.approx(5 / 1.75, abs=1e-12)


def test_features_approximate_the_rbf_kernel_and_bad_settings_are_refused():
    with enable_x64():
        features = fourier_features(jax.random.PRNGKey(1), 2, 4000, 0.5)
        x = jnp.asarray([[0.1, -0.2], [0.4, 0.1]])
        phi = features(x)
        kernel = float(jnp.exp(-jnp.sum((x[0] - x[1]) ** 2) / (2 * 0.25)))
        assert float(phi[0] @ phi[1]) == pytest.approx(kernel, abs=0.03)
        linear = fourier_features(jax.random.PRNGKey(1), 2, 0, 1.0)
        np.testing.assert_array_equal(np.asarray(linear(x)), [[0.1, -0.2, 1.0], [0.4, 0.1, 1.0]])
        assert linear.dim == 3 and features.dim == 4000
    with pytest.raises(ValueError, match="length_scale must be positive, got 0"):
        fourier_features(jax.random.PRNGKey(0), 2, 10, 0)
    with pytest.raises(ValueError, match="reg must be positive, got -1"):
        rls_init(3, 1, -1)


def test_online_scores_are_taken_before_each_update_and_residuals_add_the_base():
    """rls_online_scores against a hand-written loop: score batch k with W_k, then update with batch k;
    with a base model, the prediction is base + phi W and the update's target y - base."""
    from fastadapt.adapt.rls import RLSConfig, rls_online_scores, seed_features
    from fastadapt.data.batches import Samples

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(12, 5, 3)), rng.normal(size=(12, 5, 2))
    base = rng.normal(size=(2, 12, 5, 2))
    config = RLSConfig(features=16, length_scale=1.5, forgetting=0.97, reg=0.5)
    scores = rls_online_scores(config, Samples(x, y), seeds=2, seed=4, base=base)
    with enable_x64():
        omega, phase = seed_features(config, 3, 2, 4)
        for s in range(2):
            features = lambda a: np.sqrt(2 / 16) * np.cos(a @ np.asarray(omega[s]) + np.asarray(phase[s]))
            state = rls_init(16, 2, 0.5)
            for k in range(12):
                phi = features(x[k])
                pred = base[s, k] + phi @ np.asarray(state.weights)
                assert scores[s, k] == pytest.approx(np.mean((pred - y[k]) ** 2), rel=1e-10)
                state = rls_update(state, jnp.asarray(phi), jnp.asarray(y[k] - base[s, k]), 0.97)
    assert scores[0, 0] == pytest.approx(np.mean((base[0, 0] - y[0]) ** 2))  # W_0 = 0: the base alone
    assert not np.allclose(scores[0], scores[1])  # one feature draw per seed


def test_a_robot_at_rest_does_not_wind_up_the_inverse():
    """20,000 batches of one input at lambda = 0.999: unbounded, trace(P) grows like 0.999^-n (e^20);
    with max_trace = D / reg it stays below max_trace / lambda, and the first batch of a new motion gets
    a bounded prediction."""
    with enable_x64():
        features = fourier_features(jax.random.PRNGKey(0), 2, 30, 1.0)
        rest = features(jnp.zeros((5, 2)))
        targets = jnp.ones((5, 1))

        def settle(max_trace):
            step = lambda state, _: (rls_update(state, rest, targets, 0.999, max_trace), None)
            return jax.lax.scan(step, rls_init(30, 1, 1.0), None, length=20_000)[0]

        wound, bounded = settle(jnp.inf), settle(30.0)
        assert float(jnp.trace(wound.inverse)) > 1e7
        assert float(jnp.trace(bounded.inverse)) <= 30.0 / 0.999 + 1e-9
        assert np.all(np.linalg.eigvalsh(np.asarray(bounded.inverse)) > 0)
        np.testing.assert_allclose(np.asarray(rls_predict(bounded, rest)), 1.0, atol=1e-4)
        moving = features(jnp.asarray(np.random.default_rng(0).normal(size=(5, 2))))
        after = rls_update(bounded, moving, jnp.zeros((5, 1)), 0.999, 30.0)
        assert np.abs(np.asarray(rls_predict(after, moving))).max() < 2.0


def test_rls_settings_are_checked():
    from fastadapt.adapt.rls import RLSConfig

    assert "linear rls" in RLSConfig(features=0).label
    for kwargs, message in (({"forgetting": 0.0}, "RLS forgetting must lie in \\(0, 1\\], got 0.0"),
                            ({"forgetting": 1.5}, "RLS forgetting must lie in \\(0, 1\\], got 1.5"),
                            ({"reg": float("nan")}, "RLS reg must be a finite number > 0, got nan"),
                            ({"features": -2}, "RLS features must be an integer >= 0, got -2")):
        with pytest.raises(ValueError, match=message):
            RLSConfig(**kwargs)


def test_residual_rls_learns_on_top_of_each_seeds_pretrained_model():
    """rls_scores with a pretrained model: seed s predicts f_s(x) + phi_s W (the first ``seeds`` models
    of a larger set), so with no data yet (batch 0) the score is the pretrained model's own error."""
    from fastadapt.adapt.online import initial_models, rls_scores
    from fastadapt.adapt.rls import RLSConfig
    from fastadapt.data.batches import Samples, Stream
    from fastadapt.models.mlp import InverseDynamicsMLP

    rng = np.random.default_rng(5)
    model = InverseDynamicsMLP(2, hidden=(8,))
    pretrained = initial_models(model, 3, 1)
    x, y = rng.normal(size=(6, 5, 6)).astype(np.float32), rng.normal(size=(6, 5, 2)).astype(np.float32)
    stream = Stream(Samples(jnp.asarray(x), jnp.asarray(y)), np.zeros(6, int), ("all",))
    scores = rls_scores(RLSConfig(features=10), [stream], 2, 0, model, pretrained)
    assert scores.shape == (1, 2, 6)
    for s in range(2):
        theta = jax.tree_util.tree_map(lambda leaf: leaf[s], pretrained)
        own = np.mean((np.asarray(model.apply(theta, jnp.asarray(x[0]))) - y[0]) ** 2)
        assert scores[0, s, 0] == pytest.approx(own, rel=1e-5)
    with pytest.raises(ValueError, match="residual RLS with 4 feature draws needs as many pretrained models, got 3"):
        rls_scores(RLSConfig(features=10), [stream], 4, 0, model, pretrained)
    scratch = rls_scores(RLSConfig(features=10), [stream], 2, 0)
    assert scratch[0, 0, 0] == pytest.approx(np.mean(y[0] ** 2), rel=1e-6) and not np.allclose(scratch, scores)


def test_the_rls_head_is_a_bayesian_last_layer_on_the_pretrained_models_features():
    """head_scores against a hand-written loop: phi = [h(x), 1] with h the model's last hidden layer,
    prediction f(x) + phi W, W updated by RLS on the residual (its prior mean: the model's last layer)."""
    from fastadapt.adapt.online import head_scores, initial_models
    from fastadapt.adapt.rls import RLSConfig
    from fastadapt.data.batches import Samples, Stream
    from fastadapt.models.mlp import InverseDynamicsMLP

    rng = np.random.default_rng(6)
    model = InverseDynamicsMLP(2, hidden=(8, 4))
    pretrained = initial_models(model, 2, 3)
    x, y = rng.normal(size=(5, 5, 6)).astype(np.float32), rng.normal(size=(5, 5, 2)).astype(np.float32)
    stream = Stream(Samples(jnp.asarray(x), jnp.asarray(y)), np.zeros(5, int), ("all",))
    config = RLSConfig(features=0, forgetting=0.9, reg=2.0)
    scores = head_scores(config, model, pretrained, [stream], 2)
    with enable_x64():
        theta = jax.tree_util.tree_map(lambda leaf: jnp.asarray(leaf[1], jnp.float64), pretrained)
        state = rls_init(5, 2, 2.0)
        for k in range(5):
            xk = jnp.asarray(x[k], jnp.float64)
            h = np.asarray(model.features(theta, xk))
            np.testing.assert_allclose(h @ np.asarray(theta[-1]["w"]) + np.asarray(theta[-1]["b"]),
                                       np.asarray(model.apply(theta, xk)), rtol=1e-12)
            phi = np.concatenate([h, np.ones((5, 1))], 1)
            base = np.asarray(model.apply(theta, xk))
            assert scores[0, 1, k] == pytest.approx(np.mean((base + phi @ np.asarray(state.weights) - y[k]) ** 2), rel=1e-6)
            state = rls_update(state, jnp.asarray(phi), jnp.asarray(y[k] - base), 0.9, 5 / 2.0)
