"""One sweep, run twice side by side in one run: serial (the points one after another in this process)
and on a local Ray with ``--workers`` workers (one point per CPU). Prints the wall times and their ratio,
and Ray's overhead against the points' own run times:

* ``ray.init``: starting the local Ray (once per sweep);
* per point, the time a worker spends outside the point's own run: ``(workers x wall - init x workers
  - sum of point run times) / points``, which holds the workers' start-up and imports (JAX, fastadapt),
  task dispatch, and any idle worker at the end of the sweep (fewer points left than workers).

A point's own run time is measured inside it (``run_point``: from its start to its metrics), so a point
that ran on one core beside another point shows it, and the serial points ran with both cores.

Usage: python benchmarks/sweep_ray.py [--workers 2] [EXPERIMENT key=v1,v2 ... --seeds N]
(default: the learned-loss pipeline, ``sim --quick meta.alpha=0.001,0.003 --seeds 4``: 8 points)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from fastadapt.cli import main as fastadapt

DEFAULT = ["sim", "--quick", "meta.alpha=0.001,0.003", "--seeds", "4"]


def run(sweep: list[str], out: Path, extra: list[str]) -> tuple[float, dict]:
    started = time.perf_counter()
    status = fastadapt(["sweep", *sweep, "--out", str(out), "--no-progress", *extra])
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"the sweep failed (status {status}); see {out}/summary.md")
    return wall, json.loads((out / "summary.json").read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    args, sweep = parser.parse_known_args()
    sweep = sweep or DEFAULT
    with tempfile.TemporaryDirectory() as root:
        serial_wall, serial = run(sweep, Path(root) / "serial", ["--serial"])
        ray_wall, parallel = run(sweep, Path(root) / "ray", ["--workers", str(args.workers)])
    points = len(parallel["points"])
    serial_runs = [p["seconds"] for p in serial["points"].values()]
    ray_runs = [p["seconds"] for p in parallel["points"].values()]
    init = parallel["timing"]["ray_init_seconds"]
    overhead = (args.workers * ray_wall - args.workers * init - sum(ray_runs)) / points
    same = serial["rows"] == parallel["rows"]
    print(f"sweep: fastadapt sweep {' '.join(sweep)} ({points} points)")
    print(f"| | serial | Ray, {args.workers} workers |")
    print("|---|---|---|")
    print(f"| wall time | {serial_wall:.1f} s | {ray_wall:.1f} s |")
    print(f"| speed-up (serial / Ray) | 1x | {serial_wall / ray_wall:.2f}x |")
    print(f"| a point's own run time, mean | {sum(serial_runs) / points:.1f} s | {sum(ray_runs) / points:.1f} s |")
    print(f"| ray.init | | {init:.1f} s |")
    print(f"| Ray's overhead per point (outside the point's run) | | {overhead:.1f} s "
          f"({overhead / (sum(ray_runs) / points):.0%} of a point's run) |")
    print(f"same summary numbers serial and on Ray: {same}")


if __name__ == "__main__":
    main()
