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
            "pretrained, not adapted": entry(50.0, 50.0), "mse, sgd tuned on meta-train (0.03)": entry(3.0, 3.0),
            "rls, 9 random features": entry(1.5, 2.5),
        },
        "pretrained": {
            "pretrained, not adapted": entry(4.0, 4.0), "pretrained + sgd best (0.03)": entry(1.0, 1.0),
            "pretrained + adam best (0.001)": entry(2.0, 2.0), "pretrained + structured (0.001)": entry(0.5, 1.0),
            "pretrained + structured (validated 0.0001)": entry(2.0, 2.0),
            "pretrained + residual rls": entry(0.8, 1.2),
        },
    }
    anchors = {"from scratch": ["mse, sgd tuned on meta-train (0.03)", "rls, 9 random features"],
               "pretrained": ["pretrained + residual rls"]}
    relative = relative_to_baselines(summary, ["structured"], anchors)
    assert relative["best_anchor"] == {"from scratch": "rls, 9 random features", "pretrained": "pretrained + residual rls"}
    assert relative["from scratch"]["structured"]["vs_best_anchor"]["ratio"] == 0.5  # 1.0 / 2.0
    assert relative["from scratch"]["structured"]["vs_best_anchor"]["seed_std"] == pytest.approx(np.std([1 / 1.5, 1 / 2.5]))
    assert relative["pretrained"]["pretrained + structured (0.001)"]["vs_best_anchor"]["ratio"] == 0.75
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
    diverged = relative_to_baselines(summary, ["structured"], anchors)["from scratch"]["structured"]["vs_best_tuned"]
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


def _ramp(length: int, offset: float) -> Trajectory:
    """One joint whose samples count up, so a batch's position in its trajectory can be read off its values."""
    t = np.arange(length) * 0.01
    q = (offset + np.arange(length, dtype=float))[:, None] / 100
    return Trajectory(t=t, q=q, qd=-q, qdd=2 * q, tau=np.sin(q), dt=0.01)


def test_the_fig5_streams_are_each_trajectory_in_consecutive_batches_cut_to_the_shortest():
    from fastadapt.experiments.pipeline import trajectory_streams

    dataset = Dataset((_ramp(23, 0.0), _ramp(31, 50.0)))
    normalizer = Normalizer(np.zeros(3), np.ones(3), np.zeros(1), np.ones(1))
    streams = trajectory_streams(dataset, normalizer, 5)
    assert len(streams) == 2
    for stream, start in zip(streams, (0.0, 50.0)):
        assert stream.batches.x.shape == (4, 5, 3)  # 23 samples: 4 whole batches; the longer one cut to 4
        q = (start + np.arange(20)) / 100
        np.testing.assert_allclose(np.asarray(stream.batches.x)[:, :, 0].ravel(), q, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(stream.batches.y)[:, :, 0].ravel(), np.sin(q), rtol=1e-5)


def test_the_fig5_stream_records_each_batchs_error_before_the_step_on_it():
    """SGD on MSE from the same start, worked by hand with jax.grad: the score of batch k is the MSE of
    the model after k steps (on batches 0..k-1), on batch k."""
    import jax
    import jax.numpy as jnp

    from fastadapt.adapt.online import OnlineConfig, initial_models
    from fastadapt.experiments.pipeline import sine_stream, trajectory_streams
    from fastadapt.models.mlp import InverseDynamicsMLP

    test = Dataset((_ramp(30, 0.0), _ramp(30, 40.0)))
    train = Dataset((_ramp(30, 10.0), _ramp(30, 70.0)))
    normalizer = Normalizer(np.zeros(3), np.ones(3), np.zeros(1), np.ones(1))
    config = PipelineConfig(online=OnlineConfig(seeds=2, sgd_rates=(0.05,), sgd_grid=(0.05, 0.5), adam_grid=(0.01,)))
    model = InverseDynamicsMLP(1, hidden=(4,))
    starts = initial_models(model, 2, 0)
    scores, summary = sine_stream(config, model, {}, train, test, normalizer, starts)
    got = scores["mse, sgd 0.05"]
    assert got.shape == (2, 2, 6)  # trajectories, seeds, batches
    mse = lambda theta, x, y: jnp.mean((model.apply(theta, x) - y) ** 2)
    for trajectory, stream in enumerate(trajectory_streams(test, normalizer, 5)):
        theta = jax.tree_util.tree_map(lambda leaf: leaf[1], starts)  # seed 1
        for k in range(6):
            x, y = stream.batches.x[k], stream.batches.y[k]
            np.testing.assert_allclose(got[trajectory, 1, k], mse(theta, x, y), rtol=1e-4)
            theta = jax.tree_util.tree_map(lambda p, g: p - 0.05 * g, theta, jax.grad(mse)(theta, x, y))
    assert summary["batches"] == 6 and summary["trajectories"] == 2
    assert set(summary["rates"]) == {"sgd", "adam", "rls", "sgd, upper bound"}
    rls = [name for name in summary["methods"] if name.startswith("rls, ") and name.endswith("tuned on meta-train")]
    assert len(rls) == 1 and summary["rates"]["rls"]["features"] == 200
    fair = summary["methods"][f"mse, sgd tuned on meta-train ({summary['rates']['sgd']:g})"]
    assert fair["vs_sgd_tuned_on_meta_train"] == pytest.approx(1.0)
    assert any(name.endswith("upper bound)") for name in summary["methods"])


def test_paper_applies_the_papers_key_set_before_the_overrides(tmp_path, capsys):
    from fastadapt.cli import build_config, parse
    from fastadapt.experiments import registry
    from fastadapt.experiments.pipeline import PAPER_KEYS

    experiment = registry.command(["run", "sim"])
    args = parse(["run", "sim", "--paper", "meta.epochs=7"])
    config = build_config(args, experiment.default_config(), experiment)
    assert (config.meta.epochs, config.meta.batches_per_epoch, config.meta.seeds, config.meta.keep) == (7, 10, 5, "final")
    assert "meta.epochs=300" in PAPER_KEYS
    assert main(["run", "sim", "--paper", "--quick", "--out", str(tmp_path / "x")]) == 2
    assert "--quick and --paper together" in capsys.readouterr().err
    assert main(["ml3", "digits", "--paper", "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "`fastadapt ml3 digits` has no --paper key set" in err and "ml3 sine" in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
