"""Sweeps: the grid, seeds and metrics by hand; a sweep that survives a failing point and resumes only what
is not done; the same sweep on a local Ray with 2 workers."""

from __future__ import annotations

import json

import pytest

from fastadapt import sweep as sweeps
from fastadapt.sweep import command as sweep_command
from fastadapt.cli import main
from fastadapt.config import ConfigError
from fastadapt.experiments.pipeline import PipelineConfig
from fastadapt.experiments.lrmem import rosenbrock

ROSENBROCK = ["sweep", "rosenbrock", "--quick", "--no-progress", "steps=40,80", "eta=0.001"]
STEPS_40, STEPS_80 = (sweeps.Point((("steps", v),), None).name for v in ("40", "80"))


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
    assert [p.label for p in points[:3]] == ["a=1 b=x seed=0", "a=1 b=x seed=1", "a=1 b=y seed=0"]
    assert [p.name.rsplit("-", 1)[0] for p in points[:3]] == ["a=1__b=x__seed=0", "a=1__b=x__seed=1", "a=1__b=y__seed=0"]
    assert len(points) == 8 and len({p.group for p in points}) == 4
    assert sweeps.seed_keys(PipelineConfig()) == ["meta.seed", "online.seed"]
    overrides = sweeps.point_overrides(points[1], PipelineConfig(), ["online.seeds=2"])
    assert overrides == ["online.seeds=2", "a=1", "b=x", "meta.seed=1", "online.seed=1"]
    assert [p.name[:-11] for p in sweeps.grid_points({"meta.hidden": ["32,32"]}, None)] == ["meta.hidden=32,32"]


def test_point_names_are_unique_bounded_and_map_back_to_their_values():
    """Values that differ only in characters a file name cannot hold get two names; a long value a short one."""
    paths = sweeps.grid_points({"schunk_path": ["/data/a b.npz", "/data/a_b.npz", "/data/a?b.npz"]}, None)
    names = [p.name for p in paths]
    assert len(set(names)) == 3 and all(n.startswith("schunk_path=_data_a_b.npz-") for n in names)
    long = sweeps.grid_points({"losses": ["structured," * 100, "mlp"]}, seeds=2)
    assert all(len(p.name.encode()) <= sweeps.NAME_PREFIX + 11 for p in long)
    assert len({p.name for p in long}) == 4


def test_a_grid_whose_points_are_one_config_is_refused(tmp_path, capsys):
    assert main(["sweep", "rosenbrock", "--serial", "--out", str(tmp_path / "s"), "steps=١٠٠,100"]) == 2
    err = capsys.readouterr().err
    assert "the grid points 'steps=١٠٠' and 'steps=100' are the same config" in err
    assert not (tmp_path / "s").exists()


def test_an_unreachable_ray_address_fails_within_seconds_naming_it(tmp_path, capsys):
    pytest.importorskip("ray")
    import time

    started = time.monotonic()
    assert main(["sweep", "rosenbrock", "--quick", "--address", "127.0.0.1:1", "--out", str(tmp_path / "s"),
                 "steps=40,80"]) == 2
    assert time.monotonic() - started < 10
    assert "no Ray cluster at --address 127.0.0.1:1 (Connection refused" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
    with pytest.raises(ConfigError, match=r"--address 'nowhere': expected HOST:PORT"):
        sweeps.check_address("nowhere")


def test_metric_paths_with_wildcards():
    metrics = {"online": {"from scratch": {"mse": {"overall": 2.0}, "structured": {"overall": 1.0, "x": "n/a"}}}}
    assert sweeps.metric_values(metrics, "online/from scratch/*/overall") == {"mse": 2.0, "structured": 1.0}
    assert sweeps.metric_values(metrics, "online/from scratch/mse/overall") == {"overall": 2.0}
    with pytest.raises(KeyError, match=r"no number at 'online/warm/\*/overall' in metrics.json \(its top-level keys: online\)"):
        sweeps.metric_values(metrics, "online/warm/*/overall")


def test_summary_pools_seeds_by_hand():
    points = sweeps.grid_points({"eta": ["0.1", "0.2"]}, seeds=2)
    sweep = sweeps.Sweep(None, ["lrmem", "rosenbrock"], rosenbrock.Config(), {"eta": ["0.1", "0.2"]}, [], points,
                         None, "runs/*/final_f", [])
    results = {points[0]: {"status": "done", "metrics": {"GD": 1.0}}, points[1]: {"status": "done", "metrics": {"GD": 3.0}},
               points[2]: {"status": "done", "metrics": {"GD": 5.0}}, points[3]: {"status": "failed", "error": "boom"}}
    summary = sweeps.summarise(sweep, results)
    first, second = summary["rows"]
    assert first["metrics"]["GD"]["mean"] == 2.0 and first["metrics"]["GD"]["std"] == pytest.approx(2 ** 0.5)
    assert second["metrics"]["GD"] == {"mean": 5.0, "std": 0.0, "values": [5.0]} and second["failed"] == [points[3].name]
    table = sweeps.summary_markdown(summary)
    assert "| 0.1 | 2/2 | 2 ± 1.4 |" in table and "| 0.2 | 1/2 | 5 ± 0 |" in table
    assert f"`{points[3].name}`: boom" in table


@pytest.mark.slow
def test_a_failing_point_is_reported_the_others_go_on_and_a_rerun_does_only_the_rest(tmp_path, capsys, monkeypatch):
    out = tmp_path / "sweep"
    real_run = rosenbrock.run

    def diverging_at_80_steps(config, directory, **kwargs):  # a fault injected into one point
        if config.steps == 80:
            raise FloatingPointError("f is NaN after step 3")
        return real_run(config, directory, **kwargs)

    monkeypatch.setattr(rosenbrock, "run", diverging_at_80_steps)
    monkeypatch.setattr(sweep_command, "ray_available", lambda: False)  # the sweep runs as without Ray
    assert main([*ROSENBROCK, "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.out.count("Ray is not installed (pip install 'fastadapt[distributed]'); running the 2 points "
                              "one after another in this process") == 1
    assert f"point {STEPS_80} failed: FloatingPointError: f is NaN after step 3" in captured.err
    assert "1 of 2 points failed" in captured.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["points"][STEPS_40]["status"] == "done" and summary["points"][STEPS_80]["status"] == "failed"
    assert "FloatingPointError: f is NaN after step 3" in (out / "logs" / f"{STEPS_80}.txt").read_text()
    assert json.loads((out / "points.json").read_text())[STEPS_80] == {"values": {"steps": "80"}, "seed": None}
    done = (out / "points" / STEPS_40 / "metrics.json").stat().st_mtime_ns

    monkeypatch.setattr(rosenbrock, "run", real_run)
    assert main([*ROSENBROCK, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["points"][STEPS_40]["status"] == "skipped" and summary["points"][STEPS_80]["status"] == "done"
    assert (out / "points" / STEPS_40 / "metrics.json").stat().st_mtime_ns == done
    owned = json.loads((out / ".fastadapt-run.json").read_text())["owned"]
    assert owned[f"points/{STEPS_40}/"] == {"kind": "run"} and f"logs/{STEPS_80}.txt" in owned
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
        (["sweep", "sim", "--paper", "--quick", "--seeds", "2"], "--quick and --paper together"),
        (["sweep", "ml3-digits", "--paper", "--seeds", "2"], "`fastadapt ml3 digits` has no --paper key set"),
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


@pytest.mark.slow
def test_a_killed_ray_sweep_leaves_no_ray_process_and_resumes(tmp_path):
    """SIGKILL the sweep while its points run on a local Ray: raylet, GCS, the dashboard and runtime-env
    agents and the workers all stop; the same command then finishes the sweep."""
    pytest.importorskip("ray")
    import os
    import signal
    import subprocess
    import sys
    import time

    from fastadapt.reaper import descendants, identify

    out = tmp_path / "sweep"
    argv = [sys.executable, "-m", "fastadapt.cli", *ROSENBROCK, "--workers", "2", "--out", str(out)]
    driver = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    family, deadline = [], time.monotonic() + 120
    while time.monotonic() < deadline:
        family = identify(descendants(driver.pid))
        names = [open(f"/proc/{pid}/cmdline").read() for pid, _ in family if os.path.exists(f"/proc/{pid}/cmdline")]
        if any("ray::run_point" in n for n in names) and any("DashboardAgent" in n for n in names):
            break
        time.sleep(0.2)
    else:
        driver.kill()
        pytest.fail("the Ray sweep did not start its points within 120 s")
    family = [(pid, start) for pid, start in family if "fastadapt.reaper" not in open(f"/proc/{pid}/cmdline").read()]
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=10)
    deadline = time.monotonic() + 20
    alive = lambda: [p for p in identify(pid for pid, _ in family) if p in family]  # noqa: E731
    while alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    left = alive()
    assert not left, f"still running after the kill: {left}"
    assert main([*ROSENBROCK, "--out", str(out), "--serial"]) == 0  # the lock died with the driver
    assert {p["status"] for p in json.loads((out / "summary.json").read_text())["points"].values()} <= {"done", "skipped"}


@pytest.mark.slow
def test_a_paper_sweep_runs_every_point_on_the_papers_keys(tmp_path):
    """--paper reaches each point's command line: the point's config has the paper's keys, overrides on top."""
    out = tmp_path / "sweep"
    argv = ["sweep", "sine", "--paper", "--serial", "--seeds", "1", "--out", str(out), "--no-progress", "epochs=1",
            "batches_per_epoch=2", "eval_every=1", "eval_steps=3", "test_tasks=2", "eval_seeds=2", "seeds=1"]
    assert main(argv) == 0
    (point,) = (out / "points").iterdir()
    saved = json.loads((point / "config.json").read_text())
    assert saved["command"] == "fastadapt ml3 sine"
    config = saved["config"]
    assert (config["keep"], config["hidden"], config["test_input_range"], config["epochs"]) == ("final", [100, 10], 5.0, 1)
    assert json.loads((out / ".fastadapt-run.json").read_text())["identity"]["config"]["paper"] is True
