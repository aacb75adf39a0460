"""Sweeps: the grid, seeds and metrics by hand; a sweep that survives a failing point and resumes only what
is not done; the same sweep on a local Ray with 2 workers."""

from __future__ import annotations

import json

import pytest

from fastadapt import sweep as sweeps
from fastadapt.cli import main
from fastadapt.experiments.config import ConfigError
from fastadapt.experiments.inverse_dynamics import PipelineConfig
from fastadapt.experiments.lrmem import rosenbrock

ROSENBROCK = ["sweep", "rosenbrock", "--quick", "--no-progress", "steps=40,80", "eta=0.001"]


def test_grid_values_are_split_by_type_checked_and_single_values_fixed():
    grid, fixed = sweeps.parse_grid(["meta.alpha=0.001,0.01", "meta.hidden=32,32|64", "online.seeds=2"], PipelineConfig())
    assert grid == {"meta.alpha": ["0.001", "0.01"], "meta.hidden": ["32,32", "64"]}
    assert fixed == ["online.seeds=2"]
    with pytest.raises(ConfigError, match=r"'meta.epochs=x': expected a value of type int"):
        sweeps.parse_grid(["meta.epochs=10,x"], PipelineConfig())
    with pytest.raises(ConfigError, match=r"unknown config key 'meta.alhpa'; did you mean 'meta.alpha'"):
        sweeps.parse_grid(["meta.alhpa=1,2"], PipelineConfig())
    with pytest.raises(ConfigError, match=r"'meta.epochs=1,,2': an empty value"):
        sweeps.parse_grid(["meta.epochs=1,,2"], PipelineConfig())
    with pytest.raises(ConfigError, match=r"'meta.epochs' is given twice"):
        sweeps.parse_grid(["meta.epochs=1,2", "meta.epochs=3"], PipelineConfig())


def test_points_are_the_product_with_seeds_innermost_on_every_seed_key():
    points = sweeps.grid_points({"a": ["1", "2"], "b": ["x", "y"]}, seeds=2)
    assert [p.name for p in points[:3]] == ["a=1__b=x__seed=0", "a=1__b=x__seed=1", "a=1__b=y__seed=0"]
    assert len(points) == 8 and len({p.group for p in points}) == 4
    assert sweeps.seed_keys(PipelineConfig()) == ["meta.seed", "online.seed"]
    overrides = sweeps.point_overrides(points[1], PipelineConfig(), ["online.seeds=2"])
    assert overrides == ["online.seeds=2", "a=1", "b=x", "meta.seed=1", "online.seed=1"]
    assert [p.name for p in sweeps.grid_points({"meta.hidden": ["32,32"]}, None)] == ["meta.hidden=32,32"]


def test_metric_paths_with_wildcards():
    metrics = {"online": {"from scratch": {"mse": {"overall": 2.0}, "structured": {"overall": 1.0, "x": "n/a"}}}}
    assert sweeps.metric_values(metrics, "online/from scratch/*/overall") == {"mse": 2.0, "structured": 1.0}
    assert sweeps.metric_values(metrics, "online/from scratch/mse/overall") == {"overall": 2.0}
    with pytest.raises(KeyError, match=r"no number at 'online/warm/\*/overall' in metrics.json \(its top-level keys: online\)"):
        sweeps.metric_values(metrics, "online/warm/*/overall")


def test_summary_pools_seeds_by_hand():
    points = sweeps.grid_points({"eta": ["0.1", "0.2"]}, seeds=2)
    sweep = sweeps.Sweep(["lrmem", "rosenbrock"], rosenbrock.Config(), {"eta": ["0.1", "0.2"]}, [], points,
                         None, "runs/*/final_f", [])
    results = {points[0]: {"status": "done", "metrics": {"GD": 1.0}}, points[1]: {"status": "done", "metrics": {"GD": 3.0}},
               points[2]: {"status": "done", "metrics": {"GD": 5.0}}, points[3]: {"status": "failed", "error": "boom"}}
    summary = sweeps.summarise(sweep, results)
    first, second = summary["rows"]
    assert first["metrics"]["GD"]["mean"] == 2.0 and first["metrics"]["GD"]["std"] == pytest.approx(2 ** 0.5)
    assert second["metrics"]["GD"] == {"mean": 5.0, "std": 0.0, "values": [5.0]} and second["failed"] == ["eta=0.2__seed=1"]
    table = sweeps.summary_markdown(summary)
    assert "| 0.1 | 2/2 | 2 ± 1.4 |" in table and "| 0.2 | 1/2 | 5 ± 0 |" in table
    assert "`eta=0.2__seed=1`: boom" in table


@pytest.mark.slow
def test_a_failing_point_is_reported_the_others_go_on_and_a_rerun_does_only_the_rest(tmp_path, capsys, monkeypatch):
    out = tmp_path / "sweep"
    real_run = rosenbrock.run

    def diverging_at_80_steps(config, directory, **kwargs):  # a fault injected into one point
        if config.steps == 80:
            raise FloatingPointError("f is NaN after step 3")
        return real_run(config, directory, **kwargs)

    monkeypatch.setattr(rosenbrock, "run", diverging_at_80_steps)
    monkeypatch.setattr(sweeps, "ray_available", lambda: False)
    assert main([*ROSENBROCK, "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.out.count("Ray is not installed (pip install 'fastadapt[distributed]'); running the 2 points "
                              "one after another in this process") == 1
    assert "point steps=80 failed: FloatingPointError: f is NaN after step 3" in captured.err
    assert "1 of 2 points failed" in captured.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["points"]["steps=40"]["status"] == "done" and summary["points"]["steps=80"]["status"] == "failed"
    assert "FloatingPointError: f is NaN after step 3" in (out / "logs" / "steps=80.txt").read_text()
    done = (out / "points" / "steps=40" / "metrics.json").stat().st_mtime_ns

    monkeypatch.setattr(rosenbrock, "run", real_run)
    assert main([*ROSENBROCK, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["points"]["steps=40"]["status"] == "skipped" and summary["points"]["steps=80"]["status"] == "done"
    assert (out / "points" / "steps=40" / "metrics.json").stat().st_mtime_ns == done
    gd = [row["metrics"]["GD"]["mean"] for row in summary["rows"]]
    assert gd[1] < gd[0]  # more steps, lower Rosenbrock value
    assert (out / "sweep.png").stat().st_size > 0 and "| 80 | 1/1 |" in (out / "summary.md").read_text()


def test_sweep_refuses_what_it_cannot_do(tmp_path, capsys):
    for argv, message in [
        (["sweep", "rosenbrock", "--seeds", "2"], "`fastadapt lrmem rosenbrock` has no seed key; --seeds cannot be used"),
        (["sweep", "rosenbrock", "steps=40"], "nothing to sweep: give a key with several values"),
        (["sweep", "sim", "--seeds", "2", "meta.seed=1,2"], "--seeds sets meta.seed, online.seed; do not also give meta.seed"),
        (["sweep", "meta-train", "alpha=1,2"], "sweep runs experiments"),
        (["sweep", "bogus", "a=1,2"], "unknown experiment 'bogus'"),
        (["sweep", "id-batch", "steps=1,2"], "no default metric for `fastadapt lrmem id-batch`; pass --metric PATH"),
    ]:
        assert main([*argv, "--out", str(tmp_path / "s")]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_the_same_sweep_on_a_local_ray_with_two_workers(tmp_path):
    pytest.importorskip("ray")
    serial, parallel = tmp_path / "serial", tmp_path / "ray"
    assert main([*ROSENBROCK, "--out", str(serial), "--serial"]) == 0
    assert main([*ROSENBROCK, "--out", str(parallel), "--workers", "2"]) == 0
    a, b = (json.loads((d / "summary.json").read_text()) for d in (serial, parallel))
    assert b["timing"]["ray"] is True and b["timing"]["workers"] == 2 and a["timing"]["ray"] is False
    assert a["rows"] == b["rows"]  # the same numbers, whichever runs them
    assert all(p["status"] == "done" for p in b["points"].values())
    # a re-run on Ray runs nothing again
    assert main([*ROSENBROCK, "--out", str(parallel), "--workers", "2"]) == 0
    again = json.loads((parallel / "summary.json").read_text())
    assert {p["status"] for p in again["points"].values()} == {"skipped"} and again["rows"] == b["rows"]
