"""ML3's experiments on the one meta-trainer: the sine task's data and losses, and the command end to end."""

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fastadapt.cli import main
from fastadapt.experiments import registry
from fastadapt.experiments.ml3.sine import Config, meta_loss, sine_task


def test_sine_task_draws_the_papers_functions():
    config = Config(seed=3, points=50, test_tasks=4)
    task = sine_task(config)
    x, y = np.asarray(task.train_x), np.asarray(task.train_y)
    assert x.shape == (50, 1) and np.all(np.abs(x) <= 2.0)
    np.testing.assert_allclose(y, np.sin(x - math.pi), atol=1e-6)
    tx, ty = np.asarray(task.test_x), np.asarray(task.test_y)
    assert tx.shape == (4, 50, 1)
    # y = A sin(x - w): fit A and w per function by least squares on sin x and cos x
    for i in range(4):
        basis = np.concatenate([np.sin(tx[i]), np.cos(tx[i])], axis=1)
        (c_sin, c_cos), *_ = np.linalg.lstsq(basis, ty[i, :, 0], rcond=None)
        assert 0.2 <= math.hypot(c_sin, c_cos) <= 5.0 + 1e-4
    # the inner step and the task loss see the same full batch
    (inner, outer) = task.meta_batches(jax.random.PRNGKey(0), 3)
    assert inner[0].shape == (3, 50, 1)
    np.testing.assert_array_equal(inner[0], outer[0])


def test_meta_loss_is_the_papers_network_and_mse_baseline_is_exact():
    config = Config()  # the authors' protocol: a 2-50-50-1 meta-loss without biases
    loss = meta_loss(config)
    params = loss.init(jax.random.PRNGKey(0))
    assert [layer["w"].shape for layer in params["net"]] == [(2, 50), (50, 50), (50, 1)]
    ours = meta_loss(Config(hidden=(40, 40), loss_hidden=(40, 40), loss_bias=True)).init(jax.random.PRNGKey(0))
    assert [layer["w"].shape for layer in ours["net"]] == [(2, 40), (40, 40), (40, 1)] and "b" in ours["net"][0]
    task = sine_task(config)
    theta = task.start(jax.random.PRNGKey(1))
    pred, target, extra = task.loss_inputs(theta, (task.train_x, task.train_y))
    assert extra is None
    manual = float(jnp.mean((pred - target) ** 2))
    assert float(task.task_loss(theta, (task.train_x, task.train_y))) == pytest.approx(manual, rel=1e-6)
    assert float(task.baseline_loss.apply({}, pred, target)) == pytest.approx(manual, rel=1e-6)


@pytest.mark.slow
def test_ml3_sine_command_writes_figure_metrics_and_resumes(tmp_path):
    args = ["ml3", "sine", "--quick", "--out", str(tmp_path), "--no-progress", "epochs=2", "batches_per_epoch=2",
            "eval_every=1", "eval_steps=5", "test_tasks=3", "eval_seeds=3"]
    assert main(args) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["outer_iterations"] == 4
    assert len(metrics["meta_test_final_mse"]["ML3"]["per_seed"]) == 2
    assert (tmp_path / "fig2_sine_regression.png").exists()
    assert "ML3: sine regression" in (tmp_path / "report.md").read_text()
    first = (tmp_path / "metrics.json").read_text()
    assert main(args) == 0  # the finished meta-training resumes from its checkpoint: same numbers
    assert json.loads((tmp_path / "metrics.json").read_text())["meta_test_final_mse"] == json.loads(first)["meta_test_final_mse"]


def test_bad_ml3_input_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["ml3", "cosine"])
    assert "invalid choice: 'cosine'" in capsys.readouterr().err
    assert main(["ml3", "sine", "--out", str(tmp_path), "amplitude_min=6"]) == 2
    assert "'amplitude_min' (6.0) must not exceed 'amplitude_max' (5.0)" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown ml3 experiment 'cosine'"):
        registry.command(["ml3", "cosine"])


@pytest.mark.slow
def test_the_authors_sine_protocol_is_the_default_and_ours_a_key_set():
    """facebookresearch/LearningToLearn's sine setting: 1-100-10-1 optimizee and 2-50-50-1 bias-free meta-loss,
    both Xavier-uniform, meta-test inputs from U[-5, 5], 500 outer iterations, the final loss kept."""
    from fastadapt.config import apply_overrides
    from fastadapt.experiments.ml3 import sine, transfer

    config = apply_overrides(sine.Config(), list(sine.PAPER_KEYS))
    assert config == sine.Config()
    assert config.epochs * config.batches_per_epoch == 500 and config.iters_max == 1 and config.keep == "final"
    ours = apply_overrides(sine.Config(), list(sine.OURS_KEYS))
    assert ours == dataclasses.replace(sine.Config(), **sine.OURS)
    assert (ours.hidden, ours.loss_bias, ours.epochs * ours.batches_per_epoch) == ((40, 40), True, 3000)
    pinned = transfer.Config()  # the transfer experiment stays on ours, where it was measured
    assert all(getattr(pinned, key) == value for key, value in sine.OURS.items())
    task, loss = sine.sine_task(config), sine.meta_loss(config)
    assert float(jnp.abs(task.test_x).max()) > 2.5 and float(jnp.abs(task.test_x).max()) <= 5.0
    assert float(jnp.abs(task.train_x).max()) <= 2.0
    theta = task.model.init(jax.random.PRNGKey(0))
    assert [layer["w"].shape for layer in theta] == [(1, 100), (100, 10), (10, 1)]
    assert float(jnp.abs(theta[0]["w"]).max()) <= (6 / 101) ** 0.5  # Xavier-uniform's bound
    phi = loss.init(jax.random.PRNGKey(0))
    assert [sorted(layer) for layer in phi["net"]] == [["w"], ["w"], ["w"]]
    ours = sine.sine_task(ours)
    assert float(jnp.abs(ours.test_x).max()) <= 2.0  # ours: meta-test inputs in the meta-train range
    with pytest.raises(ValueError, match="config field 'loss_weights': unknown value 'he'"):
        sine.Config(loss_weights="he")
