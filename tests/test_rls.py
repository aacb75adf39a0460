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
