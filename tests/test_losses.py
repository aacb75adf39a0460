import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fastadapt.losses import make_loss
from fastadapt.losses.regression import MLPLoss


@pytest.fixture
def batch():
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    return jax.random.normal(k1, (16, 4)), jax.random.normal(k2, (16, 4)), jax.random.normal(k3, (16, 8))


def test_mse_closed_form(batch):
    pred, target, state = batch
    expected = np.mean((np.asarray(pred) - np.asarray(target)) ** 2)
    assert float(make_loss("mse", 4).apply({}, pred, target, state)) == pytest.approx(expected, rel=1e-6)


def test_structured_with_unit_weights_is_summed_mse(batch):
    pred, target, state = batch
    loss = make_loss("structured", 4)
    params = loss.init(jax.random.PRNGKey(1))
    np.testing.assert_allclose(loss.weights(params), np.ones(4), rtol=1e-6)
    summed = np.mean(np.sum((np.asarray(pred) - np.asarray(target)) ** 2, axis=1))
    assert float(loss.apply(params, pred, target, state)) == pytest.approx(summed, rel=1e-6)


def test_structured_weights_closed_form(batch):
    pred, target, state = batch
    loss = make_loss("structured", 4)
    params = {"w": jnp.array([0.0, 1.0, -1.0, 2.0])}
    phi = np.log1p(np.exp(np.array([0.0, 1.0, -1.0, 2.0])))
    expected = np.mean(np.sum(phi * (np.asarray(pred) - np.asarray(target)) ** 2, axis=1))
    assert float(loss.apply(params, pred, target, state)) == pytest.approx(expected, rel=1e-5)
    grad = jax.grad(lambda p: loss.apply(params, p, target, state))(pred)
    np.testing.assert_allclose(grad, 2 * phi * (np.asarray(pred) - np.asarray(target)) / 16, rtol=1e-5)


def test_state_dependent_starts_near_summed_mse_and_depends_on_state(batch):
    pred, target, state = batch
    loss = make_loss("state-dependent", 4)
    params = loss.init(jax.random.PRNGKey(2))
    weights = np.asarray(loss.weights(params, state))
    assert weights.shape == (16, 4) and np.all(weights > 0)
    assert np.abs(weights - 1).max() < 0.3
    assert weights.std(0).max() > 0  # varies with the state
    summed = np.sum(weights * (np.asarray(pred) - np.asarray(target)) ** 2, axis=1).mean()
    assert float(loss.apply(params, pred, target, state)) == pytest.approx(summed, rel=1e-5)


def test_state_dependent_weights_bounded_outside_meta_train_states():
    loss = make_loss("state-dependent", 2)
    params = loss.init(jax.random.PRNGKey(0))
    far = jnp.full((1, 4), 1e4)
    edge = jnp.full((1, 4), loss.state_clip)
    np.testing.assert_allclose(loss.weights(params, far), loss.weights(params, edge))


def test_mlp_loss_positive_and_shapes(batch):
    pred, target, state = batch
    loss = make_loss("mlp", 4)
    params = loss.init(jax.random.PRNGKey(3))
    assert [layer["w"].shape for layer in params["net"]] == [(8, 40), (40, 40), (40, 40), (40, 1)]
    assert float(loss.apply(params, pred, target, state)) > 0


def test_unknown_loss():
    with pytest.raises(ValueError, match="unknown loss 'l1', expected one of"):
        make_loss("l1", 3)


@pytest.mark.parametrize("name", ["mse", "structured", "state-dependent"])
def test_learned_rate_scales_the_loss_and_the_sgd_step_by_exp_r(batch, name):
    """L_r = exp(r) L, so one SGD step at alpha on L_r is the step at alpha exp(r) on L; dL_r/dr = L_r."""
    from fastadapt.models.mlp import InverseDynamicsMLP

    pred, target, state = batch
    plain, scaled = make_loss(name, 4), make_loss(name, 4, learned_rate=True)
    assert scaled.learned and scaled.name == name and scaled.num_joints == 4
    params = scaled.init(jax.random.PRNGKey(1))
    assert float(params["log_rate"]) == 0.0
    params = dict(params, log_rate=jnp.asarray(np.log(3.0)))
    inner = {k: v for k, v in params.items() if k != "log_rate"}
    value = float(scaled.apply(params, pred, target, state))
    assert value == pytest.approx(3.0 * float(plain.apply(inner, pred, target, state)), rel=1e-5)
    assert float(jax.grad(lambda p: scaled.apply(p, pred, target, state))(params)["log_rate"]) == pytest.approx(value, rel=1e-5)
    model = InverseDynamicsMLP(4, hidden=(8,))
    theta = model.init(jax.random.PRNGKey(2))
    x = jax.random.normal(jax.random.PRNGKey(3), (16, 12))
    step = lambda loss, p, alpha: jax.tree.map(
        lambda t, g: t - alpha * g, theta, jax.grad(lambda th: loss.apply(p, model.apply(th, x), target, state))(theta))
    for a, b in zip(jax.tree.leaves(step(scaled, params, 0.01)), jax.tree.leaves(step(plain, inner, 0.03))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_xavier_uniform_without_biases_is_the_ml3_authors_sine_loss():
    from fastadapt.models.mlp import apply_mlp, init_mlp

    layers = init_mlp(jax.random.PRNGKey(3), (2, 50, 50, 1), init="xavier", bias=False)
    assert [sorted(layer) for layer in layers] == [["w"]] * 3
    for layer, (n_in, n_out) in zip(layers, [(2, 50), (50, 50), (50, 1)]):
        w = np.asarray(layer["w"])
        limit = np.sqrt(6.0 / (n_in + n_out))  # torch.nn.init.xavier_uniform_, gain 1
        assert w.shape == (n_in, n_out) and np.abs(w).max() <= limit and np.abs(w).max() > 0.8 * limit
    big = np.asarray(init_mlp(jax.random.PRNGKey(0), (400, 400), init="xavier")[0]["w"])
    assert big.std() == pytest.approx(np.sqrt(6.0 / 800) / np.sqrt(3), rel=0.02)  # uniform: std = a / sqrt(3)
    x = jnp.array([[0.5, -1.0]])
    by_hand = jax.nn.relu(jax.nn.relu(x @ layers[0]["w"]) @ layers[1]["w"]) @ layers[2]["w"]
    np.testing.assert_allclose(apply_mlp(layers, x), by_hand, rtol=1e-6)
    loss = MLPLoss(1, (50, 50), weights="xavier", bias=False)
    params = loss.init(jax.random.PRNGKey(3))
    np.testing.assert_allclose(params["net"][0]["w"], layers[0]["w"])
    pred, target = jnp.array([[0.3]]), jnp.array([[-0.2]])
    expected = jax.nn.softplus(apply_mlp(layers, jnp.array([[0.3, -0.2]])))[0, 0]
    np.testing.assert_allclose(loss.apply(params, pred, target), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown initialisation 'he', expected one of lecun, xavier"):
        init_mlp(jax.random.PRNGKey(0), (2, 3), init="he")


def test_lecun_default_is_unchanged_by_the_options():
    from fastadapt.models.mlp import init_mlp

    key = jax.random.PRNGKey(1)
    default = init_mlp(key, (3, 8, 2), last_scale=0.1)
    w0 = (1.0 / jnp.sqrt(3)) * jax.random.normal(jax.random.split(key, 2)[0], (3, 8))  # the formula before
    np.testing.assert_array_equal(default[0]["w"], w0)
    np.testing.assert_array_equal(default[0]["b"], np.zeros(8))
