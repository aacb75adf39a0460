"""ML3 for model-free RL: rewards and metrics against closed forms, gymnasium rollouts (goal placement,
reproducibility, the JAX callback under jit and vmap), the surrogate's gradient against its closed form,
the meta-gradient through the callback, PPO's sample counting by hand, the command end to end, bad input."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fastadapt.cli import main
from fastadapt.meta.algorithm import meta_objective
from fastadapt.experiments.rl import mfrl
from fastadapt.rl.envs import GoalError, ReacherGoal
from fastadapt.losses.policy import PolicyGradientLoss, gaussian_log_prob, surrogate
from fastadapt.rl.mujoco_goal import ANT, REACHER, goal_spec, host_rollout, metric, numpy_mlp, reward, rollout_callback
from fastadapt.rl.ppo import ppo_curve, samples_to_fraction
from fastadapt.models.mlp import apply_mlp, init_mlp


def test_rewards_and_metrics_are_the_papers_closed_forms():
    a = np.array([0.3, -0.4])  # ||a|| = 0.5
    np.testing.assert_allclose(reward(REACHER, np.array(0.1), a), -0.1 + 1 / 0.101 - 0.5)
    np.testing.assert_allclose(reward(ANT, np.array(0.75), np.array([2.0, 0.0] + [0.0] * 6)), -0.75 + 5 / 1.0 - 1.0)
    distances = np.array([[1.0, 0.8, 0.5, 0.6]])
    np.testing.assert_allclose(metric(REACHER, distances), [-(0.8 + 0.5 + 0.6)])
    np.testing.assert_allclose(metric(ANT, distances), [0.2 + 0.5 + 0.4])


def test_reacher_rollout_places_the_goal_and_is_a_function_of_its_seed():
    goals = np.array([[0.1, -0.05], [-0.12, 0.0]])
    act = lambda obs: np.zeros((obs.shape[0], 2))
    out = host_rollout(REACHER, act, goals, 6, seed=3, noise_std=np.array([0.5, 0.5]))
    assert out["obs"].shape == (2, 6, 10) and out["actions"].shape == (2, 6, 2) and out["distances"].shape == (2, 7)
    np.testing.assert_allclose(out["obs"][:, 0, 4:6], goals)  # Reacher-v5's target position
    # the observation's fingertip-minus-target is the distance the reward uses
    np.testing.assert_allclose(np.linalg.norm(out["obs"][:, 1:, 8:10], axis=-1), out["distances"][:, 1:-1], rtol=1e-9)
    np.testing.assert_allclose(out["rewards"], reward(REACHER, out["distances"][:, 1:], out["actions"]))
    again = host_rollout(REACHER, act, goals, 6, seed=3, noise_std=np.array([0.5, 0.5]))
    np.testing.assert_array_equal(again["obs"], out["obs"])
    other = host_rollout(REACHER, act, goals, 6, seed=4, noise_std=np.array([0.5, 0.5]))
    assert not np.allclose(other["actions"], out["actions"])


def test_ant_observation_holds_the_goal_seen_from_the_torso():
    out = host_rollout(ANT, lambda obs: np.zeros((1, 8)), np.array([[1.0, 0.0]]), 3, seed=0)
    obs = out["obs"][0, -1]
    assert obs.shape == (33,)
    np.testing.assert_allclose(obs[29:31], [1.0, 0.0])
    np.testing.assert_allclose(obs[31:33], [1.0, 0.0] - obs[:2])
    np.testing.assert_allclose(np.linalg.norm(obs[31:33]), out["distances"][0, -2], rtol=1e-9)


def test_the_callback_runs_the_host_rollout_under_jit_and_vmap():
    layers = init_mlp(jax.random.PRNGKey(0), (10, 8, 2))
    np.testing.assert_allclose(numpy_mlp(jax.tree.map(np.asarray, layers), np.ones((3, 10))),
                               apply_mlp(layers, jnp.ones((3, 10)), "tanh"), rtol=1e-5)
    goals = jnp.asarray([[0.1, 0.1]])
    run = jax.jit(jax.vmap(lambda seed: rollout_callback(REACHER, 4, layers, jnp.full(2, 0.3), goals, seed, True)))
    out = run(jnp.asarray([5, 6]))
    host = host_rollout(REACHER, lambda o: numpy_mlp(jax.tree.map(np.asarray, layers), o), goals, 4, 6, np.full(2, 0.3))
    np.testing.assert_allclose(out["obs"][1], host["obs"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["rewards"][1], host["rewards"], rtol=1e-5)


def test_surrogate_gradient_is_the_closed_form_policy_gradient():
    rng = np.random.default_rng(0)
    mu, actions = jnp.asarray(rng.normal(size=(3, 4, 2))), jnp.asarray(rng.normal(size=(3, 4, 2)))
    sigma, advantage = jnp.full((3, 4, 2), 0.7), jnp.asarray(np.repeat(rng.normal(size=(3, 1)), 4, 1))
    logp = gaussian_log_prob(actions, mu, sigma)
    z = (actions - mu) / 0.7
    np.testing.assert_allclose(logp, np.sum(-0.5 * z ** 2 - np.log(0.7) - 0.5 * np.log(2 * np.pi), -1), rtol=1e-6)
    grad = jax.grad(lambda m: surrogate({"mu": m, "sigma": sigma}, actions, advantage))(mu)
    # d/dmu of -mean_{n,t} A_n log N(a; mu, sigma) = -A_n (a - mu) / sigma^2 / (N T)
    np.testing.assert_allclose(grad, -advantage[..., None] * (actions - mu) / 0.49 / 12, rtol=1e-5)
    loss = PolicyGradientLoss()
    assert loss.apply({}, {"mu": mu, "sigma": sigma}, actions, {"advantage": advantage}) == surrogate(
        {"mu": mu, "sigma": sigma}, actions, advantage)


@pytest.mark.slow
def test_meta_gradient_reaches_the_loss_through_the_callback():
    config = mfrl.quick(mfrl.Config())
    task, loss = mfrl.mfrl_task(config), mfrl.meta_loss(config)
    phi, theta = loss.init(jax.random.PRNGKey(0)), task.start(jax.random.PRNGKey(1))
    inner, outer = jax.tree.map(lambda a: a[0], task.meta_batches(jax.random.PRNGKey(2), 1))
    objective = jax.jit(jax.value_and_grad(lambda p: meta_objective(task, loss, config.alpha, p, theta, inner, outer)[0]))
    value, grads = objective(phi)
    norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads)]
    assert np.isfinite(float(value)) and all(np.isfinite(norms)) and min(norms) > 0
    # the rollouts are data: the same batch gives the same task loss and the same meta-gradient
    again, grads_again = objective(phi)
    assert float(again) == float(value)
    np.testing.assert_array_equal(grads_again["log_rate"], grads["log_rate"])


def algorithm4_config(**keys):
    from fastadapt.config import build_config

    tiny = ["horizon=5", "episodes=2", "minibatches=2", "iters_max=3", "loss_hidden=8", "policy_hidden=8",
            "learned_rate=false"]
    return build_config(mfrl.Config(), tiny + [f"{k}={v}" for k, v in keys.items()], paper=mfrl.PAPER_KEYS)


def test_algorithm4_batches_share_each_rollout_between_two_steps_and_minibatches_split_it():
    config = algorithm4_config()
    task = mfrl.mfrl_task(config)
    inner, outer = task.meta_batches(jax.random.PRNGKey(0), 4)
    assert task.stepwise_batches and inner["seed"].shape == (4, 3) and inner["goal"].shape == (4, 3, 2)
    np.testing.assert_array_equal(outer["seed"][:, :-1], inner["seed"][:, 1:])  # tau_{i+1} scores step i, feeds i+1
    np.testing.assert_array_equal(inner["goal"][:, 0], inner["goal"][:, 2])  # one goal per task
    data = {"obs": jnp.arange(2 * 5 * 1.0).reshape(2, 5, 1) * jnp.ones(10), "actions": jnp.zeros((2, 5, 2)),
            "returns": jnp.arange(10.0).reshape(2, 5), "advantage": jnp.zeros((2, 5))}
    theta = task.start(jax.random.PRNGKey(1))
    _, _, extra = task.minibatch_inputs(theta, data, 1)
    np.testing.assert_array_equal(extra["returns"], [1, 3, 5, 7, 9])  # every 2nd sample, from sample 1
    with pytest.raises(ValueError, match=r"'minibatches' \(3\) must divide the samples of an update"):
        algorithm4_config(minibatches=3)
    with pytest.raises(ValueError, match="protocol=paper is Algorithm 4 as written.*needs update=unroll, got update=step"):
        algorithm4_config(update="step")


@pytest.mark.slow
def test_algorithm4_unrolled_meta_gradient_matches_a_hand_written_loop():
    """The trainer's update of phi (update=unroll on stepwise batches, minibatch SGD) against Algorithm 4
    written out: theta_{i+1} from K minibatch steps on the rollout of theta_i, L^i the surrogate on the
    rollout of theta_{i+1}, phi's gradient of the mean of L^i (the rollouts are data: constants)."""
    import optax

    from fastadapt.meta.algorithm import MetaState, batch_update
    from fastadapt.losses.policy import surrogate

    config = algorithm4_config()
    task, loss = mfrl.mfrl_task(config), mfrl.meta_loss(config)
    phi = loss.init(jax.random.PRNGKey(0))
    inner, outer = jax.tree.map(lambda a: a[0], task.meta_batches(jax.random.PRNGKey(2), 1))
    key = jax.random.PRNGKey(3)

    def by_hand(phi):
        theta, losses = task.start(key), []
        for i in range(config.iters_max):
            step_batch = jax.tree.map(lambda a: a[i], inner)
            data = jax.lax.stop_gradient(task.experience(theta, step_batch))
            for k in range(config.minibatches):
                grads = jax.grad(lambda th: loss.apply(phi, *task.minibatch_inputs(th, data, k)))(theta)
                theta = jax.tree.map(lambda p, g: p - config.alpha * g, theta, grads)
            scored = task.experience(theta, jax.tree.map(lambda a: a[i], outer))
            pred, actions, extra = task.inputs_of(theta, scored)
            losses.append(surrogate(pred, actions, extra["advantage"]))
        return sum(losses) / len(losses)

    expected = jax.grad(by_hand)(phi)
    sgd = optax.sgd(1.0)
    state, task_losses = batch_update(task, loss, sgd, config.alpha, config.iters_max, MetaState(phi, sgd.init(phi)),
                                      key, (inner, outer), "unroll")
    assert task_losses.shape == (config.iters_max,)
    assert float(jnp.mean(task_losses)) == pytest.approx(float(by_hand(phi)), rel=1e-5)
    for got, old, want in zip(jax.tree.leaves(state.loss_params), jax.tree.leaves(phi), jax.tree.leaves(expected)):
        np.testing.assert_allclose(np.asarray(old - got), np.asarray(want), rtol=1e-4, atol=1e-7)
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(expected)) > 0


@pytest.mark.slow
def test_ppo_starts_from_the_given_policy():
    from sbx import PPO

    from fastadapt.rl.ppo import make_goal_env, set_actor

    policy = mfrl.GaussianPolicy(10, 2, (8, 8)).init(jax.random.PRNGKey(4))
    model = PPO("MlpPolicy", make_goal_env(REACHER, np.array([0.1, 0.1]), 5), n_steps=16, batch_size=8, seed=0,
                verbose=0, policy_kwargs={"net_arch": [8, 8]})
    set_actor(model, jax.tree.map(np.asarray, policy))
    obs = np.random.default_rng(0).normal(size=(3, 10))
    mean = numpy_mlp(jax.tree.map(lambda a: np.asarray(a, np.float64), policy["mean"]), obs)
    np.testing.assert_allclose(model.predict(obs, deterministic=True)[0], np.clip(mean, -1, 1), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="PPO's actor layer Dense_0 is"):
        set_actor(model, jax.tree.map(np.asarray, mfrl.GaussianPolicy(10, 2, (4, 8)).init(jax.random.PRNGKey(4))))


def test_samples_to_80_percent_by_hand():
    samples = [0, 100, 200, 300, 400]
    assert samples_to_fraction(samples, [0, 2, 5, 9, 10]) == 300  # 80% of 10: 8, first reached at 300
    assert samples_to_fraction(samples, [-10, -6, -4, -3, -2]) == 300  # -10 + 0.8 * 8 = -3.6: -4 is short of it
    assert samples_to_fraction(samples, [0, 2, 5, 9, 10], final=20) is None  # needs 16
    assert samples_to_fraction(samples, [0, 2, 5, 9, 10], final=5) == 200  # needs 4
    assert samples_to_fraction(samples, [0, -1, -2, -2, -3]) is None  # never improves
    assert samples_to_fraction(samples, [0, 10, 4, 6, 5], fraction=0.5) == 100
    with pytest.raises(ValueError, match=r"samples \(5,\) and performance \(4,\) must be two equal 1-d curves"):
        samples_to_fraction(samples, [0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\], got 1.5"):
        samples_to_fraction(samples, [0, 2, 5, 9, 10], fraction=1.5)


@pytest.mark.slow
def test_ppo_curve_counts_its_samples():
    out = ppo_curve(REACHER, np.array([0.1, 0.1]), 8, updates=2, n_steps=32, seed=0, eval_seed=1, hidden=(8,),
                    batch_size=16, n_epochs=1)
    assert out["samples"] == [0, 32, 64] and len(out["performance"]) == 3
    assert all(p < 0 for p in out["performance"])  # -sum of 8 distances
    assert out["train_seconds"] > 0


def test_bad_model_free_inputs_get_clear_errors():
    with pytest.raises(ValueError, match="unknown environment 'hopper', expected one of"):
        goal_spec("hopper")
    with pytest.raises(GoalError, match=r"goal \[0.3, 0.0\] is outside the reacher's workspace \(at most 0.2"):
        host_rollout(REACHER, lambda o: np.zeros((2, 2)), [[0.1, 0.0], [0.3, 0.0]], 2, 0)
    with pytest.raises(GoalError, match=r"goals must be finite, of shape \[N, 2\]; got shape \(3,\)"):
        host_rollout(REACHER, lambda o: np.zeros((1, 2)), [0.1, 0.0, 0.0], 2, 0)
    with pytest.raises(ValueError, match="goal_radius 0.5 is outside the reacher's workspace"):
        mfrl.Config(goal_radius=0.5)
    with pytest.raises(ValueError, match="config field 'scale': unknown value 'huge'"):
        main_config("mfrl-ant", scale="huge")


def main_config(name, **keys):
    from fastadapt.experiments import registry

    experiment = registry.find(name)
    return getattr(experiment.load(), experiment.config)(**keys)


def test_ant_scales_set_the_budget_and_explicit_keys_win():
    small, full = main_config("mfrl-ant"), main_config("mfrl-ant", scale="full")
    assert (small.horizon, small.goal_radius, small.episodes) == (100, 1.0, 5)
    assert (full.horizon, full.goal_radius, full.episodes, full.epochs) == (1000, 2.0, 10, 100)
    assert main_config("mfrl-ant", scale="full", horizon=200).horizon == 200


@pytest.mark.slow
def test_mfrl_command_writes_figure_metrics_and_counts(tmp_path):
    args = ["rl", "mfrl-reacher", "--quick", "--out", str(tmp_path), "--no-progress", "horizon=10", "eval_steps=2"]
    assert main(args) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["samples"] == [0, 40, 80]  # 4 episodes of 10 steps per update
    for name, curve in metrics["performance_mean"].items():
        assert metrics["samples_to_80"][name]["samples_to_80_own"] == samples_to_fraction(metrics["samples"], curve)
    assert metrics["env_steps"]["meta-train"] == 1 * 2 * 2 * 1 * 2 * 40
    assert set(metrics["architectures"]) == {"32", "64x64"}
    assert (tmp_path / "fig4_mfrl_reacher.png").exists()
    assert "ML3 for model-free RL: ReacherGoal" in (tmp_path / "report.md").read_text()


# --- shaping with expert demonstrations (Fig. 6 c, d) -----------------------------------------------------------
@pytest.mark.slow
def test_ilqr_experts_reach_their_targets_within_the_torque_limit():
    from fastadapt.experiments.rl import demos
    from fastadapt.rl.envs import ReacherGoal
    from fastadapt.rl.ilqr import Problem, trajectory

    env = ReacherGoal()
    targets = jnp.asarray([[0.606, 0.35], [-0.606, 0.35]])  # the second is a local minimum from no torque
    states, controls = demos.expert_demonstrations(env, targets, 40, 50)
    assert states.shape == (2, 41, 4) and controls.shape == (2, 40, 2)
    assert float(jnp.max(jnp.abs(controls))) <= env.max_action
    reached = np.linalg.norm(np.asarray(env.position(states[:, -1])) - np.asarray(targets), axis=-1)
    assert np.all(reached < 1e-3)
    cost = demos.ReachCost(env, (0.606, 0.35))
    np.testing.assert_allclose(trajectory(Problem(env.step, cost.running, cost.final), env.initial_state(), controls[0]),
                               states[0], atol=1e-6)


@pytest.mark.slow
def test_cloning_loss_is_the_mean_squared_action_error_on_the_demonstration():
    from fastadapt.experiments.rl import demos
    from fastadapt.rl.envs import ReacherGoal
    from fastadapt.rl.rollout import GoalPolicy

    env = ReacherGoal()
    rng = np.random.default_rng(0)
    states, controls = jnp.asarray(rng.normal(size=(2, 6, 4))), jnp.asarray(rng.normal(size=(2, 5, 2)))
    goals = jnp.asarray([[0.5, 0.2], [0.1, 0.7]])
    task = demos.DemoTask(states, controls, goals, goals, env, GoalPolicy(env, (8,)), 5)
    theta = task.start(jax.random.PRNGKey(0))
    actions = task.policy.apply(theta, states[1, :-1], goals[1])
    expected = np.mean(np.sum((np.asarray(actions) - np.asarray(controls[1])) ** 2, -1))
    np.testing.assert_allclose(task.task_loss(theta, {"goal": goals[1], "demo": 1}), expected, rtol=1e-6)
    _, _, extra = task.loss_inputs(theta, {"goal": goals[0], "demo": 0})
    np.testing.assert_allclose(extra["bc_loss"], (task.cloning_error(theta, 0) + task.cloning_error(theta, 1)) / 2, rtol=1e-6)


def test_the_demonstrations_paper_protocol_reuses_one_policy_and_shows_the_goal_state():
    from fastadapt.config import build_config
    from fastadapt.experiments.rl import demos
    from fastadapt.losses.policy import PolicyMetaLoss

    config = build_config(demos.Config(), ["loss_hidden=8", "horizon=5", "ilqr_iterations=2", "eval_seeds=2"],
                          paper=demos.PAPER_KEYS)
    assert config.protocol == "paper" and config.iters_max == 1 and not config.learned_rate
    env = ReacherGoal()
    rng = np.random.default_rng(0)
    states, controls = jnp.asarray(rng.normal(size=(2, 6, 4))), jnp.asarray(rng.normal(size=(2, 5, 2)))
    goals = jnp.asarray([[0.5, 0.2], [0.1, 0.7]])
    real = demos.demo_task(config, start_seed=4)
    task = demos.PaperDemoTask(states, controls, goals, goals, env, real.policy, 5, real.theta0)
    leaves = lambda tree: [np.asarray(x) for x in jax.tree.leaves(tree)]
    for theta in (task.start(jax.random.PRNGKey(1)), task.eval_problem("meta-test", jax.random.PRNGKey(2), 1, 3)[0]):
        for a, b in zip(leaves(theta), leaves(task.theta0)):
            np.testing.assert_array_equal(a, b)
    other = demos.demo_task(config, start_seed=5)
    assert not np.allclose(leaves(other.theta0)[0], leaves(real.theta0)[0])
    np.testing.assert_allclose(other.test_goals, real.test_goals)  # one set of targets for every seed
    fresh = dataclasses.replace(task, fresh_starts=True).start(jax.random.PRNGKey(1))
    np.testing.assert_array_equal(leaves(fresh)[0], leaves(task.policy.init(jax.random.PRNGKey(1)))[0])
    # the policy is given the goal state (q*, 0), in cloning as in rollouts; the meta-loss sees
    # [s_t, u_t, ||s_T - goal state||], the states constants
    target = env.target_state(goals[1])
    actions = task.policy.apply(task.theta0, states[1, :-1], target)
    expected = np.mean(np.sum((np.asarray(actions) - np.asarray(controls[1])) ** 2, -1))
    np.testing.assert_allclose(task.task_loss(task.theta0, {"goal": goals[1], "demo": 1}), expected, rtol=1e-6)
    shown, final, extra = task.loss_inputs(task.theta0, {"goal": goals[1], "demo": 1})
    rolled, _ = task.system_rollout(task.theta0, goals[1])
    np.testing.assert_allclose(final[0], np.linalg.norm(np.asarray(rolled[-1] - target)), rtol=1e-5)
    np.testing.assert_allclose(extra["states"], rolled[:-1], rtol=1e-6)
    np.testing.assert_allclose(shown, task.policy.apply(task.theta0, rolled[:-1], target), rtol=1e-6)
    loss = demos.meta_loss(config)
    assert isinstance(loss, PolicyMetaLoss) and loss.scale == (1.0, 1.0, 8.0, 8.0, 1.0, 1.0, 1.0) and loss.input_dim == 7


def test_demonstration_targets_outside_the_workspace_are_refused():
    from fastadapt.experiments.rl import demos

    with pytest.raises(GoalError, match=r"goal \(1.2, 0.5\) is outside the reacher workspace"):
        demos.Config(train_targets=((0.5, 0.2), (1.2, 0.5)))
    with pytest.raises(GoalError, match="meta-test targets: goal .* is outside the reacher workspace"):
        demos.Config(test_radius=(0.5, 1.2))


@pytest.mark.slow
def test_demos_command_writes_figure_and_metrics(tmp_path):
    assert main(["rl", "demos", "--quick", "--out", str(tmp_path), "--no-progress", "train_targets=0.606,0.35;-0.606,0.35"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["expert_final_distance"]) == 2 and set(metrics["final_distance"]) == {"meta-train", "meta-test"}
    assert (tmp_path / "fig6cd_demonstrations.png").exists()
    assert "ML3 shaped by expert demonstrations" in (tmp_path / "report.md").read_text()


def test_tuples_of_tuples_are_set_with_semicolons():
    from fastadapt.config import apply_overrides

    assert apply_overrides(mfrl.Config(), ["architectures=64;64,64"]).architectures == ((64,), (64, 64))
