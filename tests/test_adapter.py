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


@pytest.mark.parametrize("optimizer, rate, diverges", [("sgd", 10.0, True), ("sgd", 1e3, True), ("adam", 1e3, False)])
def test_a_diverging_rate_never_yields_a_non_finite_torque(parts, optimizer, rate, diverges):
    import warnings

    from fastadapt.adapt.adapter import UpdateRejectedWarning

    model, norm, loss, phi, theta = parts
    adapter = Adapter(model, norm, theta, loss, phi, optimizer, rate, batch_size=5)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 3 * J))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for row in x:
            tau = adapter.predict(row[:J], row[J:2 * J], row[2 * J:])
            assert np.all(np.isfinite(tau)) and np.abs(tau).max() <= adapter.limits.tau
            adapter.observe(row[:J], row[J:2 * J], row[2 * J:], 50 * np.sin(row[:J]))
        rejected = adapter.rejected_updates
    said = [w for w in caught if issubclass(w.category, UpdateRejectedWarning) and "rejected" in str(w.message)]
    assert (rejected > 0) == diverges  # plain SGD blows up at these rates; Adam's steps are bounded
    assert bool(said) == diverges and (not said or f"({rejected} of 120 rejected so far)" in str(said[-1].message))
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(adapter.params))


def test_a_rejected_update_keeps_the_last_good_parameters(parts):
    """With a rate so large that the first update overflows, the model stays exactly where it started."""
    model, norm, loss, phi, theta = parts
    adapter = Adapter(model, norm, theta, loss, phi, "sgd", 1e38, batch_size=1)
    with pytest.warns(RuntimeWarning):
        adapter.observe([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [5.0, -5.0, 5.0])
        assert adapter.rejected_updates == 1 and adapter.updates == 1
    for a, b in zip(jax.tree.leaves(adapter.params), jax.tree.leaves(theta)):
        np.testing.assert_array_equal(a, b)


def test_a_good_rate_rejects_nothing(parts):
    model, norm, loss, phi, theta = parts
    adapter = Adapter(model, norm, theta, loss, phi, "sgd", 1e-3, batch_size=5)
    rng = np.random.default_rng(2)
    for row in rng.normal(size=(100, 4 * J)):
        adapter.observe(row[:J], row[J:2 * J], row[2 * J:3 * J], row[3 * J:])
    assert adapter.rejected_updates == 0 and adapter.updates == 20
