"""MountainCar shaping: gymnax's car stepped with gradients, the shaped task loss by hand, the command; the
authors' car and protocol (protocol=paper): steps by hand, one initial policy, the gradient through the rollout."""

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import enable_x64

from fastadapt.cli import main
from fastadapt.experiments.rl import mountaincar
from fastadapt.rl.mountain_car import FrictionMountainCar, MountainCar


def test_the_car_is_gymnax_continuous_mountain_car_with_its_gradients():
    car = MountainCar(action_repeat=1)
    p, v, u = -0.5, 0.01, 0.6
    velocity = v + 0.0015 * u - 0.0025 * math.cos(3 * p)
    assert [float(x) for x in car.step(jnp.asarray([p, v]), jnp.asarray([u]))] == pytest.approx([p + velocity, velocity], rel=1e-5)
    with enable_x64():
        twice = MountainCar(action_repeat=2)
        final = lambda a: twice.step(jnp.asarray([-0.5, 0.0]), jnp.asarray([a]))[0]
        numeric = (final(0.3 + 1e-6) - final(0.3 - 1e-6)) / 2e-6
        assert float(jax.grad(final)(0.3)) == pytest.approx(float(numeric), rel=1e-6)
        # by hand: p1 = p0 + v1 (dp1/da = 0.0015), v2 = v1 + 0.0015 a - 0.0025 cos(3 p1), p2 = p1 + v2
        p1 = -0.5 + 0.0015 * 0.3 - 0.0025 * math.cos(-1.5)
        by_hand = 0.0015 + (0.0015 + 0.0015 + 0.0025 * 3 * math.sin(3 * p1) * 0.0015)
        assert float(jax.grad(final)(0.3)) == pytest.approx(by_hand, rel=1e-6)


def test_shaped_and_unshaped_task_losses_by_hand():
    config = mountaincar.Config(goal_position=0.4, intermediate_position=-1.0)
    shaped = mountaincar.mountain_car_task(config, shaped=True)
    positions = jnp.asarray([-0.6, -0.8, 0.0, 0.2])
    assert float(shaped.shaped_loss(positions)) == pytest.approx((0.4 + 0.2) / 2 + (0.4 + 0.2) / 2)
    assert float(shaped.unshaped_loss(positions)) == pytest.approx((1.0 + 1.2 + 0.4 + 0.2) / 4)


def test_bad_mountain_car_config_is_refused():
    with pytest.raises(ValueError, match=r"'goal_position' \(-0.7\) must lie right of 'start_position' \(-0.5\)"):
        mountaincar.Config(goal_position=-0.7)
    with pytest.raises(ValueError, match=r"'intermediate_position' \(-2.0\) is outside the track"):
        mountaincar.Config(intermediate_position=-2.0)


@pytest.mark.slow
def test_mountaincar_command_writes_figure_and_metrics(tmp_path):
    args = ["rl", "mountaincar", "--quick", "--out", str(tmp_path), "--no-progress", "epochs=2", "eval_every=2",
            "batches_per_epoch=2", "horizon=10", "eval_steps=3", "ilqr_iterations=2"]
    assert main(args) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["final_distance"]) == {"shaped ML3", "unshaped ML3", "task loss", mountaincar.TUNED, "iLQR"}
    assert metrics["task_loss_best_rate"] in [0.05 * m for m in (1, 10, 100, 1000)]
    assert len(metrics["ilqr_final_distance"]) <= 3 and metrics["outer_iterations"] == 4
    assert (tmp_path / "fig6ab_mountain_car.png").exists()
    assert main(["rl", "mountaincar", "--out", str(tmp_path / "bad"), "goal_position=-0.7"]) == 2
    # the authors' protocol, tiny: one meta-training run per seed, each its own subdirectory
    paper = tmp_path / "paper"
    assert main(["rl", "mountaincar", "--paper", "--out", str(paper), "--no-progress", "epochs=1", "batches_per_epoch=2",
                 "eval_every=1", "seeds=2", "eval_steps=3", "loss_hidden=8", "ilqr_iterations=2", "fresh_runs=3"]) == 0
    metrics = json.loads((paper / "metrics.json").read_text())
    assert metrics["protocol"] == "paper" and metrics["outer_iterations"] == 2
    assert set(metrics["by_updates"]) == {"0", "1", "2", "3"} == set(metrics["fresh_starts"])
    assert len(metrics["fresh_starts"]["3"]["shaped ML3"]["per_seed"]) == 2
    assert (paper / "fresh_starts_mountain_car.png").exists()
    assert len(metrics["final_distance"]["shaped ML3"]["per_seed"]) == 2
    assert all((paper / f"seed-{s}" / "loss-shaped" / "loss.npz").exists() for s in range(2))
    assert main(["rl", "mountaincar", "--paper", "--quick", "--out", str(tmp_path / "both")]) == 2


def test_a_linear_policy_solves_the_car_but_the_shaped_loss_points_away_from_it_at_small_gains():
    """What docs/RESULTS.md says of Fig. 6: u = tanh(k v / 0.07) reaches the goal for k = 3 and not for
    k = 0.3, and the shaped task loss's gradient in k at k = 0.3 is positive (descent lowers k)."""
    task = mountaincar.mountain_car_task(mountaincar.Config(), shaped=True)
    policy = lambda k: {"w": jnp.asarray([[0.0], [k]]), "b": jnp.zeros(1)}
    assert float(task.score(policy(3.0), None)) == 0.0
    assert float(task.score(policy(0.3), None)) > 0.9
    shaped_loss = lambda k: task.shaped_loss(task.rollout(policy(k))[0][1:, 0])
    assert float(jax.grad(shaped_loss)(0.3)) > 0


# --- the authors' protocol (protocol=paper) -------------------------------------------------------------

def friction_step_by_hand(p, v, u):
    """The ML3 authors' car, one step, unlimited: v' = v + dt (g m cos 3p + u / m - k v), p' = p + dt v'."""
    v = v + 0.1 * (-9.8 * 0.2 * math.cos(3 * p) + min(max(u, -0.25), 0.25) / 0.2 - 0.3 * v)
    return p + 0.1 * v, v


def test_the_authors_car_against_steps_by_hand():
    car = FrictionMountainCar()
    step = lambda p, v, u: [float(x) for x in car.step(jnp.asarray([p, v]), jnp.asarray([u]))]
    assert step(-0.5, 0.1, 0.2) == pytest.approx(friction_step_by_hand(-0.5, 0.1, 0.2), rel=1e-5)
    # the action is clipped to +-0.25, with a zero gradient beyond
    assert step(-0.5, 0.1, 1.0) == pytest.approx(friction_step_by_hand(-0.5, 0.1, 0.25), rel=1e-5)
    assert float(jax.grad(lambda u: car.step(jnp.asarray([-0.5, 0.1]), u[None])[1])(1.0)) == 0.0
    # past the right end the position stops at 0.5; speeds stop at +-1.5
    p, v = friction_step_by_hand(0.45, 1.4, 0.25)
    assert p > 0.5 and step(0.45, 1.4, 0.25) == pytest.approx([0.5, v], rel=1e-5)
    assert friction_step_by_hand(-math.pi / 6, 1.6, 0.25)[1] > 1.6 and step(-math.pi / 6, 1.6, 0.25)[1] == pytest.approx(1.5)
    # the left wall: clipped to -1.2, and a car moving left stops
    p, v = friction_step_by_hand(-1.15, -0.8, -0.25)
    assert p < -1.2 and v < 0 and step(-1.15, -0.8, -0.25) == pytest.approx([-1.2, 0.0], abs=1e-6)


def test_the_authors_car_limits_are_straight_through_as_their_data_assignments():
    """Writing the limits into ``.data`` keeps the unlimited step's gradient: the limited step's Jacobian
    at a clipped state equals the unlimited formula's."""
    car = FrictionMountainCar()
    with enable_x64():
        state = jnp.asarray([0.45, 1.4])
        unlimited = lambda s: jnp.stack(
            [s[0] + 0.1 * (s[1] + 0.1 * (-1.96 * jnp.cos(3 * s[0]) + 1.25 - 0.3 * s[1])),
             s[1] + 0.1 * (-1.96 * jnp.cos(3 * s[0]) + 1.25 - 0.3 * s[1])])
        limited = jax.jacobian(lambda s: car.step(s, jnp.asarray([0.25])))(state)
        np.testing.assert_allclose(np.asarray(limited), np.asarray(jax.jacobian(unlimited)(state)), rtol=1e-12)
        assert float(car.step(state, jnp.asarray([0.25]))[0]) == 0.5


def paper_config(**overrides):
    from fastadapt.config import build_config

    keys = [f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in overrides.items()]
    return build_config(mountaincar.Config(), keys, paper=mountaincar.PAPER_KEYS)


def test_the_paper_protocol_reuses_one_initial_policy_per_seed():
    config = paper_config(seeds=2)
    shaped = mountaincar.mountain_car_task(config, shaped=True)
    unshaped = mountaincar.mountain_car_task(config, shaped=False)
    other_seed = mountaincar.mountain_car_task(config, shaped=True, seed=1)
    leaves = lambda tree: [np.asarray(x) for x in jax.tree.leaves(tree)]
    starts = [shaped.start(jax.random.PRNGKey(k)) for k in range(3)]
    starts += [shaped.eval_problem(split, jax.random.PRNGKey(5), 3, 4)[0] for split in shaped.eval_splits]
    starts.append(unshaped.start(jax.random.PRNGKey(9)))
    for theta in starts:  # every outer iteration and every meta-test run, shaped or not
        for a, b in zip(leaves(theta), leaves(shaped.theta0)):
            np.testing.assert_array_equal(a, b)
    assert not np.allclose(leaves(other_seed.theta0)[0], leaves(shaped.theta0)[0])
    # the authors' policy: 2 -> 200 -> 1, no biases, torch's uniform initialisation, clipped output
    w1, w2 = leaves(shaped.theta0)
    assert w1.shape == (2, 200) and w2.shape == (200, 1)
    assert np.abs(w1).max() <= 1 / math.sqrt(2) and np.abs(w2).max() <= 1 / math.sqrt(200)
    assert np.abs(w1).max() > 0.6 and np.abs(w2).max() > 0.06


def test_fresh_start_curves_train_the_fixed_start_losses_from_fresh_policies():
    """The "why" figure's runs: the same loss from fresh random policies (each run its own, the same for
    every loss), not from theta_0; their first column is each fresh policy's own score, and a run of the
    curve is SGD on the loss from that policy, step by step."""
    from fastadapt.meta.algorithm import inner_step
    from fastadapt.meta.evaluation import fresh_start_curves
    from fastadapt.meta.trainer import MetaTrainer

    config = paper_config(loss_hidden=(8,), horizon=6, shaped_states=2, eval_steps=2)
    task, loss = mountaincar.mountain_car_task(config, shaped=True), mountaincar.meta_loss(config)
    params = [loss.init(jax.random.PRNGKey(s)) for s in range(2)]
    key = jax.random.PRNGKey(3)
    curves = fresh_start_curves(config, [(task, p) for p in params], loss, "meta-test", key, 3, config.alpha)
    assert curves["ML3"].shape == (2, 3, 3) and curves["task loss"].shape == (6, 3)
    fresh = MetaTrainer(dataclasses.replace(config, seeds=1, eval_seeds=3), dataclasses.replace(task, fresh_starts=True), loss)
    starts = fresh.eval_starts("meta-test", key)
    first = [jax.tree.map(lambda a: a[r], starts) for r in range(3)]
    assert not np.allclose(jax.tree.leaves(first[0])[0], jax.tree.leaves(first[1])[0])
    assert not np.allclose(jax.tree.leaves(first[0])[0], jax.tree.leaves(task.theta0)[0])
    for r, theta in enumerate(first):
        expected = [float(task.score(theta, None))]
        for _ in range(2):
            theta = inner_step(task, loss, config.alpha, params[1], theta, jnp.zeros(()))
            expected.append(float(task.score(theta, None)))
        np.testing.assert_allclose(curves["ML3"][1, r], expected, rtol=1e-4, atol=1e-6)
        assert curves["task loss"][r, 0] == pytest.approx(expected[0], rel=1e-5)


def test_the_paper_meta_loss_gradient_runs_through_the_rollout():
    """grad_theta M_phi with the states not detached (the authors') against central finite differences
    (with the final distance, a constant input to M_phi, held at its value at theta), and unlike the
    gradient with the states held constant (ours)."""
    from fastadapt.meta.algorithm import learned_loss

    with enable_x64():
        # a short rollout that touches no limit, so that the straight-through gradient is the true one
        config = paper_config(loss_hidden=(16, 16), horizon=6, shaped_states=2)
        task = mountaincar.mountain_car_task(config, shaped=True)
        task = dataclasses.replace(task, theta0=jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), task.theta0),
                                   start_state=jnp.asarray(task.start_state, jnp.float64))
        loss = mountaincar.meta_loss(config)
        phi = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), loss.init(jax.random.PRNGKey(3)))
        theta = task.theta0
        states, actions = task.rollout(theta)
        assert float(jnp.abs(states[:, 1]).max()) < 1.5 and float(jnp.abs(actions).max()) < 0.25
        grads = jax.grad(lambda th: learned_loss(task, loss, phi, th, None))(theta)
        final_distance = task.loss_inputs(theta, None)[1]
        assert float(final_distance[0]) == pytest.approx(float(jnp.linalg.norm(states[-1] - task.goal)))

        def held(th):
            actions, _, extra = task.loss_inputs(th, None)
            return loss.apply(phi, actions, final_distance, extra)

        direction = jax.tree.map(lambda a: jnp.asarray(np.random.default_rng(0).normal(size=a.shape)), theta)
        shift = lambda h: jax.tree.map(lambda a, d: a + h * d, theta, direction)
        numeric = (held(shift(1e-6)) - held(shift(-1e-6))) / 2e-6
        analytic = sum(float(jnp.sum(g * d)) for g, d in zip(jax.tree.leaves(grads), jax.tree.leaves(direction)))
        assert analytic == pytest.approx(float(numeric), rel=1e-5)
        detached = dataclasses.replace(loss, detach_states=True)
        constant = jax.grad(lambda th: learned_loss(task, detached, phi, th, None))(theta)
        assert not np.allclose(np.asarray(constant[0]["w"]), np.asarray(grads[0]["w"]), rtol=1e-2)


def test_the_paper_task_losses_are_frobenius_norms_over_all_states():
    config = paper_config(horizon=3, shaped_states=2)
    task = mountaincar.mountain_car_task(config, shaped=True)
    states = jnp.asarray([[-0.55, 0.0], [-0.6, -0.1], [-0.5, 0.2], [0.1, 1.0]])
    goal, mid = np.asarray([0.5, 1.0375]), np.asarray([-0.947, -0.0055])
    s = np.asarray(states)
    assert float(task.unshaped_loss(states)) == pytest.approx(np.sqrt(np.sum((s - goal) ** 2)), rel=1e-6)
    by_hand = np.sqrt(np.sum((s[:2] - mid) ** 2)) + np.sqrt(np.sum((s[2:] - goal) ** 2))
    assert float(task.shaped_loss(states)) == pytest.approx(by_hand, rel=1e-6)
    with pytest.raises(ValueError, match=r"'shaped_states' \(5\) must not exceed 'horizon' \(3\)"):
        paper_config(horizon=3, shaped_states=5)
    with pytest.raises(ValueError, match=r"config field 'protocol': unknown value 'authors'"):
        mountaincar.Config(protocol="authors")
