"""ML3's loss shaping (section 4.2): the shaped task losses and their meta-gradients, the trapping starts,
the Lagrangian model and the exact dynamics behind the physics prior, and architecture transfer."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_meta import _check_against_central_differences, enable_x64

from fastadapt.cli import main
from fastadapt.data.trajectory import DataError
from fastadapt.meta.algorithm import meta_objective
from fastadapt.meta.trainer import MetaTrainer
from fastadapt.experiments.ml3 import physics_prior, shaped_sine
from fastadapt.experiments.ml3.transfer import Config as TransferConfig, parse_architecture
from fastadapt.models.lagrangian import LagrangianModel
from fastadapt.sim import rigid_body
from fastadapt.sim.rigid_body import PLANAR_LINK_LENGTH, PLANAR_LINK_MASS, dynamics_dataset

SMALL_SINE = dict(points=200, test_tasks=3, eval_steps=40, start_range=8.0)


def test_shaped_sine_task_loss_is_the_distance_to_the_true_frequency():
    config = shaped_sine.Config(**SMALL_SINE)
    shaped, plain = shaped_sine.shaped_sine_task(config, True), shaped_sine.shaped_sine_task(config, False)
    theta, nu = {"omega": jnp.float32(2.5)}, jnp.float32(0.7)
    assert float(shaped.task_loss(theta, nu)) == pytest.approx((2.5 - 0.7) ** 2, rel=1e-6)
    x = np.asarray(plain.x)
    fit, slope = shaped_sine.sine_fit_mse(2.5, x, np.sin(0.7 * x))
    assert float(plain.task_loss(theta, nu)) == pytest.approx(fit, rel=1e-5)
    # the shaping term's gradient points at nu from everywhere; MSE's points into the nearest valley
    grad = lambda task, omega: float(jax.grad(lambda w: task.task_loss({"omega": w}, nu))(jnp.float32(omega)))
    assert grad(plain, 2.5) == pytest.approx(slope, rel=1e-4)
    assert grad(shaped, 2.5) == pytest.approx(2 * (2.5 - 0.7), rel=1e-6)
    assert grad(shaped, 7.0) > 0 and grad(plain, 7.0) < 0  # from omega = 7 MSE climbs away from nu = 0.7


@pytest.mark.slow
def test_shaped_meta_gradient_matches_finite_differences():
    with enable_x64():
        config = shaped_sine.Config(**{**SMALL_SINE, "points": 20})  # few ReLU kinks near the evaluation points
        task = shaped_sine.shaped_sine_task(config, True)
        task = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), task)
        loss = shaped_sine.meta_loss(config)
        phi = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), loss.init(jax.random.PRNGKey(0)))
        theta, nu = {"omega": jnp.float64(3.0)}, jnp.float64(1.1)
        objective = lambda p: meta_objective(task, loss, 0.1, p, theta, nu, nu)[0]
        _check_against_central_differences(objective, phi, seed=1)
        # the objective is (omega_1 - nu)^2 of the step taken with M_phi: it reads theta, not the data
        value, new = meta_objective(task, loss, 0.1, phi, theta, nu, nu)
        assert float(value) == pytest.approx((float(new["omega"]) - 1.1) ** 2, rel=1e-9)


def test_meta_test_starts_trap_gradient_descent_on_mse():
    config = shaped_sine.Config(**SMALL_SINE)
    task = shaped_sine.shaped_sine_task(config, True)
    x = np.asarray(task.x, np.float64)
    for nu, omega in zip(np.asarray(task.test_frequency), np.asarray(task.test_start)):
        for _ in range(config.eval_steps):
            omega -= config.alpha * shaped_sine.sine_fit_mse(omega, x, np.sin(nu * x))[1]
        assert abs(omega - nu) > config.trap_distance
    with pytest.raises(DataError, match="found only 0 starts that trap gradient descent on MSE"):
        shaped_sine.shaped_sine_task(shaped_sine.Config(**{**SMALL_SINE, "start_range": 0.01, "frequency_min": 0.5,
                                                           "frequency_max": 0.51}), True)


def test_planar_arm_dynamics_are_the_closed_form():
    """PyBullet's M(q) and u for the 2-link arm against the textbook equations (thin rods, l, m)."""
    data = dynamics_dataset("planar", 1, 50, 0.02, seed=0)
    q, qd, qdd, u, M = (data[k][0].astype(np.float64) for k in ("q", "qd", "qdd", "u", "M"))
    m, l = PLANAR_LINK_MASS, PLANAR_LINK_LENGTH
    inertia, c = m * l * l / 12, l / 2
    cos2, h = np.cos(q[:, 1]), -m * l * c * np.sin(q[:, 1])
    m11 = 2 * inertia + m * c ** 2 + m * (l ** 2 + c ** 2 + 2 * l * c * cos2)
    m12 = inertia + m * (c ** 2 + l * c * cos2)
    m22 = inertia + m * c ** 2
    np.testing.assert_allclose(M[:, 0, 0], m11, atol=1e-5)
    np.testing.assert_allclose(M[:, 0, 1], m12, atol=1e-5)
    np.testing.assert_allclose(M[:, 1, 1], m22, atol=1e-5)
    np.testing.assert_allclose(u[:, 0], m11 * qdd[:, 0] + m12 * qdd[:, 1] + h * (2 * qd[:, 0] * qd[:, 1] + qd[:, 1] ** 2),
                               atol=1e-4)
    np.testing.assert_allclose(u[:, 1], m12 * qdd[:, 0] + m22 * qdd[:, 1] - h * qd[:, 0] ** 2, atol=1e-4)


@pytest.mark.slow
def test_lagrangian_model_inertia_is_positive_definite_and_enters_linearly():
    model = LagrangianModel(3, inertia_scale=(2.0, 1.0, 0.5), torque_scale=(5.0, 3.0, 1.0), velocity_scale=(1.0,) * 3)
    theta = model.init(jax.random.PRNGKey(0))
    theta = jax.tree.map(lambda a: 3.0 * a, theta)  # large weights: far from the initial region
    q = jax.random.normal(jax.random.PRNGKey(1), (64, 3)) * 3
    inertia = np.asarray(model.inertia(theta, q), np.float64)
    np.testing.assert_allclose(inertia, np.swapaxes(inertia, -1, -2), rtol=1e-5, atol=1e-6)
    assert np.linalg.eigvalsh(inertia).min() > 0
    qd, qdd = jnp.ones((64, 3)), jax.random.normal(jax.random.PRNGKey(2), (64, 3))
    u = model.apply(theta, q, qd, qdd)
    np.testing.assert_allclose(u - model.apply(theta, q, qd, 0 * qdd), np.einsum("bij,bj->bi", inertia, qdd),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_lagrangian_model_starts_near_the_mean_diagonal_inertia():
    """At init M_theta(q) ~ diag(D): the diagonal softplus is shifted to 1 and the couplings start small."""
    scale = (1.7, 2.5, 0.5, 0.5, 0.01, 0.009, 0.001)  # the iiwa's D: three orders of magnitude
    model = LagrangianModel(7, inertia_scale=scale, torque_scale=(1.0,) * 7, velocity_scale=(1.0,) * 7)
    q = jax.random.uniform(jax.random.PRNGKey(1), (32, 7), minval=-2, maxval=2)
    inertia = np.asarray(model.inertia(model.init(jax.random.PRNGKey(0)), q))
    unit = inertia / np.sqrt(np.outer(scale, scale))  # M_ij / sqrt(D_i D_j)
    np.testing.assert_allclose(np.diagonal(unit, axis1=-2, axis2=-1), 1.0, atol=0.35)
    assert np.abs(unit - np.diagonal(unit, axis1=-2, axis2=-1)[..., None] * np.eye(7)).max() < 0.35


@pytest.mark.slow
def test_physics_prior_shaping_term_is_the_scaled_inertia_error():
    config = physics_prior.quick(physics_prior.Config())
    data = {"train": dynamics_dataset("planar", 2, 20, 0.02, 0), "test": dynamics_dataset("planar", 1, 20, 0.02, 1)}
    shaped = physics_prior.physics_prior_task(config, data, True)
    plain = physics_prior.physics_prior_task(config, data, False)
    theta = shaped.start(jax.random.PRNGKey(0))
    batch = {k: v[:8] for k, v in shaped.train.items()}
    d = np.asarray(shaped.model.inertia_scale)
    error = (np.asarray(shaped.model.inertia(theta, batch["q"])) - np.asarray(batch["M"])) / np.sqrt(np.outer(d, d))
    mse = float(plain.task_loss(theta, batch))
    assert float(shaped.task_loss(theta, batch)) == pytest.approx(mse + np.mean(error ** 2), rel=1e-5)
    # the shaping term pulls the inertia network only; the unshaped loss moves it through u = M qdd as well
    g_shape = jax.grad(lambda t: shaped.inertia_error(t, batch))(theta)
    assert all(float(jnp.abs(leaf).max()) == 0 for leaf in jax.tree.leaves(g_shape["bias"]))
    assert any(float(jnp.abs(leaf).max()) > 0 for leaf in jax.tree.leaves(g_shape["inertia"]))
    # the paper's form: the shaping term alone, unscaled (M_theta - M)^2
    paper = physics_prior.physics_prior_task(dataclasses.replace(config, shaped_beta=0.0, inertia_scaled=False), data, True)
    raw = np.asarray(shaped.model.inertia(theta, batch["q"])) - np.asarray(batch["M"])
    assert float(paper.task_loss(theta, batch)) == pytest.approx(np.mean(raw ** 2), rel=1e-5)
    # beta, gamma and the inertia unit are data: every task loss shares one compiled trainer
    assert jax.tree.structure(shaped) == jax.tree.structure(plain) == jax.tree.structure(paper)
    loss = physics_prior.meta_loss(config, 2)
    assert MetaTrainer(config, shaped, loss)._epoch is MetaTrainer(config, plain, loss)._epoch


def test_physics_prior_trajectories_are_saved_and_read_back_without_drawing_again(tmp_path, monkeypatch):
    config = physics_prior.Config(arms=("planar",), train_trajectories=2, test_trajectories=1, trajectory_steps=8)
    first = physics_prior.arm_data(config, "planar", tmp_path)
    assert (tmp_path / "trajectories.npz").exists()

    def no_simulator(*args):
        raise AssertionError("trajectories were drawn again instead of read back")

    monkeypatch.setattr(rigid_body, "dynamics_dataset", no_simulator)
    again = physics_prior.arm_data(config, "planar", tmp_path)
    for part in ("train", "test"):
        for name in physics_prior.FIELDS:
            np.testing.assert_array_equal(again[part][name], first[part][name])
    other = dataclasses.replace(config, trajectory_steps=10)
    with pytest.raises(ValueError, match="trajectories.npz holds trajectories drawn with .*'trajectory_steps': 8.*"
                                         "this run asks for .*'trajectory_steps': 10.*use another run directory"):
        physics_prior.arm_data(other, "planar", tmp_path)


def test_bad_shaping_and_transfer_input_is_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="'shaped_beta' and 'shaped_gamma' are both 0"):
        shaped_sine.Config(shaped_beta=0.0, shaped_gamma=0.0)
    assert main(["ml3", "physics-prior", "--out", str(tmp_path / "a"), "arms=planar,sawyer"]) == 2
    assert "unknown value 'sawyer', expected one of iiwa, planar" in capsys.readouterr().err
    assert parse_architecture("100x50-tanh") == ((100, 50), "tanh")
    for bad in ("40x40", "40xa-relu", "0x4-relu"):
        with pytest.raises(ValueError, match=f"'{bad}' is not an architecture like 40x40-relu"):
            TransferConfig(architectures=(bad,))
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        TransferConfig(architectures=("40-gelu",))


TINY = ["--no-progress", "epochs=1", "batches_per_epoch=2", "seeds=1", "eval_every=1", "eval_steps=4", "eval_seeds=2"]


@pytest.mark.slow
@pytest.mark.parametrize("name, extra, figure", [
    ("shaped-sine", ["test_tasks=2", "points=100", "iters_max=2"], "fig5ab_shaped_sine.png"),
    ("physics-prior", ["arms=planar", "train_trajectories=2", "test_trajectories=1", "trajectory_steps=20",
                       "iters_max=2"], "fig5cd_physics_prior.png"),
    ("transfer", ["test_tasks=2", "architectures=40x40-relu,20x20x20-tanh"], "fig_architecture_transfer.png"),
])
def test_ml3_shaping_commands_write_figures_and_metrics(tmp_path, name, extra, figure):
    assert main(["ml3", name, "--out", str(tmp_path)] + TINY + extra) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["figures"] == [figure] and (tmp_path / figure).exists()
    if name == "shaped-sine":
        assert set(metrics["meta_test_final_mse"]) == {"shaped ML3", "unshaped ML3", "MSE"}
        assert (tmp_path / "loss-shaped" / "loss.npz").exists() and (tmp_path / "loss-unshaped" / "loss.npz").exists()
    if name == "transfer":
        assert set(metrics["meta_test_final_mse"]) == {"40x40-relu", "20x20x20-tanh"}


@pytest.mark.parametrize("module_name", ["shaped_sine", "physics_prior"])
def test_the_help_of_shaped_beta_and_gamma_says_what_the_task_loss_does_with_them(module_name):
    """L_T = beta * (plain task loss) + gamma * (shaping term): the keys' help must say so (it was swapped)."""
    import importlib

    from fastadapt.config import describe_keys

    module = importlib.import_module(f"fastadapt.experiments.ml3.{module_name}")
    help_of = {row["key"]: row["help"] for row in describe_keys(module.Config())}
    assert "plain" in help_of["shaped_beta"] and "shaping" not in help_of["shaped_beta"]
    assert "shaping term" in help_of["shaped_gamma"]
    config = dataclasses.replace(module.Config(), shaped_beta=2.0, shaped_gamma=0.0) if module_name == "shaped_sine" else None
    if config is not None:  # beta alone: the shaped task loss is 2 x the plain one
        task = module.shaped_sine_task(config, shaped=True)
        theta, nu = {"omega": jnp.float32(1.3)}, jnp.float32(2.0)
        assert float(task.task_loss(theta, nu)) == pytest.approx(2.0 * float(task.score(theta, nu)), rel=1e-6)
