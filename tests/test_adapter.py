import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fastadapt.adapt.adapter import Adapter
from fastadapt.optim.loops import run_updates
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
    from fastadapt.optim.loops import run_transform
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


COMPILES = []
jax.monitoring.register_event_duration_secs_listener(
    lambda name, duration, **kwargs: COMPILES.append(name) if name.startswith("/jax/core/compile") else None)


def _ticks(adapter, data):
    """predict + observe per row of data [n, 4J]; returns the predictions [n, J]."""
    out = []
    for row in data:
        out.append(adapter.predict(row[:J], row[J:2 * J], row[2 * J:3 * J]))
        adapter.observe(row[:J], row[J:2 * J], row[2 * J:3 * J], row[3 * J:])
    return np.stack(out)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "memory"])
def test_no_call_compiles_after_construction(parts, optimizer):
    from fastadapt.optim import MemoryConfig, metagd

    model, norm, loss, phi, theta = parts
    opt = metagd(MemoryConfig(eta_init=0.01, num_models=20)) if optimizer == "memory" else optimizer
    data = np.random.default_rng(4).normal(size=(200, 4 * J)).astype(np.float32)
    for background in (False, True):
        with Adapter(model, norm, theta, loss, phi, opt, 0.01, background=background) as adapter:
            COMPILES.clear()
            _ticks(adapter, data)
            adapter.wait()
            assert adapter.rejected_updates == 0 and adapter.updates == 40
            assert COMPILES == [], f"compiled after construction: {COMPILES}"


@pytest.mark.slow
def test_compiled_ahead_and_in_the_background_the_numbers_are_the_same(parts):
    """The AOT-compiled adapter, the lazily jitted one and the background one predict the same torques
    and end at the same parameters, bit for bit; all match the runner to float32 rounding."""
    model, norm, loss, phi, theta = parts
    data = np.random.default_rng(5).normal(size=(50, 4 * J)).astype(np.float32)
    lazy = Adapter(model, norm, theta, loss, phi, "sgd", 0.05, warmup=False)
    ahead = Adapter(model, norm, theta, loss, phi, "sgd", 0.05)
    expected = _ticks(lazy, data)
    np.testing.assert_array_equal(_ticks(ahead, data), expected)
    with Adapter(model, norm, theta, loss, phi, "sgd", 0.05, background=True) as background:
        for row in data:
            background.observe(row[:J], row[J:2 * J], row[2 * J:3 * J], row[3 * J:])
        background.wait()
        for a, b in zip(jax.tree.leaves(background.params), jax.tree.leaves(ahead.params)):
            np.testing.assert_array_equal(a, b)
    batches = Samples(norm.inputs(jnp.asarray(data[:, :3 * J])).reshape(10, 5, -1),
                      norm.targets(jnp.asarray(data[:, 3 * J:])).reshape(10, 5, -1))
    reference, _ = run_updates(model, loss, "sgd", 0.05, phi, theta, batches)
    for a, b in zip(jax.tree.leaves(ahead.params), jax.tree.leaves(reference)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert ahead.construction_seconds > lazy.construction_seconds  # it compiled


def test_a_background_update_never_tears_the_parameters(parts):
    """Every prediction made while updates run in the update process equals the prediction of one whole
    parameter version, one of those published between the call's start and end."""
    model, norm, loss, phi, theta = parts
    data = np.random.default_rng(6).normal(size=(400, 4 * J)).astype(np.float32)
    sync = Adapter(model, norm, theta, loss, phi, "sgd", 0.05)
    versions = [np.asarray(sync._state.host).copy()]  # each version's parameters, folded for the host
    for row in data:
        if sync.observe(row[:J], row[J:2 * J], row[2 * J:3 * J], row[3 * J:]):
            versions.append(np.asarray(sync._state.host).copy())
    probe = data[0, :3 * J]
    by_version = [sync._forward(sync._host.views(v), None, probe) for v in versions]
    seen = []
    with Adapter(model, norm, theta, loss, phi, "sgd", 0.05, background=True) as adapter:
        for row in data:
            while adapter.pending_updates >= 16:  # a loaded machine (the first update compiles) must not fall
                time.sleep(0.001)  # a ring behind: dropped batches would make versions the loop never had
            adapter.observe(row[:J], row[J:2 * J], row[2 * J:3 * J], row[3 * J:])
            for _ in range(3):  # predictions race the update process
                before = adapter._process.done
                tau = adapter.predict(probe[:J], probe[J:2 * J], probe[2 * J:])
                seen.append((before, adapter._process.done, tau))
        adapter.wait()
        assert adapter.pending_updates == 0 and adapter.dropped_batches == 0
    for before, after, tau in seen:  # a version is published just before it is counted done
        assert any(np.array_equal(tau, by_version[v]) for v in range(before, min(after + 2, len(by_version))))


@pytest.mark.parametrize("kind", ["single", "per-joint"])
@pytest.mark.parametrize("activation", ["tanh", "relu", "softplus"])
def test_the_host_forward_pass_folds_the_normaliser_exactly(kind, activation):
    """tau = y_std * f((x - x_mean) / x_std) + y_mean, with the normaliser folded into the first and last
    layers and per-joint networks stacked, equals the model's own forward pass to float32 rounding."""
    from fastadapt.adapt.host_forward import HostForward
    from fastadapt.models.mlp import PerJointMLP

    model = InverseDynamicsMLP(J, (6, 5), activation) if kind == "single" else PerJointMLP(J, (6, 5), activation)
    rng = np.random.default_rng(7)
    norm = Normalizer(*(jnp.asarray(rng.normal(size=n) * s + o, jnp.float32)
                        for n, s, o in ((3 * J, 1, 0), (3 * J, 0.5, 2), (J, 1, 0), (J, 0.5, 2))))
    params = model.init(jax.random.PRNGKey(1))
    host = HostForward(model)
    arrays = host.fold(params, norm)
    for x in rng.normal(size=(5, 3 * J)).astype(np.float32) * 3:
        expected = np.asarray(norm.torques(model.apply(params, norm.inputs(jnp.asarray(x)))))
        np.testing.assert_allclose(host(arrays, x), expected, rtol=2e-5, atol=2e-5)


def test_inputs_near_their_limits_pass_and_beyond_them_fail(parts):
    """The one-dot fast check (sum of squared fractions of the limits <= 1) may fail for values that are
    each within their limits; then the exact test decides."""
    from fastadapt.data.trajectory import Limits

    model, norm, loss, phi, theta = parts
    adapter = Adapter(model, norm, theta, limits=Limits(q=1.0, qd=1.0, qdd=1.0, tau=1e5))
    near = [0.9, -0.9, 0.9]
    assert np.isfinite(adapter.predict(near, near, near)).all()  # sum of squares 7.3 > 1, each within
    assert adapter.observe(near, near, near, [1e4, 0, 0]) is False
    with pytest.raises(DataError, match=r"qd = \[0.  1.5 0. \] is beyond the physical limit 1 rad/s"):
        adapter.predict([0, 0, 0], [0, 1.5, 0], [0, 0, 0])
    with pytest.raises(DataError, match="qdd_des must be 3 real numbers, got text"):
        adapter.predict([0, 0, 0], [0, 0, 0], ["a", "b", "c"])
    with pytest.raises(DataError, match="qd has 4 joints, the adapter's model has 3"):  # 3 + 4 + 2 = 9 values
        adapter.predict([0, 0, 0], [0, 0, 0, 0], [0, 0])
    with pytest.raises(DataError, match="q holds NaN"):
        adapter.observe([np.inf, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0])


def test_background_needs_a_host_model_and_update_cpus_needs_background(parts):
    import os

    model, norm, loss, phi, theta = parts
    with pytest.raises(ValueError, match="update_cpus needs background=True"):
        Adapter(model, norm, theta, update_cpus={0})
    with pytest.raises(ValueError, match=r"update_cpus must be a non-empty subset of this process's CPUs"):
        Adapter(model, norm, theta, background=True, update_cpus={max(os.sched_getaffinity(0)) + 1})

    class Linear:
        def init(self, key):
            return {"w": jnp.zeros((3 * J, J))}

        def apply(self, params, x):
            return x @ params["w"]

    with pytest.raises(ValueError, match="background=True needs a model with a host forward pass"):
        Adapter(Linear(), norm, Linear().init(None), background=True)


def test_the_update_process_reports_its_failure_and_ends_with_the_adapter(parts):
    from fastadapt.adapt.update_process import UpdateProcessError

    model, norm, loss, phi, theta = parts
    with pytest.raises(UpdateProcessError, match="(?s)the update process failed.*KeyError: 'w'"):
        Adapter(model, norm, theta, loss, {"v": jnp.zeros(3)}, background=True)  # the structured loss needs 'w'
    adapter = Adapter(model, norm, theta, loss, phi, background=True, update_cpus={min(os.sched_getaffinity(0))})
    process = adapter._process._process
    assert process.is_alive()
    adapter.close()
    assert not process.is_alive() and process.exitcode == 0


def _tick(adapter, row):
    return adapter.observe(row[:J], row[J:2 * J], row[2 * J:3 * J], row[3 * J:])


def test_a_killed_update_process_is_an_error_on_the_next_call_not_a_stale_model(parts):
    import signal

    from fastadapt.adapt.update_process import UpdateProcessError

    model, norm, loss, phi, theta = parts
    with Adapter(model, norm, theta, loss, phi, background=True) as adapter:
        row = np.zeros(4 * J)
        assert adapter.healthy and _tick(adapter, row) is False
        os.kill(adapter._process._process.pid, signal.SIGKILL)
        adapter._process._process.join()
        assert not adapter.healthy
        with pytest.raises(UpdateProcessError, match=r"the update process is gone \(exit code -9, e\.g\. killed\)"):
            _tick(adapter, row)  # the very next call, not a ring of batches later
        with pytest.raises(UpdateProcessError, match="the update process is gone"):
            adapter.predict(row[:J], row[J:2 * J], row[2 * J:3 * J])
        with pytest.raises(UpdateProcessError):
            adapter.wait()


@pytest.mark.slow
def test_a_stopped_update_process_never_blocks_observe_and_the_oldest_batches_are_dropped(parts):
    import signal
    import time

    from fastadapt.adapt.update_process import RING, BatchesDroppedWarning

    model, norm, loss, phi, theta = parts
    data = np.random.default_rng(0).normal(size=(5 * (RING + 40), 4 * J))
    with Adapter(model, norm, theta, loss, phi, "sgd", 0.01, background=True) as adapter:
        pid = adapter._process._process.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.warns(BatchesDroppedWarning, match=f"{RING - 1} batches behind"):
                for row in data:  # 104 batches into a ring of 64, its reader stopped
                    _tick(adapter, row)
                    adapter.predict(row[:J], row[J:2 * J], row[2 * J:3 * J])
            assert time.monotonic() - started < 5  # no wait anywhere (it would be forever)
            assert adapter.dropped_batches == adapter.updates - (RING - 1) == 41
            time.sleep(0.6)
            assert not adapter.healthy and adapter._process.silent_seconds > 0.5
        finally:
            os.kill(pid, signal.SIGCONT)
        adapter.wait(timeout=30)
        assert adapter.dropped_batches == 41 and adapter.pending_updates == 0
        assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(adapter.params))
        time.sleep(0.05)
        assert adapter._process.silent_seconds < 0.5


@pytest.mark.slow
def test_after_close_predict_and_observe_raise(parts):
    from fastadapt.adapt.adapter import AdapterClosedError

    model, norm, loss, phi, theta = parts
    row = np.zeros(4 * J)
    for background in (False, True):
        adapter = Adapter(model, norm, theta, loss, phi, background=background)
        adapter.close()
        assert not adapter.healthy
        with pytest.raises(AdapterClosedError, match=r"predict\(\) on a closed Adapter"):
            adapter.predict(row[:J], row[J:2 * J], row[2 * J:3 * J])
        with pytest.raises(AdapterClosedError, match=r"observe\(\) on a closed Adapter"):
            _tick(adapter, row)


@pytest.mark.parametrize("bad, message", [
    ("abc", r"q must be 3 real numbers, got text: 'abc'"),
    ([1j, 0, 0], r"q must be 3 real numbers, got complex numbers"),
    (np.zeros(3, np.complex64), r"q must be 3 real numbers, got complex numbers"),
    ([[0, 0, 0]], r"q must be a vector of 3 numbers, got shape \(1, 3\)"),
    ([0, 0], r"q has 2 joints, the adapter's model has 3"),
])
def test_inputs_that_are_not_real_vectors_are_refused_by_what_they_are(parts, bad, message):
    model, norm, loss, phi, theta = parts
    adapter = Adapter(model, norm, theta, loss, phi, warmup=False)
    with pytest.raises(DataError, match=message):
        adapter.predict(bad, [0, 0, 0], [0, 0, 0])
