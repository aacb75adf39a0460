"""ML3's binary digit classification: the LeNet, the cross-entropy, the pairs and the command."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fastadapt.cli import main
from fastadapt.data.trajectory import DataError
from fastadapt.losses.classification import BinaryCrossEntropyLoss
from fastadapt.experiments.ml3.digits import Config, digits_task, draw_pairs, load_pairs
from fastadapt.models.lenet import LeNet


def test_binary_cross_entropy_is_the_closed_form():
    logits = jnp.array([[-2.0], [0.3], [4.0]])
    labels = jnp.array([[0.0], [1.0], [1.0]])
    s = 1 / (1 + np.exp(-np.asarray(logits)))
    expected = -np.mean(np.asarray(labels) * np.log(s) + (1 - np.asarray(labels)) * np.log(1 - s))
    assert float(BinaryCrossEntropyLoss().apply({}, logits, labels)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("size, kernel, flat", [(8, 3, 2 * 2 * 16), (28, 5, 7 * 7 * 16)])
def test_lenet_shapes(size, kernel, flat):
    model = LeNet(image_size=size, kernel=kernel)
    params = model.init(jax.random.PRNGKey(0))
    assert params["conv1"]["w"].shape == (kernel, kernel, 1, 6) and params["dense1"]["w"].shape == (flat, 120)
    assert model.apply(params, jnp.zeros((3, size, size, 1))).shape == (3, 1)


def test_pairs_are_distinct_and_split_into_train_and_held_out_images():
    pairs = draw_pairs(range(10), seed=4)
    assert len(set(pairs)) == 5 and all(a < b for a, b in pairs)
    data = load_pairs(Config(pairs=(3, 8, 1, 7, 0, 6)))
    assert data.pairs == ((3, 8), (1, 7), (0, 6))
    assert data.train_x.shape[:2] == data.train_y.shape[:2] and data.train_x.shape[2:] == (8, 8, 1)
    assert set(np.unique(data.train_y)) == {0.0, 1.0}
    # no image is both a training and a held-out image of its pair
    train = {row.tobytes() for row in data.train_x[0]}
    assert not any(row.tobytes() in train for row in data.eval_x[0])


@pytest.mark.slow
def test_digits_task_scores_and_accuracy():
    task = digits_task(Config(pairs=(0, 1, 2, 3), batch_size=8))
    theta = task.start(jax.random.PRNGKey(0))
    (inner, outer) = task.meta_batches(jax.random.PRNGKey(1), 2)
    assert inner[0].shape == (2, 8, 8, 8, 1) and outer[1].shape == (2, 8, 1)
    _, batches, eval_set = task.eval_problem("meta-test", jax.random.PRNGKey(2), 0, 4)
    np.testing.assert_array_equal(eval_set[0], task.eval_x[1])
    accuracy = task.run_accuracy(jax.tree.map(lambda a: jnp.stack([a, a]), theta), "meta-test")
    logits = task.model.apply(theta, task.eval_x[1])
    expected = np.mean((np.asarray(logits) > 0) == (np.asarray(task.eval_y[1]) > 0.5))
    np.testing.assert_allclose(accuracy, [expected, expected], rtol=1e-6)


def test_bad_digit_pairs_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"pair \(2, 2\) holds the same digit twice"):
        Config(pairs=(2, 2, 1, 3))
    with pytest.raises(ValueError, match="at least two pairs"):
        Config(pairs=(1, 2, 3))
    with pytest.raises(DataError, match="digit 12 is not in sklearn 8x8 digits"):
        load_pairs(Config(pairs=(1, 12, 2, 3)))
    assert main(["ml3", "digits", "--out", str(tmp_path / "r"), f"source={tmp_path / 'nowhere'}"]) == 2
    assert "MNIST directory not found" in capsys.readouterr().err


@pytest.mark.slow
def test_ml3_digits_command_writes_figure_and_metrics(tmp_path):
    args = ["ml3", "digits", "--out", str(tmp_path), "--no-progress", "epochs=1", "batches_per_epoch=2", "seeds=1",
            "eval_every=1", "eval_steps=3", "eval_seeds=4", "pairs=0,1,2,3,4,5", "batch_size=16"]
    assert main(args) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["pairs"] == {"meta_train": [0, 1], "meta_test": [[2, 3], [4, 5]]}
    accuracy = metrics["meta_test_final_accuracy"]["ML3"]["mean"]
    assert 0.0 <= accuracy <= 1.0
    assert (tmp_path / "fig2_binary_digits.png").exists()
