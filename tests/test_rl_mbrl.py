"""ML3 for model-based RL: the differentiable systems against hand-computed steps and PyBullet, gradients
through rollouts against finite differences, the dynamics model, the task on the one trainer, bad input."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import enable_x64

from fastadapt.meta.algorithm import meta_objective
from fastadapt.cli import main
from fastadapt.experiments.rl import mbrl
from fastadapt.rl.envs import GoalError, PointmassGoal, ReacherGoal, check_goals, make_env
from fastadapt.losses.policy import PolicyMetaLoss
from fastadapt.rl.rollout import DynamicsModel, GoalPolicy, add_transitions, empty_buffer, fit_model, rollout

from test_meta import _check_against_central_differences


def test_pointmass_step_is_semi_implicit_euler_with_clipped_acceleration():
    env = PointmassGoal(dt=0.1, max_action=1.0)
    s = env.step(jnp.asarray([0.1, 0.2, 0.3, -0.4]), jnp.asarray([0.5, 2.0]))
    # v' = (0.3 + 0.1 * 0.5, -0.4 + 0.1 * 1.0) (2.0 clipped to 1.0); p' = p + 0.1 v'
    np.testing.assert_allclose(s, [0.135, 0.17, 0.35, -0.3], rtol=1e-6)


def test_reacher_mass_matrix_by_hand_at_the_stretched_arm():
    env = ReacherGoal()  # l = 0.5, m = 1: c = 0.25, I = 1/48
    m = env.mass_matrix(jnp.asarray([0.3, 0.0]))
    np.testing.assert_allclose(m, [[2 / 48 + 0.0625 + 0.25 + 0.0625 + 0.25, 1 / 48 + 0.0625 + 0.125],
                                   [1 / 48 + 0.0625 + 0.125, 1 / 48 + 0.0625]], rtol=1e-6)
    np.testing.assert_allclose(env.position(jnp.asarray([0.0, 0.0, 0, 0])), [1.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(env.position(jnp.asarray([np.pi / 2, -np.pi / 2, 0, 0])), [0.5, 0.5], atol=1e-6)


def test_reacher_inverse_dynamics_match_pybullet_and_the_step_inverts_them():
    from fastadapt.sim.rigid_body import RigidBodyArm

    env = ReacherGoal(damping=0.0)
    rng = np.random.default_rng(0)
    with RigidBodyArm("planar") as arm:
        for _ in range(3):
            q, qd, qdd = rng.uniform(-2, 2, 2), rng.uniform(-2, 2, 2), rng.uniform(-5, 5, 2)
            np.testing.assert_allclose(env.inverse_dynamics(q, qd, qdd), arm.inverse_dynamics(q, qd, qdd),
                                       rtol=1e-4, atol=1e-5)
    damped = ReacherGoal(damping=0.1, substeps=1)
    state, u = jnp.asarray([0.2, 1.1, -0.5, 0.7]), jnp.asarray([0.4, -0.3])
    acc = damped.acceleration(state, u)
    np.testing.assert_allclose(damped.inverse_dynamics(state[:2], state[2:], acc), u, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(damped.step(state, u)[2:], state[2:] + damped.dt * acc, rtol=1e-6)
    fast = jnp.asarray([0.2, 1.1, 19.9, -19.9])  # a joint's speed stays within its limit
    np.testing.assert_allclose(jnp.abs(ReacherGoal().step(fast, jnp.asarray([2.0, -2.0]))[2:]), 20.0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pointmass", "reacher"])
def test_gradient_through_a_rollout_matches_finite_differences(name):
    with enable_x64():
        env = make_env(name)
        policy = GoalPolicy(env, (8,))
        theta = policy.init(jax.random.PRNGKey(1))
        goal = jnp.asarray([0.3, 0.4])
        final_distance = lambda th: jnp.linalg.norm(env.position(rollout(env.step, policy, th, env.initial_state(),
                                                                         goal, 12)[0][-1]) - goal)
        _check_against_central_differences(final_distance, theta, seed=0)


def _tiny_config(**keys):
    return mbrl.quick(mbrl.Config(**keys))


@pytest.mark.slow
def test_mbrl_meta_gradient_through_p_and_the_inner_step_matches_finite_differences():
    with enable_x64():
        config = dataclasses.replace(_tiny_config(), horizon=4, babbling_rollouts=1, model_fit_steps=5)
        task = mbrl.mbrl_task(config)
        loss = mbrl.meta_loss(dataclasses.replace(config, loss_hidden=(8,)))
        phi = loss.init(jax.random.PRNGKey(2))
        theta = task.start(jax.random.PRNGKey(3))
        batch = {"goal": jnp.asarray([1.0, 0.2]), "on_model": jnp.ones(())}
        objective = lambda p: meta_objective(task, loss, 0.05, p, theta, batch, batch)[0]
        _check_against_central_differences(objective, phi, seed=1)


@pytest.mark.slow
def test_the_meta_loss_sees_states_as_constants_and_the_baseline_differentiates_through_p():
    config = dataclasses.replace(_tiny_config(), horizon=5, babbling_rollouts=1, model_fit_steps=5)
    task = mbrl.mbrl_task(config)
    theta = task.start(jax.random.PRNGKey(0))
    batch = {"goal": jnp.asarray([1.0, 0.0]), "on_model": jnp.zeros(())}
    actions, shown, extra = task.loss_inputs(theta, batch)
    goal = batch["goal"]
    states, system_actions = task.system_rollout(theta, goal)
    np.testing.assert_allclose(shown, goal - task.env.position(states[:-1]), rtol=1e-6)  # the goal from the reached point
    np.testing.assert_allclose(extra["states"], states[:-1], rtol=1e-6)  # meta-test: the real system's states
    np.testing.assert_allclose(actions, system_actions, rtol=1e-6)
    # the only path from theta to the loss inputs is the policy at the visited states
    summed = lambda th: jnp.sum(task.loss_inputs(th, batch)[0])
    direct = lambda th: jnp.sum(task.policy.apply(th, jax.lax.stop_gradient(states[:-1]), goal))
    for g, h in zip(jax.tree.leaves(jax.grad(summed)(theta)), jax.tree.leaves(jax.grad(direct)(theta))):
        np.testing.assert_allclose(g, h, rtol=1e-5, atol=1e-7)
    assert float(extra["model_task_loss"]) == pytest.approx(float(task.task_loss(theta, batch)), rel=1e-6)


@pytest.mark.slow
def test_the_buffer_wraps_around_and_p_learns_the_point_mass():
    env = PointmassGoal()
    model = DynamicsModel(env, (32,))
    buffer = empty_buffer(model, 5)
    buffer = add_transitions(buffer, jnp.ones((3, 6)), jnp.ones((3, 2)))
    buffer = add_transitions(buffer, 2 * jnp.ones((4, 6)), 2 * jnp.ones((4, 2)))
    np.testing.assert_allclose(buffer["inputs"][:, 0], [2, 2, 1, 2, 2])  # rows 3, 4, then 0, 1 overwritten
    assert int(buffer["count"]) == 7
    states, actions = mbrl.babbling_rollouts(env, jax.random.PRNGKey(0), 4, 30)
    buffer = add_transitions(empty_buffer(model, 1000), *model.transitions(states, actions))
    _, before = fit_model(model, model.init(jax.random.PRNGKey(1)), buffer, 1, 1e-3)
    params, after = fit_model(model, model.init(jax.random.PRNGKey(1)), buffer, 400, 1e-2)
    assert float(after) < 0.02 * float(before)
    s, a = states[0, 5], actions[0, 5]
    np.testing.assert_allclose(model.step(params, s, a), env.step(s, a), atol=0.01)


@pytest.mark.slow
def test_mbrl_command_writes_figure_metrics_and_resumes_with_the_refreshed_model(tmp_path):
    args = ["rl", "mbrl-pointmass", "--quick", "--out", str(tmp_path), "--no-progress", "epochs=2", "eval_every=2",
            "refresh_every=1", "seeds=1", "eval_seeds=2", "batches_per_epoch=2", "iters_max=1", "horizon=8",
            "loss_hidden=8", "baseline_rates=1,3", "eval_steps=4"]
    assert main(args) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # P's data: 3 babbling rollouts, then 2 refreshes of 2 trained policies' real rollouts, 8 steps each
    assert metrics["model_transitions"] == (3 + 2 * 2) * 8
    assert metrics["outer_iterations"] == 4 and metrics["baseline_rate"] in (0.01, 0.03)
    assert set(metrics["final_distance"]) == {"meta-train", "meta-test"}
    assert (tmp_path / "fig3_mbrl_pointmass.png").exists()
    assert "ML3 for model-based RL: PointmassGoal" in (tmp_path / "report.md").read_text()
    # the finished run resumes from its checkpoint, refreshed P included: the baseline through P is the same
    assert main(args) == 0
    again = json.loads((tmp_path / "metrics.json").read_text())
    assert again["final_distance"] == metrics["final_distance"] and again["model_error"] == metrics["model_error"]


def test_bad_rl_inputs_get_clear_errors():
    with pytest.raises(ValueError, match="unknown environment 'cartpole', expected one of"):
        make_env("cartpole")
    with pytest.raises(GoalError, match=r"goal \(1.2, 0.5\) is outside the reacher workspace: it is 1.3 from the base"):
        check_goals(ReacherGoal(), [[0.3, 0.3], [1.2, 0.5]])
    with pytest.raises(GoalError, match="meta-train goals: goal .* is outside the reacher workspace"):
        mbrl.Config(env="reacher", goal_radius=(0.5, 1.5))
    with pytest.raises(ValueError, match="unknown environment 'cartpole'"):
        mbrl.Config(env="cartpole")
    with pytest.raises(GoalError, match=r"goals must be an array \[N, 2\]"):
        check_goals(PointmassGoal(), [1.0, 2.0, 3.0])


# --- the authors' protocol (protocol=paper) and its parts -----------------------------------------------------

def test_reacher_inverse_kinematics_puts_the_tip_on_the_goal():
    env = ReacherGoal()
    goals = jnp.asarray([[0.1207, 0.9459], [0.2633, 0.7186], [-0.4, 0.3]])
    q = env.inverse_kinematics(goals)
    np.testing.assert_allclose(env.position(jnp.concatenate([q, jnp.zeros((3, 2))], -1)), goals, atol=1e-5)
    assert np.all(np.asarray(q[:, 1]) >= 0)  # the elbow's one branch
    np.testing.assert_allclose(env.target_state(goals)[:, 2:], 0.0)
    np.testing.assert_allclose(PointmassGoal().target_state(jnp.asarray([0.3, -0.2])), [0.3, -0.2, 0.0, 0.0])


def test_the_dense_task_loss_by_hand():
    states = jnp.asarray([[0.0, 0.0, 1.0, 0.0], [0.3, 0.4, 0.0, 2.0], [0.6, 0.8, 0.0, 0.0]])
    target = jnp.asarray([0.6, 0.8, 0.0, 0.0])
    # errors |q_t - q*| = 1.0, 0.5, 0.0; speeds 1, 2, 0
    by_hand = 10 * 0.0 + (1.0 + 0.5 + 0.0) / 3 + 1e-4 * (1.0 + 2.0 + 0.0) / 3
    assert float(mbrl.dense_task_loss(states, target)) == pytest.approx(by_hand, abs=2e-5)  # sqrt(x + 1e-12)


def test_the_probabilistic_ensemble_leaves_out_one_fold_per_member_and_fits_the_likelihood():
    from fastadapt.rl.rollout import training_loss

    env = PointmassGoal()
    model = DynamicsModel(env, (8,), members=3, probabilistic=True)
    params = model.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    buffer = add_transitions(empty_buffer(model, 8), jnp.asarray(rng.normal(size=(6, 6))), jnp.asarray(rng.normal(size=(6, 2))))
    mean, var = model.member_outputs(params, buffer["inputs"])
    assert mean.shape == (3, 8, 2) and float(var.min()) >= 1e-3
    nll = 0.5 * np.log(np.asarray(var)) + 0.5 * (np.asarray(mean) - np.asarray(buffer["targets"])) ** 2 / np.asarray(var)
    per_row = nll.mean(-1)
    # member m trains on the 6 filled rows but those with index % 3 == m
    by_hand = sum(per_row[m, [r for r in range(6) if r % 3 != m]].mean() for m in range(3))
    assert float(training_loss(model, params, buffer)) == pytest.approx(by_hand, rel=1e-5)
    np.testing.assert_allclose(model.predict(params, buffer["inputs"]), np.asarray(mean).mean(0), rtol=1e-6)
    fitted, error = fit_model(model, params, buffer, 300, 1e-2)
    assert float(training_loss(model, fitted, buffer)) < float(training_loss(model, params, buffer)) - 0.5
    assert np.isfinite(float(error))


def paper_config(**keys):
    from fastadapt.config import build_config
    from fastadapt.experiments import registry

    experiment = registry.find("mbrl-reacher")
    overrides = [f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in keys.items()]
    return build_config(experiment.default_config(), overrides, paper=experiment.paper_keys())


def test_the_paper_protocol_reuses_one_policy_and_two_goals_and_each_experiment_has_its_keys():
    from fastadapt.experiments import registry

    assert "protocol=paper" in registry.find("mbrl-reacher").paper_keys()
    assert registry.find("mbrl-pointmass").paper_keys() == mbrl.PAPER_KEYS == ("loss_hidden=40,40", "seeds=5")
    config = paper_config(model_fit_steps=5, loss_hidden=(8,), horizon=6)
    task = mbrl.mbrl_task(config)
    assert isinstance(task, mbrl.PaperMBRLTask) and task.model.members == 3 and task.model.probabilistic
    np.testing.assert_allclose(task.env.initial_state(), 0.0)
    leaves = lambda tree: [np.asarray(x) for x in jax.tree.leaves(tree)]
    for theta in (task.start(jax.random.PRNGKey(1)), task.start(jax.random.PRNGKey(2)),
                  task.eval_problem("meta-test", jax.random.PRNGKey(3), 2, 4)[0]):
        for a, b in zip(leaves(theta), leaves(task.theta0)):
            np.testing.assert_array_equal(a, b)
    inner, _ = task.meta_batches(jax.random.PRNGKey(4), 3)
    np.testing.assert_allclose(inner["goal"], np.tile(config.train_goal, (3, 1)), rtol=1e-6)
    np.testing.assert_allclose(task.eval_problem("meta-test", jax.random.PRNGKey(0), 0, 2)[2], config.test_goal, rtol=1e-6)
    # the authors' policy sees the goal state and not the gradient of its state input; the meta-loss sees
    # [s, u, ||s_T - goal state||] / (1, 1, 8, 8, 1, 1, 1)
    target = task.env.target_state(jnp.asarray(config.train_goal))
    grad_state = jax.grad(lambda s: jnp.sum(task.policy.apply(task.theta0, s, target)))(jnp.ones(4))
    np.testing.assert_array_equal(grad_state, 0.0)
    actions, final, extra = task.loss_inputs(task.theta0, jax.tree.map(lambda a: a[0], inner))
    states, _ = task.model_rollout(task.theta0, jnp.asarray(config.train_goal))
    assert float(final[0]) == pytest.approx(float(jnp.linalg.norm(states[-1] - target)), rel=1e-5)
    assert actions.shape == (6, 2) and float(jnp.abs(actions).max()) <= task.env.max_action
    loss = mbrl.meta_loss(config, task.env)
    assert isinstance(loss, PolicyMetaLoss)  # no learned rate
    assert loss.scale == (1.0, 1.0, 8.0, 8.0, 1.0, 1.0, 1.0) and loss.input_dim == 7
    assert float(task.task_loss(task.theta0, jax.tree.map(lambda a: a[0], inner))) == pytest.approx(
        float(mbrl.dense_task_loss(states, target)), rel=1e-5)
    with pytest.raises(ValueError, match="protocol=paper's train_goal/test_goal: goal .* is outside the reacher workspace"):
        paper_config(test_goal=(1.5, 0.0))
