import json

import pytest

from fastadapt.cli import main
from fastadapt.config import ConfigError, apply_overrides
from fastadapt.experiments.pipeline import PipelineConfig


def test_overrides_parse_by_type():
    config = apply_overrides(PipelineConfig(), ["meta.epochs=7", "losses=structured,state-dependent",
                                                "noise=true", "online.alpha=0.01", "meta.hidden=32,32"])
    assert config.meta.epochs == 7 and config.losses == ("structured", "state-dependent")
    assert config.noise is True and config.online.alpha == 0.01 and config.meta.hidden == (32, 32)


@pytest.mark.parametrize("item, message", [
    ("meta.epoch=3", "unknown config key 'meta.epoch'"),
    ("meta.epochs=three", "'meta.epochs=three': expected a value of type int"),
    ("epochs", "'epochs': expected key=value"),
    ("losses=l1", "unknown learned loss 'l1'"),
    ("meta=3", "'meta' is a group"),
    ("online.alpha=nan", "'online.alpha=nan': expected a finite number"),
])
def test_bad_overrides(item, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(PipelineConfig(), [item])


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    assert main(["data", "inspect", str(tmp_path / "missing.npz")]) == 2
    assert "fastadapt: error: data file not found" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path / "r"), "meta.epochz=1"]) == 2
    assert "unknown config key 'meta.epochz'" in capsys.readouterr().err


def test_a_run_that_fails_before_producing_anything_leaves_no_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "schunk", "--out", str(out), f"schunk_path={tmp_path / 'missing.npz'}"]) == 2
    assert "data file not found" in capsys.readouterr().err
    assert not out.exists()  # so the corrected command does not meet a stale config.json


def test_cli_refuses_foreign_directory(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 2
    assert "not a fastadapt run directory" in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_data_commands(tmp_path, capsys):
    out = tmp_path / "sine.csv"
    assert main(["data", "sine", str(out)]) == 0
    assert main(["data", "sine", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["data", "convert", str(out), str(tmp_path / "sine.npz")]) == 0
    assert main(["data", "inspect", str(tmp_path / "sine.npz")]) == 0
    assert "9 trajectories, 21600 samples, 7 joints" in capsys.readouterr().out


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["demo", "--quick", "--no-progress", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    scratch = metrics["online"]["from scratch"]
    assert set(scratch) >= {"structured", "state-dependent", "mlp", "pretrained, not adapted"}
    assert all(len(v["phases"]) == 5 for v in scratch.values())
    anchors = metrics["relative_to_baselines"]["best_anchor"]
    assert anchors["from scratch"] in scratch and anchors["pretrained"] in metrics["online"]["pretrained"]
    alpaca = [n for n in scratch if n.startswith("alpaca, meta-learned features + bayesian last layer (forgetting ")]
    assert len(alpaca) == 1 and alpaca[0] in metrics["online"]["pretrained"]  # an anchor of both protocols
    assert len(metrics["alpaca_meta_training"]["task_loss"]) == 2  # --quick: 2 epochs
    assert any(n.startswith("rls, 50 random features") for n in scratch) and any(n.startswith("linear rls") for n in scratch)
    assert any(n.startswith("pretrained + residual rls") for n in metrics["online"]["pretrained"])
    assert any(n.startswith("pretrained + rls head on its last hidden layer") for n in metrics["online"]["pretrained"])
    assert len(metrics["rate_grids"]["rls-50-meta-train"]) == 2  # --quick: one length scale x two forgetting factors
    for name in metrics["figures"]:
        assert (out / name).stat().st_size > 10_000
    assert "| state-dependent |" in (out / "report.md").read_text()
    # a second call with the same config resumes (reuses data and checkpoints) rather than failing
    assert main(["demo", "--quick", "--no-progress", "--out", str(out)]) == 0
    # a loss trained there drives the adapt command and the control-loop Adapter
    loss_file = out / "losses" / "state-dependent" / "loss.npz"
    capsys.readouterr()
    assert main(["adapt", "--loss", str(loss_file), "--stream", str(out / "data" / "pick_place_trial0.npz"),
                 "seeds=2", "rls.features=20"]) == 0
    table = capsys.readouterr().out
    assert "| rls, 20 random features (length scale" in table and "| linear rls (forgetting" in table
    # the ALPaCA anchor's file adapts by its posterior (no SGD row for it)
    assert main(["adapt", "--loss", str(out / "anchors" / "alpaca" / "loss.npz"), "--stream",
                 str(out / "data" / "pick_place_trial0.npz"), "seeds=2", "rls.features=20"]) == 0
    table = capsys.readouterr().out
    assert "| alpaca, meta-learned features + bayesian last layer (forgetting 0.998) |" in table
    assert "| alpaca, sgd" not in table and "| mse, sgd 0.001 |" in table
