"""Sweeps: one experiment over a grid of config values and seeds, each point its own run, on Ray.

    fastadapt sweep EXPERIMENT key=v1,v2 [key2=w1,w2 ...] [--seeds N] [--address ADDR] [--workers N]

The grid is the Cartesian product of the swept keys' values (a key given one value is an override for
every point), times seeds 0..N-1 set on every ``seed`` key of the config (``meta.seed``, ``online.seed``;
with no ``--seeds`` the config's own seed). Each point is the ordinary command (``fastadapt run sim
--out SWEEP/points/NAME key=value ...``) in its own run directory, so it resumes as any run does. A point
whose run directory says it is done is not run again: a killed sweep re-run goes on where it stopped. A
point that fails is reported with its error and the others go on.

The points run as Ray tasks (one CPU each): on a local Ray started with ``--workers`` CPUs (default: the
machine's cores), or on an existing cluster with ``--address`` (``ray start --head`` on one machine,
``ray start --address HEAD:6379`` on the others; the sweep directory must then be on a file system every
node sees). Without Ray installed (``pip install 'fastadapt[distributed]'``), or with ``--serial``, the
points run one after another in this process.

The summary (``summary.json``, ``summary.md``, ``sweep.png``) holds, per grid point, each metric's mean and
standard deviation over seeds; the metric is a path into each point's metrics.json, ``*`` matching any
key (default: the experiment's row in :mod:`fastadapt.experiments.registry`).
"""

from fastadapt.sweep.command import SweepRequest, sweep
from fastadapt.sweep.grid import (NAME_PREFIX, Point, grid_points, parse_grid, point_overrides, refuse_collisions,
                                  seed_keys)
from fastadapt.sweep.points import (ADDRESS_TIMEOUT, Sweep, check_address, metric_values, point_done, ray_available,
                                    run_on_ray, run_point, run_serial)
from fastadapt.sweep.summary import summarise, summary_figure, summary_markdown

__all__ = ["ADDRESS_TIMEOUT", "NAME_PREFIX", "Point", "Sweep", "SweepRequest", "check_address", "grid_points",
           "metric_values", "parse_grid", "point_done", "point_overrides", "ray_available", "refuse_collisions",
           "run_on_ray", "run_point", "run_serial", "seed_keys", "summarise", "summary_figure", "summary_markdown",
           "sweep"]
