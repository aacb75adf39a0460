import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fastadapt.adapt.adapter import Adapter
from fastadapt.adapt.runner import run_updates
from fastadapt.data.batches import Normalizer, Samples
from fastadapt.data.trajectory import DataError
from fastadapt.losses import make_loss
from fastadapt.models.mlp import InverseDynamicsMLP

J = 3


@pytest.fixture
def parts():
    model = InverseDynamicsMLP(J, hidden=(8,))
    norm = Normalizer(jnp.full(3 * J, 0.1), jnp.full(3 * J, 2.0), jnp.full(J, -1.0), jnp.full(J, 3.0))
    loss = make_loss("structured", J)
    phi = {"w": jnp.array([0.0, 1.0, 2.0])}
    return model, norm, loss, phi, model.init(jax.random.PRNGKey(0))


def test_adapter_matches_the_runner(parts):
    model, norm, loss, phi, theta = parts
    adapter = Adapter(model, norm, theta, loss, phi, "sgd", 0.05, batch_size=5)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 3 * J)).astype(np.float32)
    y = rng.normal(size=(10, J)).astype(np.float32)
    updated = [adapter.observe(x[i, :J], x[i, J:2 * J], x[i, 2 * J:], y[i]) for i in range(10)]
    assert updated == [False] * 4 + [True] + [False] * 4 + [True] and adapter.updates == 2
    batches = Samples(norm.inputs(jnp.asarray(x)).reshape(2, 5, -1), norm.targets(jnp.asarray(y)).reshape(2, 5, -1))
    expected, _ = run_updates(model, loss, "sgd", 0.05, phi, theta, batches)
    for a, b in zip(jax.tree.leaves(adapter.params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    tau = adapter.predict(x[0, :J], x[0, J:2 * J], x[0, 2 * J:])
    np.testing.assert_allclose(tau, norm.torques(model.apply(expected, norm.inputs(x[0]))), rtol=1e-5)


def test_adapter_rejects_bad_input(parts):
    model, norm, loss, phi, theta = parts
    adapter = Adapter(model, norm, theta)
    with pytest.raises(DataError, match="q has 2 joints, the adapter's model has 3"):
        adapter.predict([0, 0], [0, 0, 0], [0, 0, 0])
    with pytest.raises(DataError, match="tau holds NaN"):
        adapter.observe([0, 0, 0], [0, 0, 0], [0, 0, 0], [0, np.nan, 0])


def test_adapter_with_a_learning_rate_memory_matches_the_runner_and_hands_on_its_memory(parts):
    from fastadapt.adapt.runner import run_transform
    from fastadapt.optim import MemoryConfig, find_memory, metagd, transfer_memory

    model, norm, loss, phi, theta = parts
    transform = metagd(MemoryConfig(eta_init=0.05, num_models=20, memory_rate=0.5))
    adapter = Adapter(model, norm, theta, loss, phi, transform, batch_size=5)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(15, 3 * J)).astype(np.float32)
    y = rng.normal(size=(15, J)).astype(np.float32)
    for i in range(15):
        adapter.observe(x[i, :J], x[i, J:2 * J], x[i, 2 * J:], y[i])
    batches = Samples(norm.inputs(jnp.asarray(x)).reshape(3, 5, -1), norm.targets(jnp.asarray(y)).reshape(3, 5, -1))
    expected, state, _ = run_transform(model, loss, transform, phi, theta, transform.init(theta), batches)
    for a, b in zip(jax.tree.leaves(adapter.params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    memory = find_memory(adapter.opt_state)
    np.testing.assert_allclose(memory.rates, state.rates, rtol=1e-5)
    assert memory.rates.shape == (2, 20)  # one memory per layer of the model
    assert not np.allclose(memory.rates, 0.05)  # it learned
    carried = Adapter(model, norm, theta, loss, phi, transform, opt_state=transfer_memory(transform.init(theta), memory))
    np.testing.assert_array_equal(find_memory(carried.opt_state).rates, memory.rates)
