import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fastadapt.checkpoint import load_pytree, save_pytree
from fastadapt.optim import MemoryConfig, adam_with_memory, find_memory, lr_memory, predict_rates, transfer_memory
from fastadapt.optim.lr_memory import group_index


def _dense_step(rates, z_prev, z, centres, lam, xi, clip):
    """The paper's eqs. 11-13 written densely in numpy for one group: returns (update, new rates)."""
    z, z_prev = np.clip(z, -clip, clip), np.clip(z_prev, -clip, clip)
    psi = lambda v: np.exp(-0.5 * ((v[:, None] - centres[None, :]) / lam) ** 2)  # [D, M]
    a = np.clip(z * z_prev, -1, 1)[:, None] * psi(z_prev)
    rates = rates + xi * a.mean(axis=0)
    eta = (psi(z) * rates).sum(1) / psi(z).sum(1)
    return -eta * z, rates


def test_prediction_and_update_match_a_hand_computed_case():
    """M = 3 centres at -1, 0, 1 (lambda = 1), one parameter vector of 2 coordinates, two steps."""
    config = MemoryConfig(eta_init=0.1, num_models=3, clip=1.0, memory_rate=0.2, grouping="all")
    t = lr_memory(config)
    params = jnp.zeros(2)
    state = t.init(params)
    g1, g2 = jnp.array([0.5, -2.0]), jnp.array([0.25, 0.5])  # -2.0 is clipped to -1
    u1, state = t.update(g1, state)
    # step 1: z^0 = 0, so no memory change; every rate is 0.1, so update = -0.1 * clip(g)
    np.testing.assert_allclose(u1, [-0.05, 0.1], rtol=1e-6)
    np.testing.assert_allclose(state.rates, [[0.1, 0.1, 0.1]])
    u2, state = t.update(g2, state)
    # step 2 by hand: z^1 = (0.5, -1), z^2 = (0.25, 0.5); agreements (0.125, -0.5)
    e = np.exp
    psi_prev = np.array([[e(-0.5 * 1.5**2), e(-0.5 * 0.5**2), e(-0.5 * 0.5**2)],
                         [e(-0.5 * 0.0), e(-0.5 * 1.0), e(-0.5 * 4.0)]])
    rates = 0.1 + 0.2 * (0.125 * psi_prev[0] - 0.5 * psi_prev[1]) / 2
    psi_now = np.array([[e(-0.5 * 1.25**2), e(-0.5 * 0.25**2), e(-0.5 * 0.75**2)],
                        [e(-0.5 * 1.5**2), e(-0.5 * 0.5**2), e(-0.5 * 0.5**2)]])
    eta = (psi_now * rates).sum(1) / psi_now.sum(1)
    np.testing.assert_allclose(state.rates[0], rates, rtol=1e-6)
    np.testing.assert_allclose(u2, -eta * np.array([0.25, 0.5]), rtol=1e-6)
    np.testing.assert_allclose(predict_rates(state.rates[0], g2, config), eta, rtol=1e-6)


def test_windowed_memory_equals_the_dense_formula_at_m_200():
    config = MemoryConfig(eta_init=0.01, num_models=200, clip=1.0, memory_rate=0.05, grouping="all")
    t = lr_memory(config)
    rng = np.random.default_rng(0)
    zs = [rng.normal(scale=0.6, size=300).astype(np.float32) for _ in range(4)]
    state = t.init(jnp.zeros(300))
    rates, prev = np.full(200, 0.01), np.zeros(300)
    for z in zs:
        update, state = t.update(jnp.asarray(z), state)
        expected, rates = _dense_step(rates, prev, z, np.linspace(-1, 1, 200), 2 / 199, 0.05, 1.0)
        prev = z
        np.testing.assert_allclose(state.rates[0], rates, rtol=1e-4, atol=1e-8)
        np.testing.assert_allclose(update, expected, rtol=1e-4, atol=1e-9)


def test_each_layer_reads_and_writes_only_its_own_memory():
    """Three groups (two layers of w, b and a lone vector) in one pass: each group's rates and updates
    follow the dense formula on that group's coordinates alone, including values near both ends of
    [-clip, clip] where the window meets the first and the last centre."""
    config = MemoryConfig(eta_init=0.01, num_models=50, clip=1.0, memory_rate=0.05, cutoff=5.0)  # window ~ exact
    t = lr_memory(config)
    shapes = {"a": {"w": (4, 5), "b": (5,)}, "b": {"w": (5, 2), "b": (2,)}, "c": (7,)}
    params = jax.tree.map(lambda shape: jnp.zeros(shape), shapes, is_leaf=lambda x: isinstance(x, tuple))
    index, groups = group_index(params, "layer")
    assert groups == 3
    leaves, treedef = jax.tree.flatten(params)
    rng = np.random.default_rng(1)
    state = t.init(params)
    rates, prev = [np.full(50, 0.01) for _ in range(groups)], [None] * groups
    for step in range(3):
        grads = [rng.normal(scale=0.7, size=leaf.shape).astype(np.float32) for leaf in leaves]
        grads[0].flat[:2] = [1.3, -0.999]  # clipped to the last centre, and next to the first
        update, state = t.update(treedef.unflatten([jnp.asarray(g) for g in grads]), state)
        update_leaves = jax.tree.leaves(update)
        for g in range(groups):
            members = [i for i, k in enumerate(index) if k == g]
            z = np.concatenate([grads[i].ravel() for i in members])
            previous = np.zeros_like(z) if prev[g] is None else prev[g]
            expected, rates[g] = _dense_step(rates[g], previous, z, np.linspace(-1, 1, 50), 2 / 49, 0.05, 1.0)
            prev[g] = np.clip(z, -1, 1)
            np.testing.assert_allclose(state.rates[g], rates[g], rtol=1e-5, atol=1e-9)
            got = np.concatenate([np.asarray(update_leaves[i]).ravel() for i in members])
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9)


def _run(transform, grads, params):
    state = transform.init(params)
    for g in grads:
        _, state = transform.update(g, state)
    return state


def test_agreeing_gradients_raise_and_flipping_gradients_lower_the_rates():
    config = MemoryConfig(eta_init=0.01, num_models=20, clip=1.0, memory_rate=0.01, grouping="all")
    params = jnp.zeros(4)
    agree = _run(lr_memory(config), [jnp.full(4, 0.4)] * 5, params)
    flip = _run(lr_memory(config), [jnp.full(4, 0.4 * (-1) ** k) for k in range(5)], params)
    near = predict_rates(agree.rates[0], jnp.array([0.4]), config)[0]
    assert near > 0.01 and predict_rates(flip.rates[0], jnp.array([0.4]), config)[0] < 0.01
    assert float(jnp.min(flip.rates)) >= 0.0  # rates never go negative (min_rate)
    far = predict_rates(agree.rates[0], jnp.array([-0.9]), config)[0]  # local: far models barely move
    assert abs(float(far) - 0.01) < 0.1 * abs(float(near) - 0.01)


def test_groups_are_layers_by_default():
    params = [{"w": jnp.ones((2, 3)), "b": jnp.ones(3)}, {"w": jnp.ones((3, 1)), "b": jnp.ones(1)}]
    assert group_index(params, "layer") == ([0, 0, 1, 1], 2)
    assert group_index(params, "leaf") == ([0, 1, 2, 3], 4)
    assert group_index(params, "all") == ([0, 0, 0, 0], 1)
    state = lr_memory(MemoryConfig(num_models=10)).init(params)
    assert state.rates.shape == (2, 10)


def test_saved_memory_reloads_exactly_and_keeps_learning(tmp_path):
    config = MemoryConfig(eta_init=0.01, num_models=50, memory_optimizer="adam")
    t = lr_memory(config)
    params = [{"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)}]
    rng = np.random.default_rng(1)
    grads = [jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params) for _ in range(6)]
    state = _run(t, grads[:3], params)
    save_pytree(tmp_path / "memory.npz", state)
    loaded, _ = load_pytree(tmp_path / "memory.npz", t.init(params))
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(state)):
        np.testing.assert_array_equal(a, b)
    for g in grads[3:]:
        u1, state = t.update(g, state)
        u2, loaded = t.update(g, loaded)
        for a, b in zip(jax.tree.leaves(u1), jax.tree.leaves(u2)):
            np.testing.assert_array_equal(a, b)


def test_composes_with_optax_transforms_under_jit():
    params = {"x": jnp.array([1.0, -2.0])}
    loss = lambda p: jnp.sum(p["x"] ** 2)
    config = MemoryConfig(eta_init=0.05, num_models=30)
    chained = adam_with_memory(config)
    adam_direction, memory = optax.scale_by_adam(), lr_memory(config)

    @jax.jit
    def step(p, s):
        updates, s = chained.update(jax.grad(loss)(p), s, p)
        return optax.apply_updates(p, updates), s

    p, s = params, chained.init(params)
    p2, s_dir, s_mem = params, adam_direction.init(params), memory.init(params)
    for _ in range(20):
        p, s = step(p, s)
        d, s_dir = adam_direction.update(jax.grad(loss)(p2), s_dir)
        u, s_mem = memory.update(d, s_mem)
        p2 = optax.apply_updates(p2, u)
    np.testing.assert_allclose(p["x"], p2["x"], rtol=1e-5)
    assert float(loss(p)) < float(loss(params))
    # clipping in front of the memory, and the memory found inside the chain state
    clipped = optax.chain(optax.clip_by_global_norm(1.0), lr_memory(config))
    state = clipped.init(params)
    updates, state = clipped.update({"x": jnp.array([30.0, 40.0])}, state)
    np.testing.assert_allclose(updates["x"], [-0.05 * 0.6, -0.05 * 0.8], rtol=1e-5)
    assert find_memory(state).count == 1


def test_transfer_carries_rates_to_a_new_task_and_rejects_other_shapes():
    config = MemoryConfig(eta_init=0.01, num_models=20)
    params = {"x": jnp.zeros(3)}
    old = _run(adam_with_memory(config), [{"x": jnp.full(3, 0.5)}] * 4, params)
    new = transfer_memory(adam_with_memory(config).init(params), old)
    np.testing.assert_array_equal(find_memory(new).rates, find_memory(old).rates)
    np.testing.assert_array_equal(find_memory(new).previous, jnp.zeros(3))
    assert int(new[0].count) == 0  # Adam's moments start afresh
    with pytest.raises(ValueError, match="cannot transfer a memory of shape"):
        transfer_memory(lr_memory(config).init({"x": jnp.zeros(3), "y": {"z": jnp.zeros(1)}}), old)
    with pytest.raises(ValueError, match="holds no learning-rate memory"):
        find_memory(optax.sgd(0.1).init(params))


@pytest.mark.parametrize("field,value,message", [
    ("num_models", 1, "num_models >= 2"), ("clip", 0.0, "clip must be > 0"),
    ("memory_optimizer", "rmsprop", "unknown memory optimizer 'rmsprop'"), ("grouping", "row", "unknown grouping 'row'"),
    ("memory_rate", float("nan"), "memory_rate must be finite and >= 0, got nan"), ("eta_init", -1.0, "eta_init must be"),
])
def test_bad_memory_config_is_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        MemoryConfig(**{field: value})


def test_one_scatter_and_one_scatter_per_offset_give_the_same_memory(monkeypatch):
    """The memory update scatters its terms in one [D, 2K + 1] update on one CPU and in 2K + 1 [D]
    updates on several; both are the same sums."""
    import importlib

    module = importlib.import_module("fastadapt.optim.lr_memory")
    config = MemoryConfig(eta_init=0.01, num_models=40, clip=1.0, memory_rate=0.05)
    params = {"a": {"w": jnp.zeros((6, 5)), "b": jnp.zeros(5)}, "b": {"w": jnp.zeros((5, 3))}}
    rng = np.random.default_rng(2)
    grads = [jax.tree.map(lambda p: jnp.asarray(rng.normal(scale=0.5, size=p.shape), jnp.float32), params)
             for _ in range(3)]
    results = []
    for one in (True, False):
        monkeypatch.setattr(module, "_one_scatter", lambda one=one: one)
        t = lr_memory(config)
        state = t.init(params)
        for g in grads:
            update, state = jax.jit(t.update)(g, state)
        results.append((state.rates, update))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-6, atol=1e-10)
    for a, b in zip(jax.tree.leaves(results[0][1]), jax.tree.leaves(results[1][1])):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-10)
