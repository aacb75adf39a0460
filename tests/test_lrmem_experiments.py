"""The learning-rate memory experiments end to end at toy sizes, through the command line."""

import json

import numpy as np
import pytest

from fastadapt.cli import main
from fastadapt.optim.learned_lstm import preprocess


@pytest.mark.slow
def test_rosenbrock_metagd_beats_gd_and_the_reused_memory_is_faster(tmp_path):
    assert main(["lrmem", "rosenbrock", "--out", str(tmp_path), "--no-progress", "steps=2500"]) == 0
    runs = json.loads((tmp_path / "metrics.json").read_text())["runs"]
    gd, first, second = (runs[k]["final_f"] for k in ("GD", "MetaGD run 1", "MetaGD run 2 (memory reused)"))
    assert second < first < gd
    assert (tmp_path / "fig2_rosenbrock.png").exists() and "Rosenbrock" in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_online_lifting_table_has_every_cell(tmp_path):
    out = tmp_path / "run"
    args = ["lrmem", "id-online", "--quick", "--out", str(out), "--no-progress", "trials=1", "duration=0.6"]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    table = metrics["table"]
    assert len(table) == 3 * 3 * 2  # tasks x methods (GD, MetaGD, Adam) x reload
    assert set(metrics["torque_ranges"]) == {"no object", "light", "heavy"}
    assert "Adam reload" in (out / "report.md").read_text() and "torque range" in (out / "report.md").read_text()
    assert all(np.isfinite(v) for v in table.values())
    # no reload on the first task: both protocols are the same run
    assert table["0.001|no object|GD|noreload"] == table["0.001|no object|GD|reload"]
    assert (out / "fig5_online_lifting.png").exists()


@pytest.mark.slow
def test_batch_and_digit_experiments_write_their_figures(tmp_path):
    assert main(["lrmem", "id-batch", "--quick", "--out", str(tmp_path / "b"), "--no-progress", "points=400", "steps=20"]) == 0
    assert (tmp_path / "b" / "fig4_batch_id.png").exists()
    args = ["lrmem", "digits", "--quick", "--out", str(tmp_path / "d"), "--no-progress", "steps=10", "lstm_rounds=2",
            "pairs=1-2,1-3", "etas=0.1"]
    assert main(args) == 0
    metrics = json.loads((tmp_path / "d" / "metrics.json").read_text())
    assert "1 vs 3|MetaGD carried memory" in metrics["curves"]
    assert (tmp_path / "d" / "fig3_digits.png").exists()


def test_unknown_experiment_and_bad_override_are_refused(tmp_path, capsys):
    assert main(["lrmem", "rosenbrock", "--out", str(tmp_path), "stepz=3"]) == 2
    assert "unknown config key 'stepz'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["lrmem", "mnist"])


def test_lstm_gradient_preprocessing_closed_form():
    out = np.asarray(preprocess(np.array([1.0, -np.e ** -2, 1e-6])))
    np.testing.assert_allclose(out[0], [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(out[1], [-0.2, -1.0], rtol=1e-5)
    np.testing.assert_allclose(out[2], [-1.0, np.e ** 10 * 1e-6], rtol=1e-5)
