import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import jax.flatten_util
from jax import enable_x64

from fastadapt.data.batches import Samples
from fastadapt.data.trajectory import Dataset
from fastadapt.losses import make_loss
from fastadapt.meta.algorithm import inner_step, meta_objective
from fastadapt.tasks.inverse_dynamics import InverseDynamicsConfig, load_loss
from fastadapt.tasks.inverse_dynamics import inverse_dynamics_trainer as MetaTrainer
from fastadapt.models.mlp import InverseDynamicsMLP

from conftest import make_trajectory


def _problem(loss_name, joints=2):
    model = InverseDynamicsMLP(joints, hidden=(8,), activation="tanh")
    loss = make_loss(loss_name, joints)
    keys = jax.random.split(jax.random.PRNGKey(0), 6)
    phi = loss.init(keys[0])
    phi = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(keys[1], p.shape), phi)
    theta = model.init(keys[2])
    a = Samples(jax.random.normal(keys[3], (10, 3 * joints)), jax.random.normal(keys[4], (10, joints)))
    b = Samples(jax.random.normal(keys[5], (10, 3 * joints)), jax.random.normal(keys[4], (10, joints)) + 1)
    return _task(model), loss, phi, theta, a, b


def _task(model, start_params=None):
    """The inverse-dynamics task around ``model`` (its data is not used by the functions tested with it)."""
    from fastadapt.data.batches import Normalizer
    from fastadapt.tasks.inverse_dynamics import InverseDynamicsTask

    J = model.num_joints
    empty = Samples(jnp.zeros((4, 3 * J)), jnp.zeros((4, J)))
    ones = jnp.ones
    return InverseDynamicsTask(empty, jnp.zeros(1, jnp.int32), empty, jnp.zeros(1, jnp.int32), empty, empty,
                               Normalizer(ones(3 * J), ones(3 * J), ones(J), ones(J)), start_params, None, model, 4, 1, 5)


@pytest.mark.slow
@pytest.mark.parametrize("loss_name", ["structured", "state-dependent", "mlp"])
def test_meta_gradient_matches_finite_differences(loss_name):
    with enable_x64():
        task, loss, phi, theta, a, b = _problem(loss_name)
        objective = lambda p: meta_objective(task, loss, 0.05, p, theta, a, b)[0]
        _check_against_central_differences(objective, phi, seed=0)


def _check_against_central_differences(objective, phi, seed: int):
    """d objective / d phi along 3 random directions against central differences (float64)."""
    grad = jax.flatten_util.ravel_pytree(jax.grad(objective)(phi))[0]
    flat, unravel = jax.flatten_util.ravel_pytree(phi)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        direction = jnp.asarray(rng.normal(size=flat.shape))
        eps = 1e-5
        numeric = (objective(unravel(flat + eps * direction)) - objective(unravel(flat - eps * direction))) / (2 * eps)
        assert float(grad @ direction) == pytest.approx(float(numeric), rel=1e-5, abs=1e-9)


@pytest.mark.slow
def test_inner_step_is_one_sgd_step_on_the_learned_loss():
    task, loss, phi, theta, a, _ = _problem("structured")
    new = inner_step(task, loss, 0.1, phi, theta, a)
    grads = jax.grad(lambda th: loss.apply(phi, task.model.apply(th, a.x), a.y, a.state))(theta)
    expected = jax.tree.map(lambda p, g: p - 0.1 * g, theta, grads)
    for x, y in zip(jax.tree.leaves(new), jax.tree.leaves(expected)):
        np.testing.assert_allclose(x, y, rtol=1e-6)


def _smooth_dataset(n, seed):
    """A 2-joint 'robot' whose torque is a smooth function of the state."""
    trajs = []
    for i in range(n):
        t = np.arange(600) * 0.01
        q = np.stack([np.sin(t * (1 + 0.2 * i + seed)), np.cos(0.7 * t)], axis=1)
        qd, qdd = np.gradient(q, 0.01, axis=0), np.gradient(np.gradient(q, 0.01, axis=0), 0.01, axis=0)
        tau = np.stack([3 * np.sin(q[:, 0]) + qdd[:, 0], 0.5 * q[:, 1] * qd[:, 0] + 2 * qdd[:, 1]], axis=1)
        trajs.append(make_trajectory(T=600, J=2, t=t, q=q, qd=qd, qdd=qdd, tau=tau))
    return Dataset(tuple(trajs))


CONFIG = InverseDynamicsConfig(loss="structured", epochs=4, eval_every=2, eval_steps=20, eval_seeds=2,
                         batches_per_epoch=8, hidden=(16,), eval_points=256, meta_optimizer="adam")


@pytest.mark.slow
def test_meta_training_beats_plain_mse_and_saves_loss(tmp_path):
    train, test = _smooth_dataset(3, 0), _smooth_dataset(2, 1)
    result = MetaTrainer(CONFIG, train, test).run(tmp_path, progress=False)
    h = result.history
    chosen = h["eval"][h["eval_epoch"].index(h["selected_epoch"])]
    assert chosen["meta-test"]["mean"][0] < h["baseline"]["meta-test"]["mean"]
    assert chosen["meta-train"]["mean"][0] == min(e["meta-train"]["mean"][0] for e in h["eval"])
    config, loss, params, normalizer = load_loss(tmp_path / "loss.npz")
    assert config == CONFIG and loss.name == "structured"
    np.testing.assert_allclose(params["w"], result.loss_params["w"])


def test_killed_run_resumes_to_the_same_result(tmp_path):
    train, test = _smooth_dataset(3, 0), _smooth_dataset(2, 1)
    full = MetaTrainer(CONFIG, train, test).run(tmp_path / "full", progress=False)
    MetaTrainer(dataclasses.replace(CONFIG, epochs=2), train, test).run(tmp_path / "resumed", progress=False)
    resumed = MetaTrainer(CONFIG, train, test).run(tmp_path / "resumed", progress=False)
    np.testing.assert_allclose(resumed.loss_params["w"], full.loss_params["w"], rtol=1e-6)
    assert resumed.history["epoch"] == [1, 2, 3, 4]



def test_keep_best_by_hand():
    from fastadapt.meta.trainer import _keep_best

    best = {"params": {"w": jnp.zeros((2, 1))}, "score": jnp.full(2, jnp.inf), "epoch": jnp.zeros(2, jnp.int32)}
    best = _keep_best(best, {"w": jnp.array([[1.0], [1.0]])}, [3.0, 1.0], 2)
    best = _keep_best(best, {"w": jnp.array([[2.0], [2.0]])}, [2.0, 4.0], 4)  # seed 0 improves, seed 1 does not
    assert best["epoch"].tolist() == [4, 2] and best["params"]["w"].ravel().tolist() == [2.0, 1.0]
    assert best["score"].tolist() == [2.0, 1.0]
    latest = _keep_best(best, {"w": jnp.array([[5.0], [5.0]])}, [9.0, 9.0], 6, latest=True)  # keep='final'
    assert latest["epoch"].tolist() == [6, 6] and latest["params"]["w"].ravel().tolist() == [5.0, 5.0]


@pytest.mark.slow
def test_keep_final_keeps_the_last_epochs_loss():
    train, test = _smooth_dataset(3, 0), _smooth_dataset(2, 1)
    small = dataclasses.replace(CONFIG, epochs=2, eval_every=1, eval_steps=5, seeds=2, batches_per_epoch=4)
    final = MetaTrainer(dataclasses.replace(small, keep="final"), train, test).run(progress=False)
    h = final.history
    assert h["selected_epoch"] == small.epochs and h["eval_epoch"] == [1, 2]
    assert h["best_seed"] == int(np.argmin(h["eval"][-1]["meta-train"]["mean"]))
    # evaluated only at the end, "best" is the final epoch's loss too: the same parameters
    once = MetaTrainer(dataclasses.replace(small, eval_every=small.epochs), train, test).run(progress=False)
    np.testing.assert_allclose(final.seed_params["w"], once.seed_params["w"], rtol=1e-6)
    with pytest.raises(ValueError, match="config field 'keep': unknown value 'last', expected one of best, final"):
        dataclasses.replace(CONFIG, keep="last")

def test_resume_with_another_config_is_refused(tmp_path):
    train, test = _smooth_dataset(3, 0), _smooth_dataset(2, 1)
    MetaTrainer(dataclasses.replace(CONFIG, epochs=1), train, test).run(tmp_path, progress=False)
    with pytest.raises(ValueError, match="different config .*'alpha'"):
        MetaTrainer(dataclasses.replace(CONFIG, alpha=0.01), train, test).run(tmp_path, progress=False)


def test_mse_cannot_be_meta_trained():
    train = _smooth_dataset(1, 0)
    with pytest.raises(ValueError, match="loss 'mse' has no parameters"):
        MetaTrainer(dataclasses.replace(CONFIG, loss="mse"), train, train)


def test_warm_start_batch_starts_from_a_given_model():
    """With start_params, Algorithm 1's first inner step starts at one of the given models."""
    from fastadapt.meta.algorithm import MetaState, batch_update, make_meta_optimizer

    task, loss, phi, theta, a, b = _problem("structured")
    stacked = jax.tree.map(lambda p: jnp.stack([p, p]), theta)  # two copies: any pick is theta
    warm = _task(task.model, stacked)
    opt = make_meta_optimizer("sgd", 0.0)  # eta = 0: phi stays, so the first task loss is checkable
    state = MetaState(phi, opt.init(phi))
    _, task_losses = batch_update(warm, loss, opt, 0.05, 3, state, jax.random.PRNGKey(3), (a, b))
    expected = meta_objective(task, loss, 0.05, phi, theta, a, b)[0]
    assert float(task_losses[0]) == pytest.approx(float(expected), rel=1e-5)
    _, fresh = batch_update(task, loss, opt, 0.05, 3, state, jax.random.PRNGKey(3), (a, b))
    assert float(fresh[0]) != pytest.approx(float(expected), rel=1e-3)


@pytest.mark.slow
def test_warm_start_meta_training_runs_and_evaluates_from_pretrained_models():
    train, test = _smooth_dataset(4, 0), _smooth_dataset(2, 1)
    config = dataclasses.replace(CONFIG, start="pretrained", pretrain_models=2, pretrain_steps=200, epochs=2)
    trainer = MetaTrainer(config, train, test)
    # meta-trains on the odd-indexed half of the trajectories, starting from models fitted to the even half
    assert trainer.task.train.x.shape[0] == 2 * 600
    assert jax.tree.leaves(trainer.task.start_params)[0].shape[0] == 2
    curves = trainer.curves(make_loss("mse", 2), {}, "meta-train", jax.random.PRNGKey(0))
    fresh = MetaTrainer(CONFIG, train, test).curves(make_loss("mse", 2), {}, "meta-train", jax.random.PRNGKey(0))
    assert curves[:, 0].mean() < 0.5 * fresh[:, 0].mean()  # the evaluation starts already trained
    result = trainer.run(progress=False)
    assert np.all(np.isfinite(result.history["task_loss"]))


def test_warm_start_needs_two_trajectories_and_a_known_start():
    with pytest.raises(ValueError, match="needs at least 2 meta-train trajectories"):
        MetaTrainer(dataclasses.replace(CONFIG, start="pretrained"), _smooth_dataset(1, 0), _smooth_dataset(1, 1))
    with pytest.raises(ValueError, match="unknown start 'warm'"):
        dataclasses.replace(CONFIG, start="warm")


@pytest.mark.slow
def test_unrolled_meta_gradient_matches_finite_differences():
    """update='unroll': the gradient through the whole chain of M inner steps (second order at every
    step) against central differences of the mean task loss along the chain."""
    from fastadapt.meta.algorithm import unrolled_objective

    with enable_x64():
        task, loss, phi, theta, a, b = _problem("state-dependent")
        objective = lambda p: unrolled_objective(task, loss, 0.05, 4, p, theta, a, b)[0]
        # the chain is really M steps long: the mean over 4 steps differs from the first step's loss
        assert float(objective(phi)) != pytest.approx(float(meta_objective(task, loss, 0.05, phi, theta, a, b)[0]), rel=1e-3)
        _check_against_central_differences(objective, phi, seed=1)


def test_unroll_and_step_updates_agree_for_one_inner_step_and_differ_for_more():
    from fastadapt.meta.algorithm import MetaState, batch_update, make_meta_optimizer

    task, loss, phi, theta, a, b = _problem("structured")
    opt = make_meta_optimizer("sgd", 0.1)
    state = MetaState(phi, opt.init(phi))
    key = jax.random.PRNGKey(0)
    step1, losses_step = batch_update(task, loss, opt, 0.05, 1, state, key, (a, b), "step")
    unroll1, losses_unroll = batch_update(task, loss, opt, 0.05, 1, state, key, (a, b), "unroll")
    np.testing.assert_allclose(step1.loss_params["w"], unroll1.loss_params["w"], rtol=1e-6)
    np.testing.assert_allclose(losses_step, losses_unroll, rtol=1e-6)
    # with three inner steps, 'step' updates phi three times, 'unroll' once with the chain's gradient
    step3, _ = batch_update(task, loss, opt, 0.05, 3, state, key, (a, b), "step")
    unroll3, _ = batch_update(task, loss, opt, 0.05, 3, state, key, (a, b), "unroll")
    assert not np.allclose(step3.loss_params["w"], unroll3.loss_params["w"], rtol=1e-4)
    with pytest.raises(ValueError, match="unknown meta-update 'chain'"):
        batch_update(task, loss, opt, 0.05, 3, state, key, (a, b), "chain")
    with pytest.raises(ValueError, match="config field 'update': unknown value 'chain'"):
        InverseDynamicsConfig(update="chain")


def _stream(steps, joints=2, batch=5, seed=7):
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    return Samples(jax.random.normal(k1, (steps, batch, 3 * joints)), jax.random.normal(k2, (steps, batch, joints)))


@pytest.mark.slow
def test_online_objective_of_one_step_is_algorithm_1s_objective():
    """A truncation of length 1 on batches (b_0, b_1) is Algorithm 1's objective with inner b_0, outer b_1."""
    from fastadapt.meta.algorithm import online_objective

    task, loss, phi, theta, a, b = _problem("state-dependent")
    stream = jax.tree.map(lambda x, y: jnp.stack([x, y]), a, b)
    online = lambda p: online_objective(task, loss, 0.05, p, theta, stream)[0]
    algorithm_1 = lambda p: meta_objective(task, loss, 0.05, p, theta, a, b)[0]
    assert float(online(phi)) == pytest.approx(float(algorithm_1(phi)), rel=1e-6)
    for g_online, g_step in zip(jax.tree.leaves(jax.grad(online)(phi)), jax.tree.leaves(jax.grad(algorithm_1)(phi))):
        np.testing.assert_allclose(g_online, g_step, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_online_meta_gradient_matches_finite_differences_and_scores_the_next_batch():
    from fastadapt.meta.algorithm import online_objective

    with enable_x64():
        task, loss, phi, theta, *_ = _problem("state-dependent")
        stream = jax.tree.map(lambda a: a.astype(jnp.float64), _stream(5))
        # by hand: step on b_t, score the stepped model on b_{t+1}
        manual, t_hand = [], theta
        for t in range(4):
            t_hand = inner_step(task, loss, 0.05, phi, t_hand, jax.tree.map(lambda a: a[t], stream))
            manual.append(float(task.task_loss(t_hand, jax.tree.map(lambda a: a[t + 1], stream))))
        value, (scores, theta_end) = online_objective(task, loss, 0.05, phi, theta, stream)
        np.testing.assert_allclose(scores, manual, rtol=1e-10)
        assert float(value) == pytest.approx(np.mean(manual), rel=1e-10)
        np.testing.assert_allclose(theta_end[0]["w"], t_hand[0]["w"], rtol=1e-10)
        _check_against_central_differences(lambda p: online_objective(task, loss, 0.05, p, theta, stream)[0], phi, seed=2)


@pytest.mark.slow
def test_online_epoch_carries_the_model_across_truncations():
    """With phi held (eta = 0), 3 truncations of 2 steps score exactly what one unbroken 6-step stream
    scores: the model is carried on, and consecutive truncations share their boundary batch."""
    from fastadapt.meta.algorithm import MetaState, make_meta_optimizer, online_epoch, online_objective

    trainer = MetaTrainer(dataclasses.replace(CONFIG, update="online", iters_max=2, batches_per_epoch=3),
                          _smooth_dataset(2, 0), _smooth_dataset(1, 1))
    task, loss = trainer.task, trainer.loss
    phi = loss.init(jax.random.PRNGKey(1))
    opt = make_meta_optimizer("sgd", 0.0)
    key = jax.random.PRNGKey(5)
    _, values = online_epoch(task, loss, opt, 0.01, 2, 3, MetaState(phi, opt.init(phi)), key)
    stream_key, init_key = jax.random.split(key)
    _, (scores, _) = online_objective(task, loss, 0.01, phi, task.start(init_key), task.meta_stream(stream_key, 7))
    np.testing.assert_allclose(values, np.asarray(scores).reshape(3, 2).mean(1), rtol=1e-5)
    assert task.meta_stream(stream_key, 7).x.shape == (7, 5, 6)


@pytest.mark.slow
def test_online_meta_training_runs_resumes_and_refuses_streams_longer_than_the_data(tmp_path):
    train, test = _smooth_dataset(3, 0), _smooth_dataset(2, 1)
    config = dataclasses.replace(CONFIG, update="online", iters_max=4, batches_per_epoch=6, epochs=2, eval_every=1,
                                 meta_clip=1.0)
    full = MetaTrainer(config, train, test).run(tmp_path / "full", progress=False)
    MetaTrainer(dataclasses.replace(config, epochs=1), train, test).run(tmp_path / "resumed", progress=False)
    resumed = MetaTrainer(config, train, test).run(tmp_path / "resumed", progress=False)
    np.testing.assert_allclose(resumed.loss_params["w"], full.loss_params["w"], rtol=1e-6)
    assert np.all(np.isfinite(full.history["task_loss"]))
    # by default an epoch is as many truncations as fit into the longest trajectory (600 samples)
    assert MetaTrainer(dataclasses.replace(config, batches_per_epoch=0), train, test).num_batches == (600 // 5 - 1) // 4
    with pytest.raises(ValueError, match="update=online plays 40 truncations x 4 steps \\(\\+1\\) of 5 samples = 805 "
                                         "consecutive samples per epoch, but the longest meta-train trajectory has 600"):
        MetaTrainer(dataclasses.replace(config, batches_per_epoch=40), train, test)
    with pytest.raises(ValueError, match="config field 'meta_clip' must be a finite number >= 0"):
        dataclasses.replace(config, meta_clip=-1.0)
    from fastadapt.meta.trainer import MetaTrainer as GenericTrainer
    from fastadapt.experiments.ml3 import sine

    online_sine = sine.Config(update="online")
    with pytest.raises(ValueError, match="update='online' needs a task that plays streams \\(meta_stream\\); SineTask has none"):
        GenericTrainer(online_sine, sine.sine_task(online_sine), sine.meta_loss(online_sine))


@pytest.mark.slow
def test_online_evaluation_scores_each_batch_before_its_step_and_keeps_the_mean():
    from fastadapt.meta.algorithm import inner_step, learning_curve

    task, loss, phi, theta, *_ = _problem("structured")
    stream = _stream(4)
    scores, _ = learning_curve(task, loss, phi, 0.05, theta, stream, None)
    manual, t = [], theta
    for i in range(4):
        batch = jax.tree.map(lambda a: a[i], stream)
        manual.append(float(task.score(t, batch)))
        t = inner_step(task, loss, 0.05, phi, t, batch)
    manual.append(float(task.score(t, jax.tree.map(lambda a: a[3], stream))))
    np.testing.assert_allclose(scores, manual, rtol=1e-5)

    train, test = _smooth_dataset(2, 0), _smooth_dataset(1, 1)
    trainer = MetaTrainer(dataclasses.replace(CONFIG, update="online", iters_max=2, batches_per_epoch=3, eval_steps=30),
                          train, test)
    task = trainer.task
    assert task.eval_summary == "mean"
    _, batches, eval_set = task.eval_problem("meta-test", jax.random.PRNGKey(0), 0, 30)
    assert eval_set is None and batches.x.shape == (30, 5, 6)
    flat = np.asarray(batches.x).reshape(150, 6)  # consecutive samples of one meta-test trajectory
    start = int(np.flatnonzero(np.all(np.isclose(np.asarray(task.test.x), flat[0]), axis=1))[0])
    np.testing.assert_allclose(flat, np.asarray(task.test.x)[start:start + 150])
    curves = np.array([[1.0, 2.0, 3.0], [3.0, 4.0, 8.0]])
    np.testing.assert_allclose(trainer.summary(curves), [2.0, 5.0])
    with pytest.raises(ValueError, match="evaluates on streams of 200 steps x 5 samples = 1000 consecutive samples, "
                                         "but the longest meta-train trajectory has 600; lower eval_steps"):
        MetaTrainer(dataclasses.replace(CONFIG, update="online", iters_max=2, batches_per_epoch=3, eval_steps=200),
                    train, test)


@pytest.mark.slow
def test_learned_rate_is_meta_trained_saved_and_loaded_with_the_loss(tmp_path):
    from fastadapt.losses.regression import LearnedRateLoss

    train, test = _smooth_dataset(3, 0), _smooth_dataset(2, 1)
    config = dataclasses.replace(CONFIG, learned_rate=True, epochs=2)
    result = MetaTrainer(config, train, test).run(tmp_path, progress=False)
    assert float(result.loss_params["log_rate"]) != 0.0  # the rate moved with phi
    saved_config, loss, params, _ = load_loss(tmp_path / "loss.npz")
    assert saved_config.learned_rate and isinstance(loss, LearnedRateLoss) and loss.name == "structured"
    np.testing.assert_allclose(params["log_rate"], result.loss_params["log_rate"])
    # SGD on MSE with a learned rate is learnable too (a meta-learned rate for the plain loss)
    assert MetaTrainer(dataclasses.replace(config, loss="mse"), train, test).loss.learned


@pytest.mark.slow
def test_unrolled_meta_training_runs_and_resumes(tmp_path):
    train, test = _smooth_dataset(3, 0), _smooth_dataset(2, 1)
    config = dataclasses.replace(CONFIG, update="unroll", iters_max=3, epochs=2, eval_every=1)
    full = MetaTrainer(config, train, test).run(tmp_path / "full", progress=False)
    MetaTrainer(dataclasses.replace(config, epochs=1), train, test).run(tmp_path / "resumed", progress=False)
    resumed = MetaTrainer(config, train, test).run(tmp_path / "resumed", progress=False)
    np.testing.assert_allclose(resumed.loss_params["w"], full.loss_params["w"], rtol=1e-6)
    assert np.all(np.isfinite(full.history["task_loss"]))


@pytest.mark.slow
def test_per_layer_rates_step_each_layer_at_its_rate_everywhere_the_loss_is_stepped():
    """SGD at alpha on a loss with log rates r (scalar) and r_l (per layer) steps layer l at
    alpha exp(r + r_l): the meta-trainer's inner step, the runner and the learning curve agree with a
    hand-written step; the meta-gradient w.r.t. r_l matches central differences along the online objective."""
    from fastadapt.optim.loops import run_updates
    from fastadapt.losses.regression import scale_gradients
    from fastadapt.meta.algorithm import learning_curve, online_objective

    task, plain, phi, theta, a, _ = _problem("structured")
    loss = make_loss("structured", 2, learned_rate=True, layers=2)
    params = {**phi, "log_rate": jnp.log(0.5), "log_layer_rates": jnp.log(jnp.array([2.0, 3.0]))}
    assert loss.init(jax.random.PRNGKey(0))["log_layer_rates"].shape == (2,)
    grads = jax.grad(lambda th: plain.apply(phi, task.model.apply(th, a.x), a.y, a.state))(theta)
    expected = [jax.tree.map(lambda p, g, s=s: p - 0.1 * 0.5 * s * g, layer, g_layer)
                for layer, g_layer, s in zip(theta, grads, (2.0, 3.0))]
    batches = jax.tree.map(lambda v: v[None], a)
    stepped = {
        "inner step": inner_step(task, loss, 0.1, params, theta, a),
        "runner": run_updates(task.model, loss, "sgd", 0.1, params, theta, batches)[0],
        "learning curve": learning_curve(task, loss, params, 0.1, theta, batches, a)[1],
    }
    for where, new in stepped.items():
        for x, y in zip(jax.tree.leaves(new), jax.tree.leaves(expected)):
            np.testing.assert_allclose(x, y, rtol=1e-5, err_msg=where)
    with pytest.raises(ValueError, match="per-layer learned rates need a model of 2 layers"):
        scale_gradients(loss, params, [grads[0]])
    with enable_x64():
        stream = jax.tree.map(lambda v: v.astype(jnp.float64), _stream(4))
        theta64 = jax.tree.map(lambda v: v.astype(jnp.float64), theta)
        params64 = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), params)
        _check_against_central_differences(lambda p: online_objective(task, loss, 0.05, p, theta64, stream)[0],
                                           params64, seed=3)


@pytest.mark.slow
def test_per_layer_rates_are_meta_trained_saved_and_used_by_the_adapter(tmp_path):
    from fastadapt.adapt.adapter import Adapter
    from fastadapt.optim.loops import run_updates

    train, test = _smooth_dataset(3, 0), _smooth_dataset(2, 1)
    config = dataclasses.replace(CONFIG, layer_rates=True, epochs=2)
    result = MetaTrainer(config, train, test).run(tmp_path, progress=False)
    assert np.all(np.asarray(result.loss_params["log_layer_rates"]) != 0.0)  # the rates moved with phi
    saved, loss, params, normalizer = load_loss(tmp_path / "loss.npz")
    assert saved.layer_rates and loss.layers == 2
    np.testing.assert_allclose(params["log_layer_rates"], result.loss_params["log_layer_rates"])
    model = saved.model(2)
    theta = model.init(jax.random.PRNGKey(0))
    adapter = Adapter(model, normalizer, theta, loss, params, "sgd", saved.alpha, batch_size=5, warmup=False)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 6)).astype(np.float32), rng.normal(size=(5, 2)).astype(np.float32)
    for i in range(5):
        adapter.observe(x[i, :2], x[i, 2:4], x[i, 4:], y[i])
    batches = Samples(normalizer.inputs(jnp.asarray(x))[None], normalizer.targets(jnp.asarray(y))[None])
    expected, _ = run_updates(model, loss, "sgd", saved.alpha, params, theta, batches)
    for a, b in zip(jax.tree.leaves(adapter.params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
