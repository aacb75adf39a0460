import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fastadapt.adapt.online import Method, online_scores, phase_table
from fastadapt.optim.loops import run_updates
from fastadapt.data.batches import Samples, Stream
from fastadapt.losses import make_loss
from fastadapt.models.mlp import InverseDynamicsMLP


def test_online_runner_scores_before_it_updates_hand_computed():
    """A linear model y = x w + b (one joint, 3 inputs) with SGD on MSE, worked by hand in numpy."""
    model = InverseDynamicsMLP(1, hidden=())
    theta = [{"w": jnp.array([[0.5], [-1.0], [2.0]]), "b": jnp.array([0.1])}]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 2, 3)).astype(np.float32)
    y = rng.normal(size=(3, 2, 1)).astype(np.float32)
    lr = 0.1
    w, b = np.array([[0.5], [-1.0], [2.0]]), np.array([0.1])
    expected = []
    for k in range(3):
        err = x[k] @ w + b - y[k]
        expected.append(np.mean(err**2))  # score before the update
        w = w - lr * 2 * x[k].T @ err / 2
        b = b - lr * 2 * err.sum(0) / 2
    final, scores = run_updates(model, make_loss("mse", 1), "sgd", lr, {}, theta, Samples(jnp.asarray(x), jnp.asarray(y)))
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    np.testing.assert_allclose(final[0]["w"], w, rtol=1e-5)
    np.testing.assert_allclose(final[0]["b"], b, rtol=1e-5)


def test_zero_rate_method_is_not_adapted():
    model = InverseDynamicsMLP(2, hidden=(4,))
    batches = Samples(jnp.ones((6, 5, 6)), jnp.zeros((6, 5, 2)))
    stream = Stream(batches, np.array([0, 0, 0, 1, 1, 1]), ("a", "b"))
    starts = jax.vmap(model.init)(jax.random.split(jax.random.PRNGKey(0), 2))
    frozen = online_scores(model, Method("frozen", make_loss("mse", 2), {}, rate=0.0), starts, [stream])
    assert frozen.shape == (1, 2, 6)
    np.testing.assert_allclose(frozen[0], np.repeat(frozen[0, :, :1], 6, axis=1), rtol=1e-6)  # identical batches
    adapted = online_scores(model, Method("sgd", make_loss("mse", 2), {}, rate=0.1), starts, [stream])
    assert np.all(adapted[0, :, -1] < adapted[0, :, 0])


def test_phase_table_mean_and_std_over_runs():
    scores = np.array([[[1.0, 3.0, 10.0], [3.0, 5.0, 20.0]]])  # 1 trial, 2 seeds, 3 batches
    stream = Stream(None, np.array([0, 0, 1]), ("reach", "lift"))
    table = phase_table(scores, stream)
    assert table["reach"] == {"mean": pytest.approx(3.0), "std": pytest.approx(1.0)}
    assert table["lift"] == {"mean": pytest.approx(15.0), "std": pytest.approx(5.0)}


def test_pretrain_fits_the_data_and_is_reproducible():
    from fastadapt.optim.pretrain import pretrain

    model = InverseDynamicsMLP(1, hidden=())  # linear: the fit can reach the exact solution
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3).astype(np.float32)
    samples = Samples(jnp.asarray(x), jnp.asarray(y))
    params, final = pretrain(model, samples, models=2, steps=2000, rate=0.05, batch=32, seed=0)
    assert final.shape == (2,) and np.all(np.asarray(final) < 1e-4)
    np.testing.assert_allclose(params[0]["w"][0, :, 0], [1.0, -2.0, 0.5], atol=1e-2)
    again, _ = pretrain(model, samples, models=2, steps=2000, rate=0.05, batch=32, seed=0)
    np.testing.assert_array_equal(again[0]["w"], params[0]["w"])
    with pytest.raises(ValueError, match="models, steps and batch >= 1"):
        pretrain(model, samples, models=0, steps=1, rate=0.1, batch=1, seed=0)


def test_best_rate_picks_the_lowest_mean_online_error():
    from fastadapt.adapt.online import best_rate, overall

    model = InverseDynamicsMLP(2, hidden=(4,))
    rng = np.random.default_rng(2)
    batches = Samples(jnp.asarray(rng.normal(size=(30, 5, 6)), jnp.float32), jnp.asarray(rng.normal(size=(30, 5, 2)), jnp.float32))
    stream = Stream(batches, np.zeros(30, int), ("a",))
    starts = jax.vmap(model.init)(jax.random.split(jax.random.PRNGKey(0), 2))
    method = lambda r: Method("sgd", make_loss("mse", 2), {}, rate=r)
    rate, scores, by_rate = best_rate(model, method, [1e-3, 1e-1, 1.0], starts, [stream])
    assert by_rate[rate] == min(by_rate.values()) and overall(scores) == by_rate[rate]
    assert set(by_rate) == {1e-3, 1e-1, 1.0}
