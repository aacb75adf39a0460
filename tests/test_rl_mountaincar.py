"""MountainCar shaping: gymnax's car stepped with gradients, the shaped task loss by hand, the command."""

import json
import math

import jax
import jax.numpy as jnp
import pytest
from jax import enable_x64

from fastadapt.cli import main
from fastadapt.experiments.rl import mountaincar
from fastadapt.rl.mountain_car import MountainCar


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
    assert set(metrics["final_distance"]) == {"shaped ML3", "unshaped ML3", "task loss", "iLQR"}
    assert len(metrics["ilqr_final_distance"]) <= 3 and metrics["outer_iterations"] == 4
    assert (tmp_path / "fig6ab_mountain_car.png").exists()
    assert main(["rl", "mountaincar", "--out", str(tmp_path / "bad"), "goal_position=-0.7"]) == 2


def test_a_linear_policy_solves_the_car_but_the_shaped_loss_points_away_from_it_at_small_gains():
    """What docs/RESULTS.md says of Fig. 6: u = tanh(k v / 0.07) reaches the goal for k = 3 and not for
    k = 0.3, and the shaped task loss's gradient in k at k = 0.3 is positive (descent lowers k)."""
    task = mountaincar.mountain_car_task(mountaincar.Config(), shaped=True)
    policy = lambda k: {"w": jnp.asarray([[0.0], [k]]), "b": jnp.zeros(1)}
    assert float(task.score(policy(3.0), None)) == 0.0
    assert float(task.score(policy(0.3), None)) > 0.9
    shaped_loss = lambda k: task.shaped_loss(task.rollout(policy(k))[0][1:, 0])
    assert float(jax.grad(shaped_loss)(0.3)) > 0
