"""The pipeline's comparison with the tuned baselines, the payload-change figure and the Sim2Real run."""

import json

import numpy as np
import pytest

from fastadapt.cli import main
from fastadapt.data.batches import Normalizer, sequential_stream
from fastadapt.data.trajectory import Dataset, Trajectory
from fastadapt.experiments.pipeline import PipelineConfig, relative_to_baselines
from fastadapt.experiments.pipeline_figures import payload_change_points


def entry(*per_seed):
    return {"overall": float(np.mean(per_seed)), "per_seed": list(per_seed)}


def test_relative_to_baselines_by_hand():
    summary = {
        "from scratch": {
            "mse, sgd best (0.1)": entry(2.0, 2.0), "mse, adam best (0.01)": entry(1.0, 3.0),
            "structured": entry(1.0, 1.0), "structured + MetaGD": entry(0.5, 1.5), "mse, sgd 0.001": entry(9.0, 9.0),
            "pretrained, not adapted": entry(50.0, 50.0),
        },
        "pretrained": {
            "pretrained, not adapted": entry(4.0, 4.0), "pretrained + sgd best (0.03)": entry(1.0, 1.0),
            "pretrained + adam best (0.001)": entry(2.0, 2.0), "pretrained + structured (0.001)": entry(0.5, 1.0),
            "pretrained + structured (validated 0.0001)": entry(2.0, 2.0),
        },
    }
    relative = relative_to_baselines(summary, ["structured"])
    scratch = relative["from scratch"]["structured"]
    assert scratch["vs_best_sgd"] == 0.5 and scratch["vs_best_adam"] == 0.5  # SGD and Adam tie at 2.0
    metagd = relative["from scratch"]["structured + MetaGD"]["vs_best_tuned"]
    assert metagd["ratio"] == 0.5 and metagd["seed_std"] == pytest.approx(0.25)  # per seed 0.25 and 0.75
    warm = relative["pretrained"]["pretrained + structured (0.001)"]
    assert warm["vs_best_tuned"]["ratio"] == 0.75 and warm["vs_not_adapted"]["ratio"] == 0.75 / 4
    assert warm["vs_best_tuned"]["seed_std"] == pytest.approx(0.25)
    best = relative["best_learned"]
    assert best["from scratch"]["method"] == "structured"  # equal means: the first kept, never a baseline
    assert best["pretrained"]["method"] == "pretrained + structured (0.001)"
    summary["from scratch"]["structured"] = entry(np.nan, 1.0)  # a diverged run is inf, not NaN
    diverged = relative_to_baselines(summary, ["structured"])["from scratch"]["structured"]["vs_best_tuned"]
    assert diverged["seed_std"] == float("inf")


def phase(t0, payload, name, steps=20):
    t = t0 + 0.01 * np.arange(steps)
    q = np.zeros((steps, 2))
    return Trajectory(t=t, q=q, qd=q, qdd=q, tau=q + payload, dt=0.01, payload=payload, phase=name)


def test_payload_change_points_are_the_phases_where_the_payload_changes():
    dataset = Dataset((phase(0.0, 0.0, "reach"), phase(0.2, 0.857, "lift"), phase(0.4, 0.857, "move"),
                       phase(0.6, 0.0, "retract")))
    normalizer = Normalizer(np.zeros(6), np.ones(6), np.zeros(2), np.ones(2))
    stream = sequential_stream(dataset, normalizer, 5)
    assert payload_change_points(stream, dataset) == [(4, "0.857 kg attached (lift)"), (12, "0.857 kg detached (retract)")]


def test_sim2real_keys_and_bad_values(capsys):
    assert main(["keys", "sim2real"]) == 0
    keys = capsys.readouterr().out
    assert "gap_seed" in keys and "schunk_path" not in keys and "payload_changes" in keys
    assert main(["keys", "sim"]) == 0
    assert "gap_seed" not in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown data 'real', expected one of sim, schunk, sim2real"):
        PipelineConfig(data="real")
    with pytest.raises(ValueError, match="payload_changes"):
        PipelineConfig(payload_changes=-1)


@pytest.mark.slow
def test_sim2real_run(tmp_path):
    """Losses meta-trained on the nominal robot and on the gap robot, both on the gap robot's stream,
    each also stepped by MetaGD; the report names the simulated reality gap."""
    out = tmp_path / "run"
    args = ["run", "sim2real", "--quick", "--no-progress", "--out", str(out), "losses=structured", "meta.epochs=1",
            "online.seeds=2", "online.memory=true", "online.warm_rate_scales=1", "payload_changes=1"]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    scratch = metrics["online"]["from scratch"]
    assert {"structured", "structured (nominal sim)", "structured + MetaGD", "structured (nominal sim) + MetaGD"} <= set(scratch)
    assert metrics["relative_to_baselines"]["best_learned"]["from scratch"]["method"] in scratch
    assert metrics["simulated_reality_gap"]["delay_ticks"] == 1
    assert (out / "losses-nominal" / "structured" / "loss.npz").exists() and (out / "losses" / "structured" / "loss.npz").exists()
    from fastadapt.data.io import load
    nominal, gap = load(out / "data" / "sine_train.npz"), load(out / "data" / "gap-robot" / "sine_train.npz")
    assert np.abs(nominal[0].tau - gap[0].tau).mean() > 0.1
    assert len(load(out / "data" / "gap-robot" / "sine_payload_train_1.npz")) == len(nominal)
    assert "fig_payload_changes.png" in metrics["figures"]
    report = (out / "report.md").read_text()
    assert "simulated reality gap" in report and "| structured (nominal sim) |" in report


def test_the_online_rate_is_each_loss_files_own_unless_set():
    from fastadapt.experiments.pipeline import with_loss_rates
    from fastadapt.config import apply_overrides

    swept = apply_overrides(PipelineConfig(), ["meta.alpha=0.003"])
    assert swept.online.alpha is None and with_loss_rates(swept).online.alpha == 0.003
    fixed = apply_overrides(PipelineConfig(), ["meta.alpha=0.003", "online.alpha=0.01"])
    assert with_loss_rates(fixed).online.alpha == 0.01
    assert with_loss_rates(PipelineConfig()) == apply_overrides(PipelineConfig(), ["online.alpha=0.001"])  # old runs resume


@pytest.mark.slow
def test_a_sweep_of_meta_alpha_adapts_online_at_each_value(tmp_path):
    """The README's own sweep example: each point's learned losses adapt online at its meta.alpha."""
    from fastadapt import sweep as sweeps

    out = tmp_path / "sweep"
    assert main(["sweep", "sim", "--quick", "--serial", "--no-progress", "--out", str(out), "meta.alpha=0.001,0.003",
                 "losses=structured", "meta.epochs=1", "online.seeds=1", "online.warm_rate_scales=1", "trials=0"]) == 0
    for value in ("0.001", "0.003"):
        point = out / "points" / sweeps.Point((("meta.alpha", value),), None).name
        practitioner = json.loads((point / "metrics.json").read_text())["online"]["pretrained"]
        assert f"pretrained + structured ({value})" in practitioner
