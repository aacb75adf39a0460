"""``fastadapt sweep EXPERIMENT key=v1,v2 ...``: every point of the grid (x seeds) as its own run, on Ray
(local, or the cluster at ``address``) or one after another; then the summary table and figure.

The command line's entry point is passed in (``entry``: argv -> exit status, errors propagating), so that
the sweep, which the command line calls, never imports it back.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Callable

from fastadapt.checkpoint import write_json
from fastadapt.config import ConfigError, build_config
from fastadapt.experiments import registry
from fastadapt.files import atomic_write_text
from fastadapt.rundir import RunDirectory, input_files
from fastadapt.sweep.grid import grid_points, parse_grid, refuse_collisions, seed_keys
from fastadapt.sweep.points import Sweep, check_address, ray_available, run_on_ray, run_serial
from fastadapt.sweep.summary import summarise, summary_figure, summary_markdown


@dataclasses.dataclass(frozen=True)
class SweepRequest:
    """What the user asked for (the command line's arguments of ``fastadapt sweep``)."""

    experiment: str
    overrides: list[str]
    seeds: int | None = None
    address: str | None = None
    workers: int | None = None
    serial: bool = False
    metric: str | None = None
    quick: bool = False
    config: str | None = None  # a saved config.json every point starts from
    out: str | None = None
    force: bool = False
    no_progress: bool = False
    argv: str = ""  # the command as typed (recorded in the run directory)
    paper: bool = False  # every point on the paper's protocol (the experiment's PAPER_KEYS)


def sweep(request: SweepRequest, entry: Callable[[list[str]], int]) -> int:
    """Run the sweep into its directory; returns the exit status (1 when a point failed)."""
    if request.experiment in ("meta-train", "adapt"):
        raise ConfigError(f"sweep runs experiments (demo, sim, schunk, sim2real, lrmem, ml3, rl ones), not "
                          f"'{request.experiment}', which reads data files given by the user")
    experiment = registry.find(request.experiment)
    words = list(experiment.words)
    base = build_config(experiment.default_config(), [], request.config,
                        experiment.quick if request.quick else None, experiment.paper_keys() if request.paper else None)
    grid, fixed = parse_grid(request.overrides, base)
    if request.seeds is not None and request.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {request.seeds}")
    if request.seeds:
        seeded = seed_keys(base)
        if not seeded:
            raise ConfigError(f"`fastadapt {' '.join(words)}` has no seed key; --seeds cannot be used")
        clash = [k for k in [*grid, *(f.split("=", 1)[0] for f in fixed)] if k in seeded]
        if clash:
            raise ConfigError(f"--seeds sets {', '.join(seeded)}; do not also give {', '.join(clash)}")
    if not grid and not request.seeds:
        raise ConfigError("nothing to sweep: give a key with several values (key=v1,v2) or --seeds N")
    metric = request.metric or registry.default_metric(experiment)
    workers = request.workers or os.cpu_count() or 1
    if request.workers is not None and request.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {request.workers}")
    points = grid_points(grid, request.seeds)
    refuse_collisions(points, base, fixed)
    use_ray = ray_available() and not request.serial
    if request.address and use_ray:
        check_address(request.address)
    extra = ((["--quick"] if request.quick else []) + (["--paper"] if request.paper else [])
             + (["--config", str(Path(request.config).resolve())] if request.config else []))
    identity = {"config": {"experiment": words, "grid": grid, "fixed": fixed, "seeds": request.seeds or 0,
                           "quick": bool(request.quick), **({"paper": True} if request.paper else {})},
                "inputs": input_files(config=request.config) if request.config else {}}
    suffix = "-quick" if request.quick else "-paper" if request.paper else ""
    name = f"sweep-{'-'.join(words[1:] or words)}{suffix}"
    with RunDirectory(Path(request.out or Path("runs") / name), identity, request.force, request.argv) as out:
        run = Sweep(entry, words, base, grid, fixed, points, out, metric, extra)
        run.write_index()
        if not use_ray:
            why = "--serial" if request.serial else "Ray is not installed (pip install 'fastadapt[distributed]')"
            print(f"fastadapt sweep: {why}; running the {len(run.points)} points one after another in this process")
        elif request.address:
            print(f"fastadapt sweep: {len(run.points)} points on the Ray cluster at {request.address}")
        else:
            print(f"fastadapt sweep: {len(run.points)} points on a local Ray with {workers} workers")
        results, timing = _run(run, use_ray, request, workers)
        summary = {**summarise(run, results), "timing": timing}
        write_json(out / "summary.json", summary)
        atomic_write_text(out / "summary.md", summary_markdown(summary))
        figure = summary_figure(summary, out / "sweep.png")
    print(summary_markdown(summary))
    print(f"wrote {out / 'summary.md'}" + (f" and {figure}" if figure else ""))
    if summary["failures"]:
        print(f"fastadapt sweep: {len(summary['failures'])} of {len(run.points)} points failed (their errors are "
              f"above and in their logs); the same command re-runs only the points not done", file=sys.stderr)
        return 1
    return 0


def _run(run: Sweep, use_ray: bool, request: SweepRequest, workers: int) -> tuple[dict, dict]:
    from tqdm.auto import tqdm

    started = time.time()
    with tqdm(total=len(run.points), desc="sweep", unit="point", disable=request.no_progress) as bar:
        def progress(point, result):
            bar.update(1)
            if result["status"] == "failed":
                tqdm.write(f"point {point.name} failed: {result['error']}", file=sys.stderr)

        if use_ray:
            results, init_seconds = run_on_ray(run, progress, request.address, workers)
        else:
            results, init_seconds = run_serial(run, progress), 0.0
    timing = {"wall_seconds": time.time() - started, "ray": use_ray, "workers": workers if use_ray else 1,
              "ray_init_seconds": init_seconds}
    return results, timing
